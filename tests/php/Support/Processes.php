<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * Child processes of the test run (redis-server, php-fpm): started with proc_open, signalled and
 * reaped by their own handle (so by their pid, never by name), and killed by a shutdown function
 * if a test left one running. Also: free loopback ports and temporary directories.
 */
final class Processes
{
    public const SIGKILL = 9;
    public const SIGTERM = 15;
    public const SIGCONT = 18;
    public const SIGSTOP = 19;

    /** @var array<int, array{proc: resource, what: string}> pid => process */
    private static array $children = [];
    private static ?int $owner = null;

    /**
     * Starts `$command` (an argv array: no shell involved, so the pid is the program's own) with
     * stdin from the null device and stdout+stderr appended to `$log`.
     *
     * @param list<string> $command
     * @return array{0: resource, 1: int} the proc handle and the pid
     */
    public static function start(array $command, string $log, string $what, ?string $cwd = null): array
    {
        self::registerShutdown();
        $proc = proc_open(
            $command,
            [0 => ['null'], 1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']],
            $pipes,
            $cwd,
        );
        if (!\is_resource($proc)) {
            throw new \RuntimeException("cannot start {$what}: " . implode(' ', $command));
        }
        $pid = proc_get_status($proc)['pid'];
        self::$children[$pid] = ['proc' => $proc, 'what' => $what];
        return [$proc, $pid];
    }

    public static function isRunning(int $pid): bool
    {
        if (!isset(self::$children[$pid])) {
            return false;
        }
        $status = proc_get_status(self::$children[$pid]['proc']);
        return $status['running'];
    }

    public static function signal(int $pid, int $signal): void
    {
        if (isset(self::$children[$pid]) && self::$owner === getmypid()) {
            proc_terminate(self::$children[$pid]['proc'], $signal);
        }
    }

    /**
     * Sends `$signal` and waits (bounded) for the process to exit; SIGKILL if it did not. Idempotent.
     */
    public static function stop(int $pid, int $signal = self::SIGTERM, float $grace = 5.0): void
    {
        if (!isset(self::$children[$pid]) || self::$owner !== getmypid()) {
            return;
        }
        $proc = self::$children[$pid]['proc'];
        if (proc_get_status($proc)['running']) {
            proc_terminate($proc, self::SIGCONT); // a frozen process cannot handle SIGTERM
            proc_terminate($proc, $signal);
            if (!self::waitExit($proc, $grace)) {
                proc_terminate($proc, self::SIGKILL);
                self::waitExit($proc, 5.0);
            }
        }
        proc_close($proc);
        unset(self::$children[$pid]);
    }

    /** @param resource $proc */
    private static function waitExit($proc, float $seconds): bool
    {
        $deadline = microtime(true) + $seconds;
        while (proc_get_status($proc)['running']) {
            if (microtime(true) > $deadline) {
                return false;
            }
            usleep(2000);
        }
        return true;
    }

    /** Kills whatever a test (or a failing tearDown) left running; never in a forked child. */
    public static function killLeftovers(): void
    {
        if (self::$owner !== getmypid()) {
            return;
        }
        foreach (array_keys(self::$children) as $pid) {
            self::stop($pid, self::SIGKILL, 2.0);
        }
    }

    private static function registerShutdown(): void
    {
        if (self::$owner === null) {
            self::$owner = getmypid();
            register_shutdown_function([self::class, 'killLeftovers']);
        }
    }

    /**
     * Ports no test server may take: QRPUSH_RESERVED_PORTS (space- or comma-separated), by default
     * 2024 (taken on the project's machines) and 6379 (a developer's own Redis). scripts/lib.sh and
     * the Rust harness (qrpush-test-support) read the same variable.
     */
    public static function isReserved(int $port): bool
    {
        $list = getenv('QRPUSH_RESERVED_PORTS');
        $reserved = preg_split('/[\s,]+/', $list === false ? '2024 6379' : $list, -1, PREG_SPLIT_NO_EMPTY);
        return \in_array((string) $port, $reserved, true);
    }

    /**
     * A loopback TCP port nobody listens on now: bind port 0, read the port, close. Never a
     * reserved one.
     */
    public static function freePort(): int
    {
        for ($i = 0; $i < 20; $i++) {
            $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
            if ($server === false) {
                throw new \RuntimeException("cannot bind a loopback port: {$errstr}");
            }
            $name = stream_socket_get_name($server, false);
            fclose($server);
            $port = (int) substr($name, strrpos($name, ':') + 1);
            if ($port > 0 && !self::isReserved($port)) {
                return $port;
            }
        }
        throw new \RuntimeException('no free loopback port');
    }

    /** The parent's pid (from /proc, so no posix extension is needed): it changes when the parent dies. */
    public static function parentPid(): int
    {
        $stat = (string) @file_get_contents('/proc/self/stat');
        return (int) (explode(' ', substr($stat, strrpos($stat, ')') + 2))[1] ?? 0);
    }

    public static function tempDir(string $what): string
    {
        $dir = sys_get_temp_dir() . '/qrpush-test-' . $what . '-' . getmypid() . '-' . bin2hex(random_bytes(4));
        if (!mkdir($dir, 0700, true)) {
            throw new \RuntimeException("cannot create {$dir}");
        }
        return $dir;
    }

    public static function removeDir(string $dir): void
    {
        if (!is_dir($dir) || !str_contains($dir, '/qrpush-test-')) {
            return;
        }
        foreach (scandir($dir) ?: [] as $entry) {
            if ($entry === '.' || $entry === '..') {
                continue;
            }
            $path = "{$dir}/{$entry}";
            is_dir($path) && !is_link($path) ? self::removeDir($path) : @unlink($path);
        }
        @rmdir($dir);
    }

    /** Polls `$condition` until it returns a truthy value or `$seconds` pass; returns its last value. */
    public static function waitFor(callable $condition, float $seconds, float $interval = 0.01): mixed
    {
        $deadline = microtime(true) + $seconds;
        do {
            $value = $condition();
            if ($value) {
                return $value;
            }
            usleep((int) ($interval * 1e6));
        } while (microtime(true) < $deadline);
        return $condition();
    }
}
