<?php

declare(strict_types=1);

namespace QrPush\Tests;

// Its one dependency beyond Processes, loaded here so that every user of this class (the PHPUnit
// bootstrap, tests/fault/suite.php) gets it.
require_once __DIR__ . '/ExternalServers.php';

/**
 * A real redis-server for one test (or one test class): a child process on a free loopback port,
 * without persistence, optionally with a password. Stopped by its pid in tearDown, by its
 * destructor, and by a shutdown function if all else failed.
 */
final class RedisServer
{
    private ?int $pid = null;
    private int $port;
    private readonly string $dir;
    private readonly int $owner;
    private bool $frozen = false;

    /**
     * @param list<string> $extraArgs more redis-server arguments (`--name value` pairs)
     * @param bool $unixSocket also listen on a Unix socket (see unixSocket())
     * @param string|null $sentinelConfig run as a Sentinel with this config (written to the server's own
     *     directory, where Sentinel rewrites it)
     */
    public function __construct(
        private readonly ?string $password = null,
        private readonly array $extraArgs = [],
        private readonly bool $unixSocket = false,
        private readonly ?string $sentinelConfig = null,
    ) {
        $this->owner = getmypid();
        $this->dir = Processes::tempDir('redis');
        // Another process may grab the free port before redis binds it: try a few ports.
        for ($attempt = 1; ; $attempt++) {
            $this->port = Processes::freePort();
            try {
                $this->start();
                return;
            } catch (\RuntimeException $e) {
                if ($attempt >= 3) {
                    throw $e;
                }
            }
        }
    }

    public function __destruct()
    {
        if ($this->owner === getmypid()) {
            $this->kill();
            Processes::removeDir($this->dir);
        }
    }

    /** redis://[:password@]127.0.0.1:port */
    public function url(?string $password = null, ?string $user = null, ?int $db = null): string
    {
        $password ??= $this->password;
        $auth = $password === null ? '' : rawurlencode($user ?? '') . ':' . rawurlencode($password) . '@';
        return "redis://{$auth}127.0.0.1:{$this->port}" . ($db === null ? '' : "/{$db}");
    }

    /** The Unix socket path (when started with $unixSocket). */
    public function unixSocket(): string
    {
        return $this->unixSocket ? "{$this->dir}/redis.sock" : throw new \LogicException('started without a Unix socket');
    }

    public function port(): int
    {
        return $this->port;
    }

    public function pid(): ?int
    {
        return $this->pid;
    }

    public function password(): ?string
    {
        return $this->password;
    }

    public function isRunning(): bool
    {
        return $this->pid !== null && self::processes()::isRunning($this->pid);
    }

    /** SIGTERM, and waits until the process is gone. */
    public function stop(): void
    {
        if ($this->pid !== null) {
            self::processes()::stop($this->pid, Processes::SIGTERM);
            $this->pid = null;
            $this->frozen = false;
        }
    }

    /** SIGKILL: no shutdown, connections reset by the kernel. */
    public function kill(): void
    {
        if ($this->pid !== null) {
            self::processes()::stop($this->pid, Processes::SIGKILL);
            $this->pid = null;
            $this->frozen = false;
        }
    }

    /** Stops and starts again on the same port (a new process: every connection is gone). */
    public function restart(): void
    {
        $this->stop();
        $this->start();
    }

    /** SIGSTOP: the kernel still accepts connections and data, but nothing is answered. */
    public function freeze(): void
    {
        if (PHP_OS_FAMILY === 'Windows' && !ExternalServers::enabled()) {
            \PHPUnit\Framework\Assert::markTestSkipped(
                'freezing redis-server needs SIGSTOP: on Windows proc_terminate() kills the process instead '
                . '(scripts/windows-check runs this test under Wine with the servers on the Linux side)',
            );
        }
        self::processes()::signal($this->requirePid(), Processes::SIGSTOP);
        $this->frozen = true;
    }

    public function thaw(): void
    {
        if ($this->frozen && $this->pid !== null) {
            self::processes()::signal($this->pid, Processes::SIGCONT);
            $this->frozen = false;
        }
    }

    /** Runs one command on a new connection; an error reply is a RuntimeException. */
    public function command(string|int|float ...$args): mixed
    {
        $reply = $this->connect()->call(...$args);
        if ($reply instanceof RespError) {
            throw new \RuntimeException("Redis answered {$args[0]} with an error: {$reply->message}");
        }
        return $reply;
    }

    /** A new admin connection, logged in. */
    public function connect(): RespConnection
    {
        $connection = new RespConnection('127.0.0.1', $this->port);
        if ($this->password !== null) {
            $reply = $connection->call('AUTH', $this->password);
            if ($reply !== 'OK') {
                throw new \RuntimeException('AUTH failed: ' . var_export($reply, true));
            }
        }
        return $connection;
    }

    /**
     * CLIENT LIST, one row per connection: ['id' => '5', 'addr' => '127.0.0.1:4711', 'name' => ...].
     *
     * @return list<array<string, string>>
     */
    public function clientList(): array
    {
        $rows = [];
        foreach (explode("\n", trim((string) $this->command('CLIENT', 'LIST'))) as $line) {
            $row = [];
            foreach (explode(' ', trim($line)) as $field) {
                [$key, $value] = explode('=', $field, 2) + [1 => ''];
                $row[$key] = $value;
            }
            $rows[] = $row;
        }
        return $rows;
    }

    /**
     * The extension's connections (named `qrpush-<pid>` by the extension), optionally of one pid.
     *
     * @return list<array<string, string>>
     */
    public function qrpushClients(?int $pid = null): array
    {
        return array_values(array_filter(
            $this->clientList(),
            static fn (array $row): bool => $pid === null
                ? str_starts_with($row['name'] ?? '', 'qrpush-')
                : ($row['name'] ?? '') === "qrpush-{$pid}",
        ));
    }

    private function start(): void
    {
        $log = "{$this->dir}/redis.log";
        $sentinel = [];
        if ($this->sentinelConfig !== null) {
            file_put_contents("{$this->dir}/sentinel.conf", $this->sentinelConfig);
            $sentinel = ["{$this->dir}/sentinel.conf", '--sentinel'];
        }
        $command = [
            getenv('REDIS_SERVER') ?: 'redis-server',
            ...$sentinel,
            '--port', (string) $this->port,
            '--bind', '127.0.0.1',
            '--save', '',
            '--appendonly', 'no',
            ...(PHP_OS_FAMILY === 'Windows' ? [] : ['--daemonize', 'no']),
            '--dir', $this->dir,
            '--logfile', '',
        ];
        if ($this->password !== null) {
            array_push($command, '--requirepass', $this->password);
        }
        if ($this->unixSocket) {
            array_push($command, '--unixsocket', $this->unixSocket(), '--unixsocketperm', '700');
        }
        array_push($command, ...$this->extraArgs);
        [, $this->pid] = self::processes()::start($command, $log, "redis-server on port {$this->port}");
        $ready = Processes::waitFor(fn (): bool => !$this->isRunning() || $this->answersPing(), 5.0);
        if (!$ready || !$this->isRunning()) {
            $output = @file_get_contents($log);
            $this->stop();
            throw new \RuntimeException("redis-server did not start on port {$this->port}:\n{$output}");
        }
    }

    private function answersPing(): bool
    {
        try {
            $connection = new RespConnection('127.0.0.1', $this->port, 0.2);
            if ($this->password !== null) {
                $connection->call('AUTH', $this->password);
            }
            return $connection->call('PING') === 'PONG';
        } catch (\RuntimeException) {
            return false;
        }
    }

    /** Who runs redis-server: this PHP (Processes), or the Linux side of the run (ExternalServers). */
    private static function processes(): string
    {
        return ExternalServers::enabled() ? ExternalServers::class : Processes::class;
    }

    private function requirePid(): int
    {
        return $this->pid ?? throw new \LogicException('redis-server is not running');
    }
}
