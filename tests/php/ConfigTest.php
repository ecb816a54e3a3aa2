<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;
use QrPush\Client;
use QrPush\TimeoutException;

/**
 * Configuration: Client options (strictly validated), the qrpush.* directives (leniently: a
 * startup warning and the default), and phpinfo, which must never show a password.
 */
final class ConfigTest extends TestCase
{
    private const DOCUMENTED_OPTIONS = ['connect_timeout', 'timeout', 'pool_size', 'channel_prefix', 'max_payload'];

    public function testUnknownOptionIsAValueErrorNamingTheKnownOptions(): void
    {
        foreach (['colour' => 'red', 'Timeout' => 1, 'url ' => 'x', 5 => 'x'] as $key => $value) {
            $e = self::assertThrowsExactly(\ValueError::class, static fn () => new Client('redis://127.0.0.1:1', [$key => $value]));
            self::assertStringContainsString("'{$key}'", $e->getMessage());
            self::assertStringContainsString('Argument #2 ($options)', $e->getMessage());
            foreach (self::DOCUMENTED_OPTIONS as $known) {
                self::assertStringContainsString($known, $e->getMessage(), "the message names the known option {$known}");
            }
        }
    }

    /** @return iterable<string, array{string, mixed}> */
    public static function invalidOptionValues(): iterable
    {
        foreach ([0, -1, 1025, 'many', '', 2.5, '3 connections', PHP_INT_MAX] as $v) {
            yield 'pool_size ' . var_export($v, true) => ['pool_size', $v];
        }
        foreach (['timeout', 'connect_timeout'] as $name) {
            foreach ([0, 0.0, -1, -0.5, 3601, 'NaN', 'INF', INF, NAN, 'soon', ''] as $v) {
                yield "{$name} " . var_export($v, true) => [$name, $v];
            }
        }
        foreach ([0, -5, 536870913, '1MB', 1.5] as $v) {
            yield 'max_payload ' . var_export($v, true) => ['max_payload', $v];
        }
        foreach (["a\nb", "tab\there", "nul\0", str_repeat('p', 257)] as $v) {
            yield 'channel_prefix ' . json_encode($v) => ['channel_prefix', $v];
        }
    }

    #[DataProvider('invalidOptionValues')]
    public function testInvalidOptionValueIsAValueError(string $name, mixed $value): void
    {
        $e = self::assertThrowsExactly(\ValueError::class, static fn () => new Client('redis://127.0.0.1:1', [$name => $value]));
        self::assertStringContainsString($name, $e->getMessage());
    }

    /** @return iterable<string, array{mixed}> */
    public static function wronglyTypedOptionValues(): iterable
    {
        yield 'bool' => [true];
        yield 'array' => [[1]];
        yield 'object' => [new \stdClass()];
    }

    #[DataProvider('wronglyTypedOptionValues')]
    public function testWronglyTypedOptionValueIsATypeError(mixed $value): void
    {
        $e = self::assertThrowsExactly(\TypeError::class, static fn () => new Client('redis://127.0.0.1:1', ['timeout' => $value]));
        self::assertStringContainsString('timeout', $e->getMessage());
    }

    public function testOptionValuesMayBeIntFloatOrString(): void
    {
        $server = $this->redis();
        // Each database number is its own endpoint, hence its own pool, sized by its first client.
        foreach ([1 => 3, 2 => '3', 3 => 3.0, 4 => ' 3 '] as $db => $size) {
            $client = new Client($server->url(db: $db), ['pool_size' => $size, 'timeout' => $size, 'connect_timeout' => $size]);
            self::assertSame(3, $client->stats()['pool_size'], 'pool_size ' . var_export($size, true));
        }
        foreach ([10, '10', 10.0] as $max) {
            $client = self::client($server, ['max_payload' => $max]);
            self::assertSame(0, $client->publish('c', str_repeat('x', 10)), 'max_payload ' . var_export($max, true));
            self::assertThrowsExactly(\ValueError::class, static fn () => $client->publish('c', str_repeat('x', 11)), 'max_payload');
        }
        foreach ([0.25, '0.25', 1, '1'] as $timeout) {
            self::assertGreaterThan(0.0, self::client($server, ['timeout' => $timeout, 'connect_timeout' => $timeout])->ping());
        }
        // null options (the documented default) and an empty array are the same as none.
        self::assertGreaterThan(0.0, (new Client($server->url(), null))->ping());
        self::assertGreaterThan(0.0, (new Client($server->url(), []))->ping());
    }

    public function testTimeoutGivenAsStringIsApplied(): void
    {
        $server = $this->redis();
        $client = new Client($server->url(), ['connect_timeout' => '0.3', 'timeout' => '0.3']);
        $server->freeze();
        $start = hrtime(true);
        try {
            self::assertThrowsExactly(TimeoutException::class, static fn () => $client->publish('c', 'x'));
        } finally {
            $server->thaw();
        }
        $elapsed = (hrtime(true) - $start) / 1e9;
        self::assertGreaterThanOrEqual(0.25, $elapsed);
        self::assertLessThan(0.9, $elapsed, "connect_timeout '0.3' bounds the handshake");
    }

    /** @return iterable<string, array{string}> */
    public static function invalidUrls(): iterable
    {
        yield 'empty' => [''];
        yield 'ftp scheme' => ['ftp://user:s3cretpw@127.0.0.1'];
        yield 'tls with a query parameter (TLS options are settings)' => ['rediss://user:s3cretpw@127.0.0.1:6380?verify=none'];
        yield 'port out of range' => ['redis://user:s3cretpw@127.0.0.1:99999'];
        yield 'port 0' => ['redis://user:s3cretpw@127.0.0.1:0'];
        yield 'db not a number' => ['redis://user:s3cretpw@127.0.0.1:6379/zero'];
        yield 'unknown query parameter' => ['redis://user:s3cretpw@127.0.0.1:6379?password=s3cretpw'];
        yield 'no host' => ['redis://user:s3cretpw@:6379'];
        yield 'not a URL' => ['s3cretpw'];
        yield 'relative unix path' => ['unix:s3cretpw/redis.sock'];
        yield 'unix URL with an unknown parameter' => ['unix:///run/redis.sock?secret=s3cretpw'];
    }

    #[DataProvider('invalidUrls')]
    public function testInvalidUrlIsAValueErrorThatDoesNotEchoThePassword(string $url): void
    {
        $e = self::assertThrowsExactly(\ValueError::class, static fn () => new Client($url));
        self::assertStringContainsString('Argument #1 ($url)', $e->getMessage());
        self::assertStringNotContainsString('s3cretpw', $e->getMessage());
    }

    /**
     * `unix://var/run/redis.sock` (two slashes, a common slip for unix:///var/run/redis.sock) parses
     * as host "var" + path "/run/redis.sock": the host must not be silently dropped, or QrPush
     * connects to another socket than the one written. Fails with qrpush 0.1.0 (accepted).
     */
    #[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
    public function testUnixUrlWithAHostPartIsRejected(): void
    {
        $e = self::assertThrowsExactly(\ValueError::class, static fn () => new Client('unix://var/run/redis.sock'));
        self::assertStringContainsString('Argument #1 ($url)', $e->getMessage());
    }

    #[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
    public function testUnixUrlCredentialsAreRedacted(): void
    {
        $endpoint = (new Client('unix:///run/redis.sock?db=2&user=app&password=s3cretpw'))->stats()['endpoint'];
        self::assertStringContainsString('/run/redis.sock', $endpoint);
        self::assertStringContainsString('<redacted>', $endpoint);
        self::assertStringNotContainsString('s3cretpw', $endpoint);
    }

    public function testNullUrlMeansTheIniDirective(): void
    {
        // scripts/test runs PHPUnit with -d qrpush.url=redis://127.0.0.1:1.
        self::assertSame('redis://127.0.0.1:1/0', (new Client())->stats()['endpoint']);
        self::assertSame('redis://127.0.0.1:1/0', (new Client(null, ['timeout' => 2]))->stats()['endpoint']);
    }

    public function testRiRedactsThePassword(): void
    {
        $result = PhpProcess::run(['qrpush.url' => 'redis://user:s3cretpw@127.0.0.1:6399/2'], ['--ri', 'qrpush']);
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertStringContainsString('redis://user:<redacted>@127.0.0.1:6399/2', $result->stdout);
        self::assertStringContainsString('qrpush.pool_size', $result->stdout);
        self::assertStringContainsString(\QrPush::VERSION, $result->stdout);
        self::assertStringContainsString(PHP_ZTS ? 'enabled (ZTS)' : 'disabled (NTS)', $result->stdout);
        self::assertStringNotContainsString('s3cretpw', $result->stdout . $result->stderr);
    }

    public function testPhpinfoAfterUseRedactsThePasswordEverywhere(): void
    {
        $server = $this->redis('g00d-Passw0rd');
        $url = $server->url('s3cretpw', 'default');
        $result = PhpProcess::code(
            ['qrpush.url' => $url, 'qrpush.connect_timeout' => '0.5', 'qrpush.timeout' => '0.5'],
            <<<'PHP'
            try { QrPush::publish('c', 'x'); echo "published\n"; } catch (QrPush\ServerException $e) { echo "ServerException\n"; }
            phpinfo(INFO_MODULES);
            PHP,
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertStringStartsWith("ServerException\n", $result->stdout, $result->describe());
        self::assertStringContainsString("redis://default:<redacted>@127.0.0.1:{$server->port()}", $result->stdout);
        self::assertStringContainsString('WRONGPASS', $result->stdout, 'the last error is shown');
        self::assertStringNotContainsString('s3cretpw', $result->stdout . $result->stderr);
        self::assertStringNotContainsString('g00d-Passw0rd', $result->stdout . $result->stderr);
    }

    public function testInvalidDirectiveWarnsAtStartupAndTheDefaultIsUsed(): void
    {
        $result = PhpProcess::code(
            ['qrpush.pool_size' => '0'],
            'echo json_encode(["loaded" => extension_loaded("qrpush"), "pool_size" => QrPush::stats()["pool_size"]]);',
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        $output = $result->stdout . $result->stderr;
        self::assertMatchesRegularExpression("/Warning: .*qrpush\\.pool_size: .*'0'.*using the default '8'/", $output);
        self::assertSame(1, substr_count($output, 'qrpush.'), 'exactly one warning: ' . $output);
        self::assertStringEndsWith('{"loaded":true,"pool_size":8}', $result->stdout);
    }

    public function testEveryInvalidDirectiveWarnsWithoutLeakingThePassword(): void
    {
        $result = PhpProcess::code(
            [
                'qrpush.url' => 'redis://user:s3cretpw@127.0.0.1:99999',
                'qrpush.timeout' => '-1',
                'qrpush.connect_timeout' => 'soon',
                'qrpush.max_payload' => '0',
                'qrpush.channel_prefix' => str_repeat('p', 300),
            ],
            'echo QrPush::stats()["endpoint"], "\n", (new QrPush\Client())->stats()["endpoint"];',
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        $output = $result->stdout . $result->stderr;
        foreach (['url', 'timeout', 'connect_timeout', 'max_payload', 'channel_prefix'] as $name) {
            self::assertMatchesRegularExpression("/Warning: .*qrpush\\.{$name}: /", $output);
        }
        self::assertStringNotContainsString('s3cretpw', $output);
        self::assertStringEndsWith("redis://127.0.0.1:6379/0\nredis://127.0.0.1:6379/0", $result->stdout, 'the default URL is used');
    }

    public function testValidDirectivesAreUsedByDefaultClients(): void
    {
        $result = PhpProcess::code(
            ['qrpush.url' => 'redis://127.0.0.1:6390/4', 'qrpush.pool_size' => '2', 'qrpush.channel_prefix' => 'app:'],
            'echo json_encode([QrPush::stats()["endpoint"], QrPush::stats()["pool_size"], (new QrPush\Client("redis://127.0.0.1:6391"))->stats()["pool_size"]]);',
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertSame('', $result->stderr, $result->describe());
        self::assertSame('["redis:\/\/127.0.0.1:6390\/4",2,2]', $result->stdout, 'php.ini settings also are the defaults of new Clients');
    }
}
