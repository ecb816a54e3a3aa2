<?php

declare(strict_types=1);

/*
 * The fault suite's load generator: a small FastCGI client (what nginx does in front of php-fpm)
 * that keeps <concurrency> requests to the publishing endpoint in flight (closed loop: the next
 * request starts as soon as one finishes, optionally capped at <rate> requests per second), each
 * with a new unique id, until SIGTERM. SIGUSR1 pauses issuing new requests, SIGUSR2 resumes.
 *
 * Connections are kept open between requests (FCGI_KEEP_CONN, nginx's fastcgi_keep_conn), so the
 * run does not leave tens of thousands of TIME_WAIT sockets behind. When php-fpm closed a kept
 * connection (a worker recycled by pm.max_requests) before answering a single byte of the next
 * request, that request is sent again on a new connection: the worker had exited, nothing ran.
 *
 *   php loadgen.php <fpm port> <script path> <query template> <concurrency> <rate> <results file>
 *
 * <query template> holds "{id}" where the id goes. One line per finished request in <results file>:
 *   R <id> <sent> <answered> <endpoint JSON>        (timestamps microtime(true))
 *   F <id> <sent> <answered> <why>                  (no usable FastCGI answer)
 */

// The harness's Processes::parentPid(): this process ends when the suite that started it is gone.
require __DIR__ . '/../php/Support/Processes.php';

use QrPush\Tests\Processes;

if ($argc !== 7) {
    fwrite(STDERR, "usage: php loadgen.php <fpm port> <script> <query template> <concurrency> <rate> <results file>\n");
    exit(2);
}
[, $port, $script, $template, $concurrency, $rate, $resultsFile] = $argv;
$port = (int) $port;
$concurrency = max(1, (int) $concurrency);
$rate = (float) $rate;
$results = fopen($resultsFile, 'a');

$stop = false;
$paused = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop): void {
    $stop = true;
});
pcntl_signal(SIGUSR1, function () use (&$paused): void {
    $paused = true;
});
pcntl_signal(SIGUSR2, function () use (&$paused): void {
    $paused = false;
});

function fcgiRecord(int $type, string $content, int $requestId = 1): string
{
    $len = strlen($content);
    $pad = (8 - $len % 8) % 8;
    return pack('CCnnCC', 1, $type, $requestId, $len, $pad, 0) . $content . str_repeat("\0", $pad);
}

function fcgiPair(string $name, string $value): string
{
    $enc = static fn (int $n): string => $n < 128 ? chr($n) : pack('N', $n | 0x80000000);
    return $enc(strlen($name)) . $enc(strlen($value)) . $name . $value;
}

function fcgiRequest(string $script, string $query): string
{
    $params = '';
    foreach ([
        'GATEWAY_INTERFACE' => 'CGI/1.1',
        'SERVER_PROTOCOL' => 'HTTP/1.1',
        'REQUEST_METHOD' => 'GET',
        'SCRIPT_FILENAME' => $script,
        'SCRIPT_NAME' => '/' . basename($script),
        'REQUEST_URI' => '/' . basename($script) . '?' . $query,
        'QUERY_STRING' => $query,
        'DOCUMENT_ROOT' => dirname($script),
        'SERVER_NAME' => 'localhost',
        'REMOTE_ADDR' => '127.0.0.1',
    ] as $name => $value) {
        $params .= fcgiPair($name, $value);
    }
    return fcgiRecord(1, pack('nCx5', 1, 1)) // BEGIN_REQUEST: responder, FCGI_KEEP_CONN
        . fcgiRecord(4, $params) . fcgiRecord(4, '')
        . fcgiRecord(5, '');
}

/** @return resource|false a non-blocking connection to php-fpm, connecting */
function connectFpm(int $port, ?string &$error)
{
    $socket = @stream_socket_client(
        "tcp://127.0.0.1:{$port}",
        $errno,
        $error,
        5.0,
        STREAM_CLIENT_CONNECT | STREAM_CLIENT_ASYNC_CONNECT,
    );
    if ($socket !== false) {
        stream_set_blocking($socket, false);
    }
    return $socket;
}

/**
 * The STDOUT content of a complete FastCGI response, or null while END_REQUEST has not arrived.
 *
 * @return array{0: string, 1: string}|null [stdout, stderr]
 */
function fcgiResponse(string $buf): ?array
{
    $pos = 0;
    $stdout = $stderr = '';
    $len = strlen($buf);
    while ($pos + 8 <= $len) {
        $h = unpack('Cversion/Ctype/nid/nlen/Cpad', substr($buf, $pos, 7));
        if ($pos + 8 + $h['len'] + $h['pad'] > $len) {
            return null;
        }
        $content = substr($buf, $pos + 8, $h['len']);
        $pos += 8 + $h['len'] + $h['pad'];
        if ($h['type'] === 6) {
            $stdout .= $content;
        } elseif ($h['type'] === 7) {
            $stderr .= $content;
        } elseif ($h['type'] === 3) {
            return [$stdout, $stderr];
        }
    }
    return null;
}

/** One request in flight. */
final class Slot
{
    public string $in = '';
    public string $out;

    /** @param resource $socket */
    public function __construct(public $socket, public string $id, public float $sent, public string $request, public bool $reused)
    {
        $this->out = $request;
    }
}

/** @var array<int, Slot> */
$slots = [];
/** @var list<resource> connections kept open after their last answer */
$idle = [];
$resent = 0;
$next = 1;
$issued = 0;
$start = microtime(true);
$buffer = '';
// php-fpm closed a kept connection before answering anything (a recycled worker): the request
// never ran, so it is sent again on a fresh connection. False when that is not the case or no
// connection can be made.
$resendOnFreshConnection = function (Slot $slot) use (&$slots, &$resent, $port): bool {
    if (!$slot->reused || $slot->in !== '') {
        return false;
    }
    $fresh = connectFpm($port, $errstr);
    if ($fresh === false) {
        return false;
    }
    $resent++;
    $slots[(int) $fresh] = new Slot($fresh, $slot->id, $slot->sent, $slot->request, false);
    return true;
};
$record = function (string $line) use (&$buffer, $results): void {
    $buffer .= $line . "\n";
    if (strlen($buffer) > 32768) {
        fwrite($results, $buffer);
        $buffer = '';
    }
};
// A request may legitimately take the configured bound; anything far beyond it is a hang.
$hang = 15.0;
$hardDeadline = microtime(true) + 3600;
$parent = Processes::parentPid();
$nextCheck = 0.0;

while (microtime(true) < $hardDeadline) {
    $now = microtime(true);
    if ($now > $nextCheck) {
        if (Processes::parentPid() !== $parent) {
            $stop = true; // orphaned: the suite was killed
        }
        $nextCheck = $now + 1.0;
    }
    // Start requests while there is room (and the rate cap allows).
    while (!$stop && !$paused && count($slots) < $concurrency
        && ($rate <= 0 || $issued < ($now - $start) * $rate + $concurrency)) {
        $id = (string) $next++;
        $issued++;
        $query = str_replace('{id}', $id, $template);
        $socket = array_pop($idle);
        $reused = $socket !== null;
        if ($socket === null) {
            $socket = connectFpm($port, $errstr);
            if ($socket === false) {
                $record(sprintf('F %s %.6f %.6f connect: %s', $id, $now, microtime(true), $errstr));
                continue;
            }
        }
        $slots[(int) $socket] = new Slot($socket, $id, $now, fcgiRequest($script, $query), $reused);
    }
    if ($slots === []) {
        if ($stop) {
            break;
        }
        usleep(2000);
        continue;
    }
    $read = $write = [];
    foreach ($slots as $slot) {
        $read[] = $slot->socket;
        if ($slot->out !== '') {
            $write[] = $slot->socket;
        }
    }
    $except = null;
    if (@stream_select($read, $write, $except, 0, 20000) === false) {
        continue; // a signal
    }
    $now = microtime(true);
    foreach ($write as $socket) {
        $slot = $slots[(int) $socket] ?? null;
        if ($slot === null) {
            continue;
        }
        $n = @fwrite($socket, $slot->out);
        if ($n === false || ($n === 0 && feof($socket))) {
            fclose($socket);
            unset($slots[(int) $socket]);
            if ($resendOnFreshConnection($slot)) {
                continue;
            }
            $record(sprintf('F %s %.6f %.6f write failed', $slot->id, $slot->sent, $now));
            continue;
        }
        $slot->out = (string) substr($slot->out, $n);
    }
    foreach ($read as $socket) {
        $slot = $slots[(int) $socket] ?? null;
        if ($slot === null) {
            continue;
        }
        $chunk = @fread($socket, 65536);
        if ($chunk !== false && $chunk !== '') {
            $slot->in .= $chunk;
        }
        $response = fcgiResponse($slot->in);
        $eof = $chunk === false || ($chunk === '' && feof($socket));
        if ($response === null && !$eof) {
            continue;
        }
        unset($slots[(int) $socket]);
        if ($response === null) {
            fclose($socket);
            if ($resendOnFreshConnection($slot)) {
                continue;
            }
            $record(sprintf('F %s %.6f %.6f connection closed without an answer', $slot->id, $slot->sent, $now));
            continue;
        }
        if ($eof) {
            fclose($socket);
        } else {
            $idle[] = $socket;
        }
        [$stdout, $stderr] = $response;
        $split = strpos($stdout, "\r\n\r\n");
        $body = $split === false ? $stdout : substr($stdout, $split + 4);
        if (json_decode($body) === null) {
            $why = trim(preg_replace('/\s+/', ' ', substr($stdout . ' ' . $stderr, 0, 300)));
            $record(sprintf('F %s %.6f %.6f bad answer: %s', $slot->id, $slot->sent, $now, $why));
            continue;
        }
        $record(sprintf('R %s %.6f %.6f %s', $slot->id, $slot->sent, $now, $body));
    }
    foreach ($slots as $key => $slot) {
        if ($now - $slot->sent > $hang) {
            $record(sprintf('F %s %.6f %.6f no answer within %.0f s', $slot->id, $slot->sent, $now, $hang));
            fclose($slot->socket);
            unset($slots[$key]);
        }
    }
}
foreach ($idle as $socket) {
    fclose($socket);
}
fwrite($results, $buffer);
fclose($results);
fwrite(STDERR, "resent after a recycled worker closed its connection: {$resent}\n");
