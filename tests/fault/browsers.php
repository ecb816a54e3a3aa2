<?php

declare(strict_types=1);

/*
 * The topology fault table's browsers (see gateway.php): one WebSocket per login token to the
 * gateway, held open through the fault the way a login page holds it, every frame the gateway sends
 * written to the log with the time it arrived. A client, so written by hand over a plain TCP stream:
 * the handshake (the 101 checked), the gateway's frames (unmasked; text, ping, close), a masked pong
 * for each ping. A socket that closes is logged and not reopened: a status that reaches it after the
 * fault must come from the gateway's own resubscribe, not from a reconnect.
 *
 *   php browsers.php <gateway port> <log> <token> [<token> ...]
 *
 * Log lines, "<i>" the token's index:  O <t> <i>  upgraded · F <t> <i> <text frame>  a message ·
 * X <t> <i> <close code|eof|refused: ...>  the socket ended.
 */

// The harness's Processes::parentPid(): this process ends when the suite that started it is gone.
require __DIR__ . '/../php/Support/Processes.php';

use QrPush\Tests\Processes;

if ($argc < 4) {
    fwrite(STDERR, "usage: php browsers.php <gateway port> <log file> <token> [<token> ...]\n");
    exit(2);
}
[, $port, $logFile] = $argv;
$tokens = array_slice($argv, 3);
$log = fopen($logFile, 'a');
if ($log === false) {
    fwrite(STDERR, "cannot open {$logFile}\n");
    exit(2);
}

function logLine($log, string $line): void
{
    fwrite($log, sprintf('%s %.6f %s', $line[0], microtime(true), substr($line, 2)) . "\n");
    fflush($log);
}

/** A client frame: FIN, the opcode, masked as RFC 6455 requires of clients. */
function clientFrame(int $opcode, string $payload): string
{
    $mask = random_bytes(4);
    $len = strlen($payload);
    $head = chr(0x80 | $opcode) . ($len < 126 ? chr(0x80 | $len) : chr(0x80 | 126) . pack('n', $len));
    $masked = '';
    for ($i = 0; $i < $len; $i++) {
        $masked .= $payload[$i] ^ $mask[$i % 4];
    }
    return $head . $mask . $masked;
}

/** @return resource|string the upgraded stream, or why not */
function open(int $port, string $token)
{
    $s = @stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $errstr, 5.0);
    if ($s === false) {
        return "connect: {$errstr}";
    }
    stream_set_timeout($s, 5);
    $key = base64_encode(random_bytes(16));
    fwrite($s, "GET /ws/?token=" . rawurlencode($token) . " HTTP/1.1\r\nHost: 127.0.0.1:{$port}\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {$key}\r\nSec-WebSocket-Version: 13\r\n\r\n");
    $head = '';
    while (!str_contains($head, "\r\n\r\n")) {
        $line = fgets($s);
        if ($line === false) {
            return 'no answer to the upgrade';
        }
        $head .= $line;
    }
    if (!str_starts_with($head, 'HTTP/1.1 101')) {
        return 'answered ' . strtok($head, "\r\n");
    }
    stream_set_blocking($s, false);
    return $s;
}

$socks = [];
$buffers = [];
foreach ($tokens as $i => $token) {
    $s = open((int) $port, $token);
    if (is_string($s)) {
        logLine($log, "X {$i} refused: {$s}");
        continue;
    }
    $socks[$i] = $s;
    $buffers[$i] = '';
    logLine($log, "O {$i}");
}

$stop = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop): void {
    $stop = true;
});
$parent = Processes::parentPid();
$deadline = microtime(true) + 3600;
while (!$stop && $socks !== [] && microtime(true) < $deadline && Processes::parentPid() === $parent) {
    $read = $socks;
    $w = $e = null;
    if (@stream_select($read, $w, $e, 0, 200000) < 1) {
        continue;
    }
    foreach ($read as $s) {
        $i = array_search($s, $socks, true);
        $chunk = fread($s, 65536);
        if ($chunk === '' || $chunk === false) {
            if (feof($s)) {
                logLine($log, "X {$i} eof");
                fclose($s);
                unset($socks[$i]);
            }
            continue;
        }
        $buffers[$i] .= $chunk;
        // Whole frames only; the gateway never masks and never fragments its JSON messages.
        while (strlen($b = $buffers[$i]) >= 2) {
            $opcode = ord($b[0]) & 0x0f;
            $len = ord($b[1]) & 0x7f;
            $at = 2;
            if ($len === 126) {
                if (strlen($b) < 4) {
                    break;
                }
                $len = unpack('n', substr($b, 2, 2))[1];
                $at = 4;
            } elseif ($len === 127) {
                if (strlen($b) < 10) {
                    break;
                }
                $len = unpack('J', substr($b, 2, 8))[1];
                $at = 10;
            }
            if (strlen($b) < $at + $len) {
                break;
            }
            $payload = substr($b, $at, $len);
            $buffers[$i] = substr($b, $at + $len);
            if ($opcode === 1) {
                logLine($log, "F {$i} {$payload}");
            } elseif ($opcode === 9) {
                fwrite($s, clientFrame(0xA, $payload));
            } elseif ($opcode === 8) {
                $code = strlen($payload) >= 2 ? (string) unpack('n', $payload)[1] : 'none';
                logLine($log, "X {$i} {$code}");
                @fwrite($s, clientFrame(8, substr($payload, 0, 2)));
                fclose($s);
                unset($socks[$i]);
                break;
            }
        }
    }
}
foreach ($socks as $s) {
    @fwrite($s, clientFrame(8, pack('n', 1000)));
    fclose($s);
}
