<?php

declare(strict_types=1);

namespace QrPush\Tests;

/** What a finished child process left: exit code and output. */
final class ProcessResult
{
    public function __construct(
        public readonly int $exitCode,
        public readonly string $stdout,
        public readonly string $stderr,
        public readonly string $command,
    ) {
    }

    public function describe(): string
    {
        return "`{$this->command}` exited with {$this->exitCode}\n--- stdout ---\n{$this->stdout}\n--- stderr ---\n{$this->stderr}";
    }
}

/**
 * Runs a child `php` (QRPUSH_PHP) with the extension under test loaded from QRPUSH_EXT and the
 * given `qrpush.*` directives: the only way to test the static facade and php.ini directives,
 * which are PHP_INI_SYSTEM|PERDIR and fixed once a process is running.
 */
final class PhpProcess
{
    public static function binary(): string
    {
        return (string) getenv('QRPUSH_PHP');
    }

    public static function extension(): string
    {
        return (string) getenv('QRPUSH_EXT');
    }

    /**
     * Runs `php -d extension=... [-d k=v ...] <args>`.
     *
     * @param array<string, string> $ini directives, e.g. ['qrpush.url' => 'redis://...']
     * @param list<string> $args arguments after the -d options (a script, -r code, --ri qrpush, ...)
     */
    public static function run(array $ini, array $args, float $timeout = 20.0): ProcessResult
    {
        $command = [self::binary(), '-d', 'extension=' . self::extension(), '-d', 'display_errors=stderr', '-d', 'log_errors=0'];
        foreach ($ini as $name => $value) {
            array_push($command, '-d', "{$name}={$value}");
        }
        array_push($command, ...$args);
        return self::exec($command, $timeout);
    }

    /** Runs PHP code (without the `<?php` tag) in a child php via a temporary script. */
    public static function code(array $ini, string $code, float $timeout = 20.0): ProcessResult
    {
        $dir = Processes::tempDir('php');
        try {
            $script = "{$dir}/script.php";
            file_put_contents($script, "<?php\n" . $code);
            return self::run($ini, [$script], $timeout);
        } finally {
            Processes::removeDir($dir);
        }
    }

    /**
     * Runs an argv (no shell) and collects its output, killing it after `$timeout` seconds.
     *
     * @param list<string> $command
     * @param array<string, string>|null $env
     */
    public static function exec(array $command, float $timeout = 20.0, ?array $env = null, string $stdin = ''): ProcessResult
    {
        if (PHP_OS_FAMILY === 'Windows') {
            return self::execThroughFiles($command, $timeout, $env, $stdin);
        }
        $proc = proc_open($command, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        if (!\is_resource($proc)) {
            throw new \RuntimeException('cannot run ' . implode(' ', $command));
        }
        fwrite($pipes[0], $stdin);
        fclose($pipes[0]);
        stream_set_blocking($pipes[1], false);
        stream_set_blocking($pipes[2], false);
        $out = ['', ''];
        $deadline = microtime(true) + $timeout;
        $open = [1 => $pipes[1], 2 => $pipes[2]];
        while ($open) {
            $remaining = $deadline - microtime(true);
            if ($remaining <= 0) {
                proc_terminate($proc, Processes::SIGKILL);
                break;
            }
            $read = array_values($open);
            $write = $except = null;
            if (@stream_select($read, $write, $except, 0, (int) min(200000, $remaining * 1e6)) === false) {
                break;
            }
            foreach ($open as $i => $pipe) {
                $chunk = fread($pipe, 65536);
                if ($chunk !== false && $chunk !== '') {
                    $out[$i - 1] .= $chunk;
                } elseif (feof($pipe)) {
                    fclose($pipe);
                    unset($open[$i]);
                }
            }
        }
        foreach ($open as $pipe) {
            fclose($pipe);
        }
        $code = proc_close($proc);
        if (microtime(true) >= $deadline) {
            $out[1] .= "\n[killed after {$timeout} s]";
        }
        return new ProcessResult($code, $out[0], $out[1], self::render($command));
    }

    /**
     * exec() for Windows, where proc_open()'s pipes cannot be made non-blocking: reading one pipe
     * while the child fills the other would deadlock both. The child writes to files instead; its
     * exit is polled, bounded by `$timeout`.
     *
     * @param list<string> $command
     * @param array<string, string>|null $env
     */
    private static function execThroughFiles(array $command, float $timeout, ?array $env, string $stdin): ProcessResult
    {
        $dir = Processes::tempDir('exec');
        try {
            file_put_contents("{$dir}/stdin", $stdin);
            $proc = proc_open(
                $command,
                [0 => ['file', "{$dir}/stdin", 'r'], 1 => ['file', "{$dir}/stdout", 'w'], 2 => ['file', "{$dir}/stderr", 'w']],
                $pipes,
                null,
                $env,
            );
            if (!\is_resource($proc)) {
                throw new \RuntimeException('cannot run ' . implode(' ', $command));
            }
            $deadline = microtime(true) + $timeout;
            while (($status = proc_get_status($proc))['running'] && microtime(true) < $deadline) {
                usleep(2000);
            }
            $killed = $status['running'];
            if ($killed) {
                proc_terminate($proc);
            }
            $code = proc_close($proc);
            $code = $killed || $status['exitcode'] === -1 ? $code : $status['exitcode'];
            $stderr = (string) file_get_contents("{$dir}/stderr") . ($killed ? "\n[killed after {$timeout} s]" : '');
            return new ProcessResult($code, (string) file_get_contents("{$dir}/stdout"), $stderr, self::render($command));
        } finally {
            Processes::removeDir($dir);
        }
    }

    /** @param list<string> $command */
    private static function render(array $command): string
    {
        return implode(' ', array_map(
            static fn (string $a): string => preg_match('/^[\w.\/=:@,+-]+$/', $a) ? $a : escapeshellarg($a),
            $command,
        ));
    }
}
