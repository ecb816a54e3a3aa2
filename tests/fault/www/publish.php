<?php

declare(strict_types=1);

/*
 * The fault suite's php-fpm endpoint: publishes one message (its payload is the request's unique
 * id) with the static facade, i.e. the default client configured by the pool's qrpush.* directives,
 * and answers with one JSON line saying what happened:
 *   {"id":..., "ok":1, "n":<receivers>, "us":<call µs>, "t0":<start>, "t1":<end>, "pid":...}
 *   {"id":..., "ok":0, "e":"QrPush\\TimeoutException", "m":"<message>", ...}
 *   "rq": µs of the call spent waiting for a CPU (run queue, /proc/self/schedstat)
 * "ok" means QrPush::publish() returned (Redis executed the PUBLISH: "confirmed"); "n" is how many
 * subscribers Redis handed it to at that moment.
 *
 * ?ch=<channel>&id=<id>[&fork=1&redis_port=<port>]
 * fork=1: after its own publish the worker forks; the child publishes id + "c" on its own, reports
 * over a socket pair and leaves without running any PHP shutdown (it must not answer the web
 * server). The child lists the Redis sockets it holds and who else holds them (ss -p): the report
 * says whether it held any socket together with another process (its parent). pcntl where the SAPI has it (the ZTS build), else libc's fork()
 * through FFI (Debian builds pcntl for the CLI only).
 */

header('Content-Type: application/json');
$channel = (string) ($_GET['ch'] ?? 'fault');
$id = (string) ($_GET['id'] ?? '');

/** Nanoseconds this process has spent runnable but waiting for a CPU (Linux schedstat). */
function runQueueWait(): int
{
    $stat = @file_get_contents('/proc/self/schedstat');
    return $stat === false ? 0 : (int) (explode(' ', $stat)[1] ?? 0);
}

function publishOne(string $channel, string $id): array
{
    $r = ['id' => $id];
    $t0 = microtime(true);
    $q0 = runQueueWait();
    $h0 = hrtime(true);
    try {
        $r['n'] = QrPush::publish($channel, $id);
        $r['ok'] = 1;
    } catch (Throwable $e) {
        $r['ok'] = 0;
        $r['e'] = get_class($e);
        $r['m'] = substr($e->getMessage(), 0, 300);
    }
    $r['us'] = intdiv(hrtime(true) - $h0, 1000);
    // Of that, the time the kernel left the worker waiting for a CPU (a busy machine), which no
    // client library can bound: the suite reports it and checks the bound on the rest.
    $r['rq'] = intdiv(runQueueWait() - $q0, 1000);
    $r['t0'] = $t0;
    $r['t1'] = microtime(true);
    $r['pid'] = getmypid();
    return $r;
}

/**
 * Every established TCP connection to 127.0.0.1:<port> (the Redis, or the proxy, that qrpush.url
 * names) with the pids of all processes holding it, from `ss -p` (socket diagnostics + /proc).
 *
 * @return list<array{ino: string, pids: list<int>}>
 */
function redisSockets(int $port): array
{
    $out = (string) shell_exec("/usr/bin/ss -tnpeH state established '( dport = :{$port} )' 2>&1");
    $sockets = [];
    foreach (explode("\n", trim($out)) as $line) {
        if (preg_match('/ino:(\d+)/', $line, $ino)) {
            preg_match_all('/pid=(\d+)/', $line, $pids);
            $sockets[] = ['ino' => $ino[1], 'pids' => array_values(array_unique(array_map('intval', $pids[1])))];
        }
    }
    return $sockets;
}

$result = publishOne($channel, $id);

if (($_GET['fork'] ?? '') === '1') {
    $port = (int) ($_GET['redis_port'] ?? 0);
    [$parentEnd, $childEnd] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
    $ffi = null;
    if (function_exists('pcntl_fork')) {
        $pid = pcntl_fork();
    } else {
        $ffi = FFI::cdef('int fork(void); void _exit(int status); int waitpid(int pid, int *status, int options);');
        $pid = $ffi->fork();
    }
    if ($pid === 0) {
        // The child: publish, report, and leave without any PHP shutdown.
        fclose($parentEnd);
        $child = publishOne($channel, $id . 'c');
        // While the parent waits for this report: which Redis sockets does this child hold, and
        // does any other process (the parent) hold one of them too?
        $me = getmypid();
        $mine = array_values(array_filter(redisSockets($port), fn (array $s): bool => in_array($me, $s['pids'], true)));
        $child['sockets'] = count($mine);
        $child['shared'] = array_values(array_filter($mine, fn (array $s): bool => count($s['pids']) > 1));
        $child['qrpush_pid'] = QrPush::stats()['pid'];
        fwrite($childEnd, json_encode($child) . "\n");
        fclose($childEnd);
        if ($ffi !== null) {
            $ffi->_exit(0);
        }
        pcntl_exec('/bin/true');
        posix_kill(getmypid(), 9); // only if exec failed
    }
    fclose($childEnd);
    if ($pid < 0) {
        $result['fork_error'] = 'fork failed';
    } else {
        stream_set_timeout($parentEnd, 10);
        $line = fgets($parentEnd);
        $child = is_string($line) ? json_decode($line, true) : null;
        if ($ffi !== null) {
            $status = $ffi->new('int');
            $ffi->waitpid($pid, FFI::addr($status), 0);
        } else {
            pcntl_waitpid($pid, $status);
        }
        if (!is_array($child)) {
            $result['fork_error'] = 'no report from the child';
        } else {
            $result['child'] = $child;
        }
    }
    fclose($parentEnd);
}

echo json_encode($result);
