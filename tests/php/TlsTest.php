<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;
use QrPush\ConnectionException;
use QrPush\ServerException;

/**
 * `rediss://` as PHP sees it, against a real TLS redis-server: a CA and a server certificate
 * (localhost, 127.0.0.1) made by the openssl CLI for this class (TestPki), plus an unrelated CA.
 * The TLS settings work as Client options, php.ini directives (phpinfo shows them) and in php-fpm; a
 * failed verification is a ConnectionException; bad values are ValueErrors or startup warnings; no
 * password shows. How TLS itself behaves (connection reuse, names, verify none, pool keys,
 * timeouts, fork) is the core's to prove: crates/qrpush-core/tests/tls.rs.
 *
 * The server also listens on a plain port: the test's own subscriber and admin connections use it.
 */
#[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
final class TlsTest extends TestCase
{
    use UsesTestPki;

    private static function file(string $name): string
    {
        return self::$pki . "/{$name}";
    }

    /**
     * A redis-server with a TLS port (returned) beside its plain one.
     *
     * @return array{RedisServer, int}
     */
    private function tlsRedis(?string $password = null): array
    {
        $port = Processes::freePort();
        $server = $this->redis($password, TestPki::serverArgs(self::$pki, $port));
        return [$server, $port];
    }

    /** A Client for the TLS port that trusts the test CA, with `$options` on top. */
    private static function tlsClient(int $port, array $options = [], string $auth = ''): Client
    {
        return new Client("rediss://{$auth}127.0.0.1:{$port}/0", $options + [
            'tls_ca_file' => self::file('ca.pem'),
            'connect_timeout' => 1.0,
            'timeout' => 1.0,
        ]);
    }

    public function testClientOptionsPublishOverTls(): void
    {
        [$server, $port] = $this->tlsRedis();
        $channel = self::channel('tls');
        $subscriber = $this->subscribe($server, $channel);
        $client = self::tlsClient($port, ['tls_server_name' => 'localhost']);
        self::assertSame(1, $client->publish($channel, ['i' => 0]));
        self::assertSame([1, 1], $client->publishMany([[$channel, 'a'], [$channel, 'b']]));
        self::assertGreaterThan(0.0, $client->ping());
        self::assertSame(['{"i":0}', 'a', 'b'], $subscriber->messages(3));
        self::assertSame("rediss://127.0.0.1:{$port}/0", $client->stats()['endpoint']);
    }

    public function testAFailedVerificationIsAConnectionException(): void
    {
        [, $port] = $this->tlsRedis();
        $client = self::tlsClient($port, ['tls_ca_file' => self::file('other-ca.pem')]);
        $e = self::assertThrowsExactly(
            ConnectionException::class,
            static fn () => $client->publish('c', 'must not arrive'),
            "connecting to Redis at 127.0.0.1:{$port} failed: TLS certificate verification failed: the server's certificate is not signed by a trusted CA",
        );
        self::assertSame(1, $e->getCode());
        self::assertStringContainsString('certificate verification failed', (string) $client->stats()['last_error']);
    }

    public function testAPasswordOverTlsWorksAndNeverShows(): void
    {
        $password = 'tls-Pw-4e1d@9';
        [$server, $port] = $this->tlsRedis($password);
        $channel = self::channel('tls');
        $subscriber = $this->subscribe($server, $channel);
        self::assertSame(1, self::tlsClient($port, [], ':' . rawurlencode($password) . '@')->publish($channel, 'auth'));
        self::assertSame(['auth'], $subscriber->messages(1));

        $wrongPassword = self::tlsClient($port, [], ':' . rawurlencode('not-' . $password) . '@');
        $e1 = self::assertThrowsExactly(ServerException::class, static fn () => $wrongPassword->publish($channel, 'x'), 'WRONGPASS');
        $wrongCa = self::tlsClient($port, ['tls_ca_file' => self::file('other-ca.pem')], ':' . rawurlencode($password) . '@');
        $e2 = self::assertThrowsExactly(ConnectionException::class, static fn () => $wrongCa->publish($channel, 'x'));
        foreach ([$e1, $e2] as $e) {
            foreach ([$e->getMessage(), (string) $e, $e->getTraceAsString()] as $shown) {
                self::assertStringNotContainsString('tls-Pw-4e1d', $shown);
            }
        }
        foreach ([$wrongPassword, $wrongCa] as $client) {
            self::assertStringNotContainsString('tls-Pw-4e1d', var_export($client->stats(), true));
            self::assertStringNotContainsString('4e1d', print_r($client->stats(), true));
        }
        self::assertSame("rediss://:<redacted>@127.0.0.1:{$port}/0", $wrongCa->stats()['endpoint']);
    }

    public function testIniDirectivesConfigureTheFacadeAndShowInPhpinfo(): void
    {
        [$server, $port] = $this->tlsRedis();
        $channel = self::channel('tls');
        $subscriber = $this->subscribe($server, $channel);
        $ini = [
            'qrpush.url' => "rediss://127.0.0.1:{$port}",
            'qrpush.tls_ca_file' => self::file('ca.pem'),
            'qrpush.tls_server_name' => 'localhost',
        ];
        $code = 'echo QrPush::publish(' . var_export($channel, true) . ", 'facade'), ' ', QrPush::stats()['endpoint'];";
        $result = PhpProcess::code($ini, $code);
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertSame("1 rediss://127.0.0.1:{$port}/0", $result->stdout);
        self::assertSame('', $result->stderr);
        self::assertSame(['facade'], $subscriber->messages(1));

        $info = PhpProcess::run($ini, ['--ri', 'qrpush']);
        self::assertSame(0, $info->exitCode, $info->describe());
        self::assertStringContainsString('qrpush.tls_ca_file => ' . self::file('ca.pem'), $info->stdout);
        self::assertStringContainsString('qrpush.tls_verify => full', $info->stdout);
        self::assertStringContainsString('qrpush.tls_server_name => localhost', $info->stdout);
        self::assertStringContainsString("qrpush.url => rediss://127.0.0.1:{$port}/0", $info->stdout);

        // A wrong CA in php.ini: the facade fails closed too.
        $result = PhpProcess::code(['qrpush.tls_ca_file' => self::file('other-ca.pem')] + $ini, <<<'PHP'
            try {
                QrPush::publish('x', 'y');
            } catch (QrPush\ConnectionException $e) {
                echo get_class($e), ': ', $e->getMessage();
            }
            PHP);
        self::assertStringStartsWith("QrPush\\ConnectionException: connecting to Redis at 127.0.0.1:{$port} failed: TLS certificate verification failed", $result->stdout, $result->describe());
        $subscriber->assertNothingMore(0.1);
    }

    public function testInvalidTlsSettingsAreValueErrorsOrStartupWarnings(): void
    {
        $cases = [
            'tls_verify' => ['fast', "tls_verify: expected full or none (insecure, for testing only), got 'fast'"],
            'tls_ca_file' => ['certs/ca.pem', "tls_ca_file: must be an absolute path to a PEM file, got 'certs/ca.pem'"],
            'tls_server_name' => ['not a name', "tls_server_name: expected a DNS name or an IP address, got 'not a name'"],
        ];
        foreach ($cases as $name => [$value, $message]) {
            self::assertThrowsExactly(
                \ValueError::class,
                static fn () => new Client('rediss://127.0.0.1:1', [$name => $value]),
                'QrPush\Client::__construct(): Argument #2 ($options) ' . $message,
            );
        }
        $result = PhpProcess::run(['qrpush.tls_verify' => 'fast'], ['--ri', 'qrpush']);
        self::assertStringContainsString(
            "qrpush.tls_verify: expected full or none (insecure, for testing only), got 'fast'; using the default 'full'",
            $result->stdout . $result->stderr,
        );
        self::assertStringContainsString('qrpush.tls_verify => full', $result->stdout);
        // php.ini reads an unquoted `none` as an empty string: that keeps verifying, and says why.
        $result = PhpProcess::run(['qrpush.tls_verify' => 'none'], ['--ri', 'qrpush']);
        self::assertStringContainsString(
            "qrpush.tls_verify: expected full or none (insecure, for testing only), got '' (php.ini reads an unquoted none, off, no or false as empty: write \"none\" in quotes); using the default 'full'",
            $result->stdout . $result->stderr,
        );
        self::assertStringContainsString('qrpush.tls_verify => full', $result->stdout);
        $result = PhpProcess::run(['qrpush.tls_verify' => '"none"'], ['--ri', 'qrpush']);
        self::assertStringContainsString('qrpush.tls_verify => none', $result->stdout, $result->describe());
        self::assertStringNotContainsString('Warning', $result->stdout . $result->stderr);
    }

    /** php-fpm workers keep their TLS connection across requests (the pool's whole point). */
    public function testFpmWorkersReuseTheirTlsConnection(): void
    {
        [$server, $port] = $this->tlsRedis();
        $channel = self::channel('tls-fpm');
        $subscriber = $this->subscribe($server, $channel);
        $fpm = new Fpm("rediss://127.0.0.1:{$port}", 1, ['qrpush.tls_ca_file' => self::file('ca.pem')]);
        try {
            $last = null;
            for ($i = 0; $i < 5; $i++) {
                $last = $fpm->requestJson('publish.php', ['channel' => $channel, 'message' => "r{$i}"]);
                self::assertSame(1, $last['receivers'] ?? null, json_encode($last));
            }
            self::assertSame(1, $last['stats']['connections_created'], json_encode($last));
            self::assertSame(5, $last['stats']['published']);
            self::assertSame(['r0', 'r1', 'r2', 'r3', 'r4'], $subscriber->messages(5));
        } finally {
            $fpm->stop();
        }
    }
}
