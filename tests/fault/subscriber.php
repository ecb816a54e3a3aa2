<?php

declare(strict_types=1);

/*
 * The counting subscriber of the fault suite: raw RESP over its own socket (independent of the
 * extension under test), SUBSCRIBEd to one channel, reconnecting whenever its connection is cut.
 *
 *   php subscriber.php <redis port> <channel> <log file>
 *
 * Appends to <log file> one line per event, all timestamps microtime(true):
 *   S <t>          subscribed (confirmed by Redis): messages published from now on reach it
 *   C <t> <why>    the connection was cut (Redis killed, stopped, ...); it reconnects at once
 *   M <payload>    one message (the payloads are the publishers' unique ids)
 * Runs until SIGTERM, or until the suite that started it is gone; one hour at most.
 */

// The harness's Processes::parentPid(): this process ends when the suite that started it is gone.
require __DIR__ . '/../php/Support/Processes.php';

use QrPush\Tests\Processes;

if ($argc !== 4) {
    fwrite(STDERR, "usage: php subscriber.php <redis port> <channel> <log file>\n");
    exit(2);
}
[, $port, $channel, $logFile] = $argv;
$log = fopen($logFile, 'a');
$stop = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop): void {
    $stop = true;
});

$out = '';
$lastFlush = microtime(true);
/** Writes what is buffered when forced, when it is large, or every 20 ms. */
$flush = function (bool $force) use (&$out, &$lastFlush, $log): void {
    $now = microtime(true);
    if ($out !== '' && ($force || strlen($out) > 65536 || $now - $lastFlush > 0.02)) {
        fwrite($log, $out);
        fflush($log);
        $out = '';
        $lastFlush = $now;
    }
};
$emit = function (string $line, bool $force = false) use (&$out, $flush): void {
    $out .= $line . "\n";
    $flush($force);
};

/**
 * Parses as many complete RESP replies as the buffer holds, from $pos; returns them (arrays of
 * strings/ints) and leaves $pos after the last complete one.
 */
function parseReplies(string $buf, int &$pos): array
{
    $replies = [];
    $len = strlen($buf);
    while ($pos < $len) {
        $start = $pos;
        $value = parseOne($buf, $pos, $len);
        if ($value === null) {
            $pos = $start;
            break;
        }
        $replies[] = $value[0];
    }
    return $replies;
}

/** @return array{0: mixed}|null */
function parseOne(string $buf, int &$pos, int $len): ?array
{
    $eol = strpos($buf, "\r\n", $pos);
    if ($eol === false) {
        return null;
    }
    $type = $buf[$pos];
    $line = substr($buf, $pos + 1, $eol - $pos - 1);
    $pos = $eol + 2;
    switch ($type) {
        case '+':
        case '-':
            return [$type . $line];
        case ':':
            return [(int) $line];
        case '$':
            $n = (int) $line;
            if ($n < 0) {
                return [null];
            }
            if ($len < $pos + $n + 2) {
                return null;
            }
            $s = substr($buf, $pos, $n);
            $pos += $n + 2;
            return [$s];
        case '*':
            $n = (int) $line;
            $items = [];
            for ($i = 0; $i < $n; $i++) {
                $item = parseOne($buf, $pos, $len);
                if ($item === null) {
                    return null;
                }
                $items[] = $item[0];
            }
            return [$items];
        default:
            throw new UnexpectedValueException(sprintf('unexpected RESP type byte 0x%02x', ord($type)));
    }
}

$parent = Processes::parentPid();
$deadline = microtime(true) + 3600;
while (!$stop && microtime(true) < $deadline && Processes::parentPid() === $parent) {
    $socket = @stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $errstr, 0.2);
    if ($socket === false) {
        usleep(5000); // Redis is down: try again soon, so the gap stays short
        continue;
    }
    stream_set_blocking($socket, false);
    $cmd = "*2\r\n\$9\r\nSUBSCRIBE\r\n\$" . strlen($channel) . "\r\n{$channel}\r\n";
    @fwrite($socket, $cmd);
    $buf = '';
    $why = 'closed';
    while (!$stop) {
        $r = [$socket];
        $w = $e = null;
        $ready = @stream_select($r, $w, $e, 0, 20000);
        if ($ready === false) {
            continue; // a signal
        }
        if ($ready === 0) {
            $flush(false);
            if (Processes::parentPid() !== $parent) {
                $stop = true; // orphaned: the suite was killed
            }
            continue;
        }
        $chunk = @fread($socket, 262144);
        if ($chunk === false || ($chunk === '' && feof($socket))) {
            break;
        }
        $buf .= $chunk;
        $pos = 0;
        foreach (parseReplies($buf, $pos) as $reply) {
            if (is_array($reply) && $reply[0] === 'message' && count($reply) === 3) {
                $emit('M ' . $reply[2]);
            } elseif (is_array($reply) && $reply[0] === 'subscribe') {
                $emit(sprintf('S %.6f', microtime(true)), true);
            } else {
                $why = 'unexpected ' . json_encode($reply);
            }
        }
        $buf = (string) substr($buf, $pos);
    }
    fclose($socket);
    if (!$stop) {
        $emit(sprintf('C %.6f %s', microtime(true), $why), true);
    }
}
$flush(true);
