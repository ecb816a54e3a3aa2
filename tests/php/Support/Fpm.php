<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * A real php-fpm in the foreground: the one php-fpm harness of the PHP tests, the login stack
 * (LoginStack) and the fault suite (tests/fault). A generated config and no php.ini (`-n`), one
 * static pool on a free loopback port, the extension under test loaded by the master
 * (`-d extension=...`, as a php.ini line would, so workers are forked after its module startup)
 * and the `qrpush.*` directives given as php_admin_value. Started once a worker answers with the
 * extension loaded; stopped by its pid. Requests go through `cgi-fcgi`, the way a web server talks
 * to php-fpm.
 */
final class Fpm
{
    public const FIXTURES = __DIR__ . '/../fixtures';

    private ?int $pid = null;
    private int $port;
    /** @var array<string, int> the port of each pool of $morePools */
    private array $morePorts = [];
    private readonly string $dir;
    private readonly int $owner;
    private readonly string $binary;
    private readonly string $extension;

    /**
     * @param array<string, string> $ini more directives for the pool (php_admin_value), e.g. qrpush.*
     * @param bool $extensionInPool load the extension with php_admin_value[extension] instead: each
     *     worker then loads it after the fork (and runs its module startup itself)
     * @param array<string, string> $pool more pool directives, e.g. ['pm.max_requests' => '5']
     * @param string|null $binary the php-fpm to run (default: QRPUSH_PHP_FPM)
     * @param string|null $extension the libqrpush.so to load (default: QRPUSH_EXT)
     * @param list<string> $options more php-fpm command-line options, e.g. ['-d', 'extension=ffi']
     * @param string $name the pool's name (shows in `ps`: "php-fpm: pool NAME")
     * @param array<string, array<string, string>> $morePools more pools of the same master, by
     *     name, each with its own php_admin_values (requests() reaches them by name)
     */
    public function __construct(
        string $redisUrl,
        private readonly int $workers = 1,
        array $ini = [],
        private readonly bool $extensionInPool = false,
        private readonly array $pool = [],
        ?string $binary = null,
        ?string $extension = null,
        private readonly array $options = [],
        private readonly string $name = 'qrpush',
        private readonly array $morePools = [],
    ) {
        $this->owner = getmypid();
        $this->binary = $binary ?? self::binary();
        $this->extension = $extension ?? PhpProcess::extension();
        $this->dir = Processes::tempDir('fpm');
        $ini = ['qrpush.url' => $redisUrl] + $ini + ['display_errors' => 'stdout', 'log_errors' => '0'];
        if ($extensionInPool) {
            // php-fpm applies a pool's php_admin_values in the reverse order of the file (its list
            // is built by prepending): the extension line goes last so that it is loaded first,
            // before its own qrpush.* directives are set.
            $ini['extension'] = $this->extension;
        }
        // Another process may take the free port before php-fpm binds it: try a few ports.
        for ($attempt = 1; ; $attempt++) {
            $this->port = Processes::freePort();
            $this->morePorts = array_map(static fn (): int => Processes::freePort(), $morePools);
            if ($this->start($ini)) {
                break;
            }
            $why = $this->logs();
            $this->stop();
            if ($attempt >= 3) {
                throw new \RuntimeException("php-fpm did not start:\n{$why}");
            }
        }
        $info = $this->requestJson('info.php');
        if (($info['extension_loaded'] ?? false) !== true) {
            $why = $this->logs();
            $this->stop();
            throw new \RuntimeException('the qrpush extension is not loaded in the php-fpm worker: '
                . json_encode($info) . "\n{$why}");
        }
    }

    /** @param array<string, string> $ini */
    private function start(array $ini): bool
    {
        $conf = "{$this->dir}/php-fpm.conf";
        file_put_contents($conf, $this->config($ini));
        @unlink("{$this->dir}/fpm.log");
        $command = [$this->binary, '-n', '-F', '-y', $conf];
        if (!$this->extensionInPool) {
            array_push($command, '-d', 'extension=' . $this->extension);
        }
        array_push($command, ...$this->options);
        if (self::asRoot()) {
            $command[] = '-R';
        }
        [, $this->pid] = Processes::start($command, "{$this->dir}/fpm.out", "php-fpm on port {$this->port}");
        $ready = Processes::waitFor(
            fn (): bool => !Processes::isRunning($this->pid)
                || str_contains((string) @file_get_contents("{$this->dir}/fpm.log"), 'ready to handle connections'),
            10.0,
        );
        return $ready && Processes::isRunning($this->pid);
    }

    public static function asRoot(): bool
    {
        return \function_exists('posix_getuid') ? posix_getuid() === 0 : trim((string) shell_exec('id -u')) === '0';
    }

    public function __destruct()
    {
        if ($this->owner === getmypid()) {
            $this->stop();
            Processes::removeDir($this->dir);
        }
    }

    public static function binary(): string
    {
        return (string) getenv('QRPUSH_PHP_FPM');
    }

    /** The master's pid (null once stopped). */
    public function pid(): ?int
    {
        return $this->pid;
    }

    /** The port of the main pool, or of the pool `$pool` of $morePools. */
    public function port(?string $pool = null): int
    {
        return $pool === null ? $this->port : $this->morePorts[$pool];
    }

    /**
     * The pids of the master's children, its workers now.
     *
     * @return list<int>
     */
    public function workerPids(): array
    {
        if ($this->pid === null) {
            return [];
        }
        $children = @file_get_contents("/proc/{$this->pid}/task/{$this->pid}/children");
        if ($children !== false) {
            return array_map('intval', preg_split('/\s+/', trim($children), -1, PREG_SPLIT_NO_EMPTY));
        }
        $pids = [];
        foreach (glob('/proc/[0-9]*/stat') ?: [] as $stat) {
            $fields = explode(' ', (string) @file_get_contents($stat));
            if (($fields[3] ?? '') === (string) $this->pid) {
                $pids[] = (int) $fields[0];
            }
        }
        return $pids;
    }

    /** SIGTERM (php-fpm's graceful stop), waiting at most `$grace` seconds before SIGKILL. */
    public function stop(float $grace = 5.0): void
    {
        if ($this->pid !== null) {
            Processes::stop($this->pid, Processes::SIGTERM, $grace);
            $this->pid = null;
        }
    }

    /** The master's and workers' logs, for failure messages. */
    public function logs(): string
    {
        return "--- php-fpm log ---\n" . @file_get_contents("{$this->dir}/fpm.log")
            . "\n--- php-fpm stdout/stderr ---\n" . @file_get_contents("{$this->dir}/fpm.out");
    }

    /**
     * One GET request to a fixture script; returns the response body (headers stripped). A
     * response with a Status header (php-fpm sends one for errors) fails the calling test.
     *
     * @param array<string, string|int> $query
     */
    public function request(string $script, array $query = []): string
    {
        return $this->requests([[$script, $query]])[0];
    }

    /**
     * @param array<string, string|int> $query
     * @return array<string, mixed>
     */
    public function requestJson(string $script, array $query = []): array
    {
        return self::decode($this->request($script, $query));
    }

    /**
     * Sends requests concurrently (one cgi-fcgi each, all started before any is awaited) and
     * returns the bodies in the same order. A request is [script, query, FastCGI params, pool]:
     * the script is a fixture's name or an absolute path; the params are sent as a web server
     * sends them (e.g. ['PHP_ADMIN_VALUE' => "qrpush.channel_prefix=a:"], what nginx's
     * `fastcgi_param` does); the pool is one of $morePools (default: the main one).
     *
     * @param list<array{0: string, 1?: array<string, string|int>, 2?: array<string, string>, 3?: string|null}> $requests
     * @return list<string>
     */
    public function requests(array $requests, float $timeout = 20.0): array
    {
        $running = [];
        foreach ($requests as $i => $request) {
            [$script, $query, $params, $pool] = $request + [1 => [], 2 => [], 3 => null];
            $path = realpath(str_starts_with($script, '/') ? $script : self::FIXTURES . '/' . $script)
                ?: throw new \LogicException("no fixture {$script}");
            $out = "{$this->dir}/response-{$i}.out";
            $err = "{$this->dir}/response-{$i}.err";
            $env = [
                'PATH' => (string) getenv('PATH'),
                'GATEWAY_INTERFACE' => 'CGI/1.1',
                'SERVER_PROTOCOL' => 'HTTP/1.1',
                'REQUEST_METHOD' => 'GET',
                'SCRIPT_FILENAME' => $path,
                'SCRIPT_NAME' => '/' . $script,
                'REQUEST_URI' => '/' . $script . ($query ? '?' . http_build_query($query) : ''),
                'QUERY_STRING' => http_build_query($query),
                'DOCUMENT_ROOT' => \dirname($path),
                'SERVER_NAME' => 'localhost',
                'REMOTE_ADDR' => '127.0.0.1',
            ] + $params;
            $proc = proc_open(
                ['cgi-fcgi', '-bind', '-connect', '127.0.0.1:' . $this->port($pool)],
                [0 => ['null'], 1 => ['file', $out, 'w'], 2 => ['file', $err, 'w']],
                $pipes,
                null,
                $env,
            );
            if (!\is_resource($proc)) {
                throw new \RuntimeException('cannot run cgi-fcgi');
            }
            $running[$i] = [$proc, $out, $err, $script];
        }

        $deadline = microtime(true) + $timeout;
        $bodies = [];
        foreach ($running as $i => [$proc, $out, $err, $script]) {
            while (proc_get_status($proc)['running'] && microtime(true) < $deadline) {
                usleep(1000);
            }
            if (proc_get_status($proc)['running']) {
                proc_terminate($proc, Processes::SIGKILL);
            }
            proc_close($proc);
            $response = (string) file_get_contents($out);
            $errors = (string) file_get_contents($err);
            $split = strpos($response, "\r\n\r\n");
            if ($split === false) {
                throw new \RuntimeException("no FastCGI response for {$script} (stderr: {$errors})\n" . $this->logs());
            }
            $headers = substr($response, 0, $split);
            $body = substr($response, $split + 4);
            if (preg_match('/^Status: (\d+)/mi', $headers, $m) && (int) $m[1] >= 400) {
                throw new \RuntimeException("{$script} answered {$m[0]}:\n{$headers}\n\n{$body}\n" . $this->logs());
            }
            $bodies[] = $body;
        }
        return $bodies;
    }

    /** @return array<string, mixed> */
    public static function decode(string $body): array
    {
        $data = json_decode($body, true);
        if (!\is_array($data)) {
            throw new \RuntimeException("expected a JSON object from the endpoint, got:\n{$body}");
        }
        return $data;
    }

    /** @param array<string, string> $ini */
    private function config(array $ini): string
    {
        $lines = [
            '[global]',
            "error_log = {$this->dir}/fpm.log",
            'log_level = notice',
            'daemonize = no',
            "pid = {$this->dir}/php-fpm.pid",
            '',
            "[{$this->name}]",
            "listen = 127.0.0.1:{$this->port}",
            'listen.allowed_clients = 127.0.0.1',
            'pm = static',
            "pm.max_children = {$this->workers}",
            'catch_workers_output = yes',
            'clear_env = yes',
        ];
        foreach ($this->pool as $name => $value) {
            $lines[] = "{$name} = {$value}";
        }
        if (self::asRoot()) {
            array_push($lines, 'user = root', 'group = root');
        }
        foreach ($ini as $name => $value) {
            $lines[] = "php_admin_value[{$name}] = \"{$value}\"";
        }
        foreach ($this->morePools as $name => $poolIni) {
            array_push(
                $lines,
                '',
                "[{$name}]",
                "listen = 127.0.0.1:{$this->morePorts[$name]}",
                'listen.allowed_clients = 127.0.0.1',
                'pm = static',
                "pm.max_children = {$this->workers}",
                'catch_workers_output = yes',
                'clear_env = yes',
            );
            if (self::asRoot()) {
                array_push($lines, 'user = root', 'group = root');
            }
            foreach ($poolIni + ['display_errors' => 'stdout', 'log_errors' => '0'] as $name2 => $value) {
                $lines[] = "php_admin_value[{$name2}] = \"{$value}\"";
            }
        }
        return implode("\n", $lines) . "\n";
    }
}
