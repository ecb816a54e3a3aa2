<?php

declare(strict_types=1);

/*
 * The fault suite's stub name server: UDP on a loopback address, port 53, knowing one name. While
 * silent it reads every query and answers none (a name server that does not answer: the resolver
 * waits its whole timeout); SIGUSR2 makes it answer, the queries it kept included (a stalled name
 * server that recovers), SIGUSR1 silent again. Answers: the name's A record (127.0.0.1, TTL 1 s),
 * no AAAA record, NXDOMAIN for any other name. It is only ever named by a resolv.conf that the suite
 * bind-mounts in a mount namespace of its own (never the machine's).
 *
 *   php dns.php <loopback address> <name> <silent|answer> <ready file>
 *
 * Writes "ready\n" to <ready file> once it listens. Runs until SIGTERM, or until the suite that
 * started it is gone; one hour at most.
 */

// The harness's Processes::parentPid(): this process ends when the suite that started it is gone.
require __DIR__ . '/../php/Support/Processes.php';

use QrPush\Tests\Processes;

if ($argc !== 5 || !in_array($argv[3], ['silent', 'answer'], true) || !str_starts_with($argv[1], '127.')) {
    fwrite(STDERR, "usage: php dns.php <127.x.y.z> <name> <silent|answer> <ready file>\n");
    exit(2);
}
[, $address, $name, $mode, $readyFile] = $argv;
$name = strtolower(rtrim($name, '.'));

$socket = @stream_socket_server("udp://{$address}:53", $errno, $errstr, STREAM_SERVER_BIND);
if ($socket === false) {
    fwrite(STDERR, "dns stub: cannot listen on {$address}:53 (root is needed): {$errstr}\n");
    exit(1);
}
file_put_contents($readyFile, "ready\n");

$stop = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop): void {
    $stop = true;
});
pcntl_signal(SIGUSR1, function () use (&$mode): void {
    $mode = 'silent';
});
pcntl_signal(SIGUSR2, function () use (&$mode): void {
    $mode = 'answer';
});

/** The answer to one query, or null when it is not a query we can read. */
function answer(string $query, string $name): ?string
{
    if (strlen($query) < 17) {
        return null;
    }
    $header = unpack('nid/nflags/nqd', $query);
    if ($header['qd'] !== 1 || ($header['flags'] & 0x8000) !== 0) {
        return null;
    }
    // The question: labels up to a zero byte, then type and class.
    $labels = [];
    $at = 12;
    while ($at < strlen($query) && ($len = ord($query[$at])) !== 0) {
        $labels[] = substr($query, $at + 1, $len);
        $at += 1 + $len;
    }
    if ($at + 5 > strlen($query)) {
        return null;
    }
    $question = substr($query, 12, $at + 5 - 12);
    $type = unpack('n', substr($query, $at + 1, 2))[1];
    $known = strtolower(implode('.', $labels)) === $name;
    $records = '';
    $count = 0;
    if ($known && $type === 1) {
        // A pointer to the question's name, type A, class IN, TTL 1, 4 bytes: 127.0.0.1.
        $records = pack('nnnNn', 0xC00C, 1, 1, 1, 4) . chr(127) . chr(0) . chr(0) . chr(1);
        $count = 1;
    }
    // QR, the query's RD, RA; NOERROR, or NXDOMAIN for a name we do not know.
    $flags = 0x8000 | ($header['flags'] & 0x0100) | 0x0080 | ($known ? 0 : 3);
    return pack('nnnnnn', $header['id'], $flags, 1, $count, 0, 0) . $question . $records;
}

$kept = [];
$parent = Processes::parentPid();
$deadline = microtime(true) + 3600;
while (!$stop && microtime(true) < $deadline && Processes::parentPid() === $parent) {
    if ($mode === 'answer') {
        foreach ($kept as [$query, $peer]) {
            $reply = answer($query, $name);
            if ($reply !== null) {
                @stream_socket_sendto($socket, $reply, 0, $peer);
            }
        }
        $kept = [];
    }
    $read = [$socket];
    $w = $e = null;
    if (@stream_select($read, $w, $e, 0, 100000) < 1) {
        continue;
    }
    $query = stream_socket_recvfrom($socket, 1500, 0, $peer);
    if ($query === false || $query === '') {
        continue;
    }
    if ($mode === 'silent') {
        $kept[] = [$query, $peer];
        continue;
    }
    $reply = answer($query, $name);
    if ($reply !== null) {
        @stream_socket_sendto($socket, $reply, 0, $peer);
    }
}
