<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * The QR-login demo app (php/public/index.php) served for real: php-fpm (Fpm: QRPUSH_PHP_FPM with
 * the extension under test, several workers) behind nginx built from php/nginx.conf.template, each
 * on a free loopback port. Both are child processes stopped by their pid.
 */
final class LoginStack
{
    private const APP = __DIR__ . '/../../../php';

    public readonly string $url;
    private readonly string $dir;
    private readonly int $owner;
    private ?Fpm $fpm = null;
    private ?int $nginxPid = null;

    /**
     * @param array<string, string> $ini php_admin_value directives, e.g. ['qrpush.login_channel_mode' => 'per_login']
     */
    public function __construct(RedisServer $redis, array $ini = [], private readonly int $workers = 8)
    {
        $this->owner = getmypid();
        $this->dir = Processes::tempDir('login');
        foreach (['tmp', 'sessions', 'nginx'] as $sub) {
            mkdir("{$this->dir}/{$sub}", 0700);
        }
        try {
            $this->fpm = new Fpm($redis->url(), $this->workers, $ini + [
                'display_errors' => '0',
                'log_errors' => '1',
                'error_reporting' => (string) E_ALL,
                'error_log' => "{$this->dir}/php-errors.log",
                'sys_temp_dir' => "{$this->dir}/tmp",
                'session.save_path' => "{$this->dir}/sessions",
            ], pool: ['listen.backlog' => '256'], name: 'login');
            $this->url = $this->startNginx($this->fpm->port());
        } catch (\Throwable $e) {
            $logs = $this->logs();
            $this->stop();
            throw new \RuntimeException($e->getMessage() . "\n" . $logs, 0, $e);
        }
    }

    public function __destruct()
    {
        if ($this->owner === getmypid()) {
            $this->stop();
        }
    }

    public function stop(): void
    {
        if ($this->nginxPid !== null) {
            Processes::stop($this->nginxPid, Processes::SIGTERM);
            $this->nginxPid = null;
        }
        $this->fpm?->stop();
        Processes::removeDir($this->dir);
    }

    /** Everything the servers logged, for failure messages. */
    public function logs(): string
    {
        $out = $this->fpm?->logs() ?? '';
        foreach (['php-errors.log', 'nginx/error.log', 'nginx.out'] as $file) {
            $text = @file_get_contents("{$this->dir}/{$file}");
            if ($text !== false && $text !== '') {
                $out .= "--- {$file} ---\n{$text}\n";
            }
        }
        return $out;
    }

    /** PHP errors and warnings the app logged (must stay empty). */
    public function phpErrors(): string
    {
        return (string) @file_get_contents("{$this->dir}/php-errors.log");
    }

    private function startNginx(int $fpmPort): string
    {
        $template = (string) file_get_contents(self::APP . '/nginx.conf.template');
        for ($attempt = 1; ; $attempt++) {
            $port = Processes::freePort();
            $conf = strtr($template, [
                '@@USER@@' => Fpm::asRoot() ? 'root' : (string) get_current_user(),
                '@@PREFIX@@' => "{$this->dir}/nginx",
                '@@LISTEN@@' => "127.0.0.1:{$port}",
                '@@ROOT@@' => realpath(self::APP . '/public'),
                '@@FPM@@' => "127.0.0.1:{$fpmPort}",
            ]);
            file_put_contents("{$this->dir}/nginx.conf", $conf);
            $command = [
                'nginx', '-p', "{$this->dir}/nginx/", '-e', "{$this->dir}/nginx/error.log",
                '-c', "{$this->dir}/nginx.conf", '-g', 'daemon off;',
            ];
            [, $this->nginxPid] = Processes::start($command, "{$this->dir}/nginx.out", "nginx on port {$port}");
            $pid = $this->nginxPid;
            $url = "http://127.0.0.1:{$port}";
            $up = Processes::waitFor(static function () use ($pid, $url): bool {
                if (!Processes::isRunning($pid)) {
                    return true;
                }
                try {
                    return (new LoginHttp($url))->get('/api/me')->status === 200;
                } catch (\RuntimeException) {
                    return false;
                }
            }, 10.0, 0.02);
            if ($up && Processes::isRunning($pid)) {
                return $url;
            }
            Processes::stop($pid);
            $this->nginxPid = null;
            if ($attempt >= 3) {
                throw new \RuntimeException("nginx did not start on {$url}");
            }
        }
    }
}
