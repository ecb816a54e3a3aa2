<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;
use QrPush\ConnectionException;
use QrPush\ServerException;
use QrPush\TimeoutException;

/**
 * A Redis password never shows. With it in the URL (php.ini and Client, redis:// and rediss:// with
 * a TLS configuration), every kind of failure — wrong password, refused connection, timeouts,
 * NOPERM, TLS failures, an invalid URL — is run, and the password (raw, percent-encoded or a piece
 * of it) must appear in none of: getMessage(), (string) $e, getTraceAsString(), stats() (var_export,
 * print_r, var_dump), `php --ri qrpush`, phpinfo(), the PHP error log, php-fpm's logs and responses.
 *
 * Not covered on purpose, by PHP's design: ini_get('qrpush.url') and ini_get_all('qrpush') return
 * the raw php.ini string, password included (the directive is the user's own text); and an exception
 * thrown by `new Client($url)` carries the caller's own $url in getTrace() args unless
 * zend.exception_ignore_args=On (php.ini-production sets it).
 */
final class SecretsTest extends TestCase
{
    private const PASSWORD = 'Pw-9f2b@c/7:Kq%Zx';

    /** What must not show: the password, its URL encoding, and pieces of both. */
    private static function needles(): array
    {
        return [self::PASSWORD, rawurlencode(self::PASSWORD), 'Pw-9f2b', '7:Kq', 'Kq%Zx', 'Kq%25Zx'];
    }

    private static function assertClean(string $what, string $text): void
    {
        foreach (self::needles() as $needle) {
            self::assertStringNotContainsString($needle, $text, "{$what} shows (part of) the password");
        }
    }

    private static function url(string $scheme, int $port, string $user = ''): string
    {
        return "{$scheme}://{$user}:" . rawurlencode(self::PASSWORD) . "@127.0.0.1:{$port}/0";
    }

    private static function assertExceptionClean(string $case, \Throwable $e): void
    {
        self::assertClean("{$case}: getMessage()", $e->getMessage());
        self::assertClean("{$case}: (string)", (string) $e);
        self::assertClean("{$case}: getTraceAsString()", $e->getTraceAsString());
        // The frame of the QrPush call itself, with its arguments (the test's own frames hold
        // objects that know the password, such as the RedisServer started with it).
        self::assertClean("{$case}: the throwing frame", var_export($e->getTrace()[0] ?? [], true));
    }

    private static function assertStatsClean(string $case, Client $client): void
    {
        $stats = $client->stats();
        self::assertNotNull($stats['last_error'], "{$case}: the failure is in the stats");
        self::assertClean("{$case}: var_export(stats())", var_export($stats, true));
        self::assertClean("{$case}: print_r(stats())", print_r($stats, true));
        ob_start();
        var_dump($stats, $client);
        self::assertClean("{$case}: var_dump", (string) ob_get_clean());
        self::assertClean("{$case}: print_r(client)", print_r($client, true));
    }

    public function testFailuresOfClientsShowNoPassword(): void
    {
        $options = ['connect_timeout' => 0.3, 'timeout' => 0.3];
        $cases = [];

        $server = $this->redis('the-right-one');
        $cases['wrong password'] = [new Client(self::url('redis', $server->port()), $options), ServerException::class];

        $acl = $this->redis();
        $acl->command('ACL', 'SETUSER', 'app', 'on', '>' . self::PASSWORD, '~*', '&allowed', '+@all');
        $cases['NOPERM'] = [new Client(self::url('redis', $acl->port(), 'app'), $options), ServerException::class];
        $cases['unknown user'] = [new Client(self::url('redis', $acl->port(), 'nobody'), $options), ServerException::class];

        // Windows reports a refused connect only after retrying the SYN for about 2 s: past the
        // 0.3 s bound there, so either failure class (what matters here is the password).
        $cases['refused'] = [
            new Client(self::url('redis', Processes::freePort(), 'app'), $options),
            PHP_OS_FAMILY === 'Windows' ? null : ConnectionException::class,
        ];

        // A port whose connections the kernel accepts and nobody answers: the login times out
        // (portable, unlike freezing a redis-server with SIGSTOP).
        $silent = stream_socket_server('tcp://127.0.0.1:0');
        $silentPort = (int) substr(strrchr(stream_socket_get_name($silent, false), ':'), 1);
        $cases['timeout'] = [new Client(self::url('redis', $silentPort), $options), TimeoutException::class];

        // rediss:// with a TLS configuration: a missing CA file, a handshake nobody answers, and
        // a plain port answering a ClientHello. The CA path must be absolute on this OS (Windows
        // wants a drive), or the option is refused as invalid before any connection.
        $missingCa = PHP_OS_FAMILY === 'Windows' ? 'C:\\nonexistent\\qrpush-ca.pem' : '/nonexistent/qrpush-ca.pem';
        $cases['tls: missing CA file'] = [
            new Client(self::url('rediss', $silentPort, 'app'), $options + ['tls_ca_file' => $missingCa, 'tls_server_name' => 'redis.internal']),
            ConnectionException::class,
        ];
        $cases['tls: handshake timeout'] = [
            new Client(self::url('rediss', $silentPort, 'app'), $options + ['tls_verify' => 'none']),
            TimeoutException::class,
        ];
        $cases['tls: not a TLS port'] = [
            new Client(self::url('rediss', $acl->port(), 'app'), $options + ['tls_verify' => 'none']),
            null,
        ];

        try {
            foreach ($cases as $case => [$client, $class]) {
                foreach (['publish' => static fn () => $client->publish('forbidden', 'x'), 'ping' => static fn () => $client->ping()] as $call => $fn) {
                    if ($case === 'NOPERM' && $call === 'ping') {
                        continue; // PING is allowed
                    }
                    try {
                        $fn();
                        self::fail("{$case}: {$call} did not fail");
                    } catch (\QrPush\Exception $e) {
                        // The first call's class; a second one may be cut short by the circuit breaker.
                        if ($class !== null && $call === 'publish') {
                            self::assertSame($class, $e::class, "{$case}: " . $e->getMessage());
                        }
                        self::assertExceptionClean("{$case} ({$call})", $e);
                    }
                }
                self::assertStatsClean($case, $client);
            }
        } finally {
            fclose($silent);
        }
    }

    public function testInvalidUrlsShowNoPassword(): void
    {
        foreach ([
            'rediss://app:' . rawurlencode(self::PASSWORD) . '@127.0.0.1:99999',
            'rediss://app:' . rawurlencode(self::PASSWORD) . '@127.0.0.1/x',
            'rediss://app:' . rawurlencode(self::PASSWORD) . '@127.0.0.1?ca_file=/x',
            // Unencoded: the '/' moves the rest of the password into the path.
            'redis://app:' . self::PASSWORD . '@127.0.0.1',
            'unix:///run/redis.sock?password=' . self::PASSWORD . '&db=x',
        ] as $url) {
            $e = self::assertThrowsExactly(\ValueError::class, static fn () => new Client($url));
            self::assertClean('invalid URL: getMessage()', $e->getMessage());
            // The URL is the caller's own argument of the frame that threw: PHP keeps it in the
            // trace unless zend.exception_ignore_args=On (php.ini-production's value; PHP's own
            // default is Off, and getTraceAsString() then shows its first 15 bytes).
            if (\in_array(strtolower((string) ini_get('zend.exception_ignore_args')), ['1', 'on', 'yes', 'true'], true)) {
                self::assertExceptionClean('invalid URL', $e);
            } else {
                self::assertSame($url, $e->getTrace()[0]['args'][0] ?? null, 'PHP\'s design, not QrPush\'s');
            }
        }
    }

    /**
     * The static facade configured by php.ini, in a child php with its error log on: failures,
     * stats, phpinfo() and an exception left uncaught (logged and displayed), then `php --ri`.
     */
    public function testPhpIniFacadePhpinfoAndTheErrorLogShowNoPassword(): void
    {
        $server = $this->redis('the-right-one');
        $dir = Processes::tempDir('secrets');
        try {
            $log = "{$dir}/php-error.log";
            $ini = [
                'qrpush.url' => self::url('rediss', $server->port(), 'app'),
                'qrpush.tls_verify' => '"none"', // quoted: php.ini reads a bare none as ''
                'qrpush.tls_server_name' => 'redis.internal',
                'qrpush.connect_timeout' => '0.3',
                'log_errors' => '1',
                'error_log' => $log,
            ];
            $plain = ['qrpush.url' => self::url('redis', $server->port(), 'app')] + $ini;
            $code = <<<'PHP'
                foreach ([fn () => QrPush::publish('c', 'x'), fn () => QrPush::ping()] as $fn) {
                    try {
                        $fn();
                    } catch (QrPush\Exception $e) {
                        echo get_class($e), "\n", $e, "\n", $e->getTraceAsString(), "\n";
                        error_log((string) $e);
                        trigger_error($e->getMessage(), E_USER_WARNING);
                    }
                }
                var_export(QrPush::stats());
                print_r(QrPush::stats());
                var_dump(QrPush::stats());
                phpinfo(INFO_MODULES);
                echo ini_get('qrpush.tls_server_name'), "\n";
                QrPush::publish('c', 'uncaught');
                PHP;
            foreach (['rediss' => $ini, 'redis' => $plain] as $scheme => $settings) {
                @unlink($log);
                $result = PhpProcess::code($settings, $code);
                self::assertNotSame(0, $result->exitCode, 'the last publish is left uncaught');
                self::assertStringContainsString('QrPush\\', $result->stdout . $result->stderr);
                self::assertStringContainsString('Default client (this process)', $result->stdout);
                self::assertClean("{$scheme}: stdout", $result->stdout);
                self::assertClean("{$scheme}: stderr", $result->stderr);
                $logged = (string) @file_get_contents($log);
                self::assertStringContainsString('Uncaught QrPush\\', $logged, "{$scheme}: the error log is written");
                self::assertClean("{$scheme}: the PHP error log", $logged);
            }

            // php --ri, and a startup warning about an invalid URL holding the password.
            $info = PhpProcess::run($ini, ['--ri', 'qrpush']);
            self::assertStringContainsString('qrpush.url => rediss://app:<redacted>@127.0.0.1:', $info->stdout);
            self::assertClean('php --ri', $info->stdout . $info->stderr);
            @unlink($log);
            $bad = PhpProcess::run(['qrpush.url' => 'redis://app:' . self::PASSWORD . '@127.0.0.1'] + $ini, ['--ri', 'qrpush']);
            $shown = $bad->stdout . $bad->stderr . (string) @file_get_contents($log);
            self::assertStringContainsString('PHP Startup: qrpush.url: ', $shown);
            self::assertClean('startup warning', $shown);

            // PHP's design, documented: ini_get() returns the directive's raw text.
            $raw = PhpProcess::code($ini, "echo ini_get('qrpush.url');");
            self::assertSame($ini['qrpush.url'], $raw->stdout);
        } finally {
            Processes::removeDir($dir);
        }
    }

    /** php-fpm with a wrong password: responses, stats and every log stay clean. */
    #[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
    public function testPhpFpmResponsesAndLogsShowNoPassword(): void
    {
        $server = $this->redis('the-right-one');
        $dir = Processes::tempDir('secrets-fpm');
        $log = "{$dir}/php-error.log";
        // Every request first logs a failure the way an application would (error_log of the whole
        // exception, and a warning with its message).
        file_put_contents("{$dir}/prepend.php", <<<'PHP'
            <?php
            if (isset($_GET['log'])) {
                try {
                    QrPush::ping();
                } catch (QrPush\Exception $e) {
                    error_log((string) $e);
                    trigger_error($e->getMessage(), E_USER_WARNING);
                }
            }
            PHP);
        $fpm = new Fpm(self::url('redis', $server->port(), 'app'), 1, [
            'display_errors' => '0',
            'log_errors' => '1',
            'error_log' => $log,
            'auto_prepend_file' => "{$dir}/prepend.php",
        ]);
        try {
            $bodies = [];
            for ($i = 0; $i < 3; $i++) {
                $bodies[] = $fpm->request('publish.php', ['channel' => 'c', 'message' => 'x', 'log' => '1']);
            }
            $last = Fpm::decode(end($bodies));
            self::assertSame('QrPush\ServerException', $last['error'] ?? null, end($bodies));
            self::assertStringStartsWith('WRONGPASS', $last['message']);
            self::assertSame('redis://app:<redacted>@127.0.0.1:' . $server->port() . '/0', $last['stats']['endpoint']);
            self::assertClean('php-fpm responses', implode("\n", $bodies));
            $logged = (string) @file_get_contents($log);
            self::assertStringContainsString('WRONGPASS', $logged, 'the error log is written');
            self::assertClean('php-fpm error log', $logged);
            self::assertClean('php-fpm master log', $fpm->logs());
        } finally {
            $fpm->stop();
            Processes::removeDir($dir);
        }
    }
}
