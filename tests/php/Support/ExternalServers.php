<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * "The servers are external": when QRPUSH_TEST_SERVERS=tcp://127.0.0.1:PORT is set, redis-server is
 * not a child of this PHP but of a small control process on the Linux side (tests/php/server-control.php),
 * which starts, signals and stops it on request; the tests reach the server over loopback as usual.
 *
 * Why: the suite also runs under a Windows php.exe in Wine (scripts/windows-check), which can neither
 * run a Linux redis-server as a tracked child nor freeze one with SIGSTOP, and under a host PHP that
 * cannot run the chroot's redis-server (the PHP 8.2 run). The methods mirror Processes' (start,
 * isRunning, signal, stop), so RedisServer uses either one unchanged. Paths in a command (the
 * server's --dir, its log) must be visible on both sides: a Windows path on Wine's drive Z: is the
 * Linux path with the slashes turned (scripts/windows-check points TEMP there).
 */
final class ExternalServers
{
    public static function enabled(): bool
    {
        return self::address() !== '';
    }

    public static function address(): string
    {
        return (string) getenv('QRPUSH_TEST_SERVERS');
    }

    /**
     * Starts `$command` on the Linux side (its program name is replaced there by that side's
     * redis-server), output appended to `$log`.
     *
     * @param list<string> $command
     * @return array{0: null, 1: int} no local handle, and the Linux pid
     */
    public static function start(array $command, string $log, string $what): array
    {
        return [null, (int) self::request(['op' => 'start', 'command' => $command, 'log' => $log, 'what' => $what])['pid']];
    }

    public static function isRunning(int $pid): bool
    {
        return (bool) self::request(['op' => 'running', 'pid' => $pid])['running'];
    }

    public static function signal(int $pid, int $signal): void
    {
        self::request(['op' => 'signal', 'pid' => $pid, 'signal' => $signal]);
    }

    public static function stop(int $pid, int $signal = Processes::SIGTERM, float $grace = 5.0): void
    {
        self::request(['op' => 'stop', 'pid' => $pid, 'signal' => $signal, 'grace' => $grace]);
    }

    /**
     * One request, one JSON line each way, on a new connection; bounded by 30 s (a stop waits for
     * the process to exit). A refusal on the other side is a RuntimeException naming it.
     *
     * @param array<string, mixed> $request
     * @return array<string, mixed>
     */
    private static function request(array $request): array
    {
        $address = self::address();
        $socket = @stream_socket_client($address, $errno, $errstr, 5.0);
        if ($socket === false) {
            throw new \RuntimeException("QRPUSH_TEST_SERVERS: cannot reach the server control at {$address}: {$errstr}");
        }
        try {
            stream_set_timeout($socket, 30);
            fwrite($socket, json_encode($request, JSON_THROW_ON_ERROR) . "\n");
            $line = fgets($socket);
            if ($line === false) {
                throw new \RuntimeException("QRPUSH_TEST_SERVERS: no answer from {$address} to {$request['op']}");
            }
            $reply = json_decode($line, true, 16, JSON_THROW_ON_ERROR);
            if (isset($reply['error'])) {
                throw new \RuntimeException("the server control refused {$request['op']}: {$reply['error']}");
            }
            return $reply;
        } finally {
            fclose($socket);
        }
    }
}
