<?php
// The subscriber of tests/threads/run: SUBSCRIBEs to a channel on its own RESP connection, writes
// "ready" to argv[3] once Redis confirmed, then every payload it receives, one per line, to
// argv[4], until the payload "__end__" arrives (or argv[5] seconds pass: bounded).
[, $port, $channel, $readyFile, $outFile] = $argv;
$deadline = microtime(true) + (float) ($argv[5] ?? 300);
$s = stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $errstr, 5) ?: exit(2);
fwrite($s, "*2\r\n\$9\r\nSUBSCRIBE\r\n\$" . strlen($channel) . "\r\n{$channel}\r\n");
$out = fopen($outFile, 'w');
$buffer = '';
$count = 0;
// Parses one RESP2 array of bulk strings / integers at the start of $buffer.
$next = static function () use (&$buffer): ?array {
    if (!preg_match('/^\*(\d+)\r\n/', $buffer, $m)) {
        return null;
    }
    $at = strlen($m[0]);
    $items = [];
    for ($i = 0; $i < (int) $m[1]; $i++) {
        $eol = strpos($buffer, "\r\n", $at);
        if ($eol === false) {
            return null;
        }
        $head = substr($buffer, $at, $eol - $at);
        if ($head[0] === ':') {
            $items[] = (int) substr($head, 1);
            $at = $eol + 2;
            continue;
        }
        $len = (int) substr($head, 1);
        if (strlen($buffer) < $eol + 2 + $len + 2) {
            return null;
        }
        $items[] = substr($buffer, $eol + 2, $len);
        $at = $eol + 2 + $len + 2;
    }
    $buffer = substr($buffer, $at);
    return $items;
};
stream_set_blocking($s, false);
while (microtime(true) < $deadline) {
    $r = [$s];
    $w = $e = null;
    if (@stream_select($r, $w, $e, 0, 200000) < 1) {
        continue;
    }
    $chunk = fread($s, 1 << 16);
    if ($chunk === '' || $chunk === false) {
        if (feof($s)) {
            exit(3);
        }
        continue;
    }
    $buffer .= $chunk;
    while (($msg = $next()) !== null) {
        if ($msg[0] === 'subscribe') {
            file_put_contents($readyFile, "ready\n");
        } elseif ($msg[0] === 'message') {
            if ($msg[2] === '__end__') {
                fclose($out);
                exit(0);
            }
            fwrite($out, $msg[2] . "\n");
        }
    }
}
exit(4);
