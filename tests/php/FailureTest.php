<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;
use QrPush\ConnectionException;
use QrPush\ServerException;
use QrPush\TimeoutException;

/**
 * What a web request sees when Redis misbehaves: the documented exception class (within the time
 * bound, connect_timeout + timeout, where Redis is gone) and no password in any message. How the
 * transport behaves — stale pooled connections replaced silently after a restart, CLIENT KILL or
 * the idle timeout, the bounds of a frozen server, a timed-out PUBLISH never re-sent — is the
 * core's to prove (crates/qrpush-core/tests/failures.rs), and under php-fpm load the fault suite's.
 */
final class FailureTest extends TestCase
{
    private const OPTIONS = ['connect_timeout' => 0.5, 'timeout' => 0.5];
    /** connect_timeout + timeout + 0.5 s of slack */
    private const BOUND = 1.5;

    /**
     * A closed port: refused at once, except on Windows, which retries the SYN for about 2 s, past
     * these tests' connect_timeout (docs/PORTABILITY.md).
     */
    private const REFUSED = PHP_OS_FAMILY === 'Windows'
        ? [ConnectionException::class, TimeoutException::class]
        : [ConnectionException::class];

    private static function timed(callable $fn, string ...$expected): array
    {
        $start = hrtime(true);
        try {
            $fn();
            self::fail('expected ' . implode(' or ', $expected) . ', nothing was thrown');
        } catch (\Throwable $e) {
            $elapsed = (hrtime(true) - $start) / 1e9;
            self::assertContains($e::class, $expected, 'got ' . $e::class . ': ' . $e->getMessage());
            return [$e, $elapsed];
        }
    }

    public function testStoppedRedisIsAConnectionExceptionWithinTheBound(): void
    {
        $server = $this->redis();
        $server->stop();
        $client = new Client($server->url(), self::OPTIONS);
        [$e, $elapsed] = self::timed(fn () => $client->publish('c', 'x'), ...self::REFUSED);
        self::assertLessThan(self::BOUND, $elapsed);
        self::assertStringContainsString("127.0.0.1:{$server->port()}", $e->getMessage());
        [, $elapsed] = self::timed(fn () => $client->ping(), ...self::REFUSED);
        self::assertLessThan(self::BOUND, $elapsed);
        self::assertSame(2, $client->stats()['failed']);
        self::assertSame(0, $client->stats()['published']);
    }

    #[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
    public function testMissingUnixSocketIsAConnectionException(): void
    {
        $client = new Client('unix:///nonexistent-' . bin2hex(random_bytes(4)) . '/redis.sock', self::OPTIONS);
        [, $elapsed] = self::timed(fn () => $client->publish('c', 'x'), ConnectionException::class);
        self::assertLessThan(self::BOUND, $elapsed);
    }

    public function testFrozenRedisIsATimeoutException(): void
    {
        $server = $this->redis();
        $options = self::OPTIONS + ['breaker_cooldown' => 0];
        $warm = new Client($server->url(db: 1), $options);
        self::assertSame(0, $warm->publish('c', 'before'));
        $server->freeze();
        try {
            // A new connection: the kernel accepts it, the handshake is never answered.
            $fresh = new Client($server->url(), $options);
            self::timed(fn () => $fresh->publish('c', 'fresh while frozen'), TimeoutException::class);
            // A warm connection: the PUBLISH is written, its reply never comes.
            [$e] = self::timed(fn () => $warm->publish('c', 'warm while frozen'), TimeoutException::class);
            self::assertStringContainsString("127.0.0.1:{$server->port()}", $e->getMessage());
            self::timed(fn () => $warm->ping(), TimeoutException::class);
        } finally {
            $server->thaw();
        }
    }

    public function testWrongPasswordIsAServerExceptionWithoutThePassword(): void
    {
        $server = $this->redis('g00d-Passw0rd');
        foreach ([$server->url('s3cretpw'), $server->url('s3cretpw', 'default'), $server->url('s3cretpw', 'nosuchuser')] as $url) {
            $client = new Client($url, self::OPTIONS);
            [$e] = self::timed(fn () => $client->publish('c', 'x'), ServerException::class);
            self::assertStringContainsString('WRONGPASS', $e->getMessage());
            $this->assertNoSecret($e, $client, 's3cretpw', 'g00d-Passw0rd');
        }
    }

    public function testMissingPasswordIsAServerException(): void
    {
        $server = $this->redis('g00d-Passw0rd');
        $client = new Client(str_replace(':g00d-Passw0rd@', '', $server->url()), self::OPTIONS);
        self::assertStringNotContainsString('@', $client->stats()['endpoint']);
        [$e] = self::timed(fn () => $client->publish('c', 'x'), ServerException::class);
        self::assertStringContainsString('NOAUTH', $e->getMessage());
        $this->assertNoSecret($e, $client, 'g00d-Passw0rd');
    }

    /**
     * The stub: "Redis answered with an error reply (NOAUTH, WRONGPASS, NOPERM, ...). The message
     * starts with its code." Fails with qrpush 0.1.0: the code comes after a context, e.g.
     * "AUTH on 127.0.0.1:6379 failed: WRONGPASS ...".
     */
    public function testServerExceptionMessageStartsWithTheErrorCode(): void
    {
        $server = $this->redis('g00d-Passw0rd');
        $messages = [];
        foreach (['WRONGPASS' => $server->url('s3cretpw'), 'NOAUTH' => str_replace(':g00d-Passw0rd@', '', $server->url())] as $code => $url) {
            $client = new Client($url, self::OPTIONS);
            [$e] = self::timed(fn () => $client->publish('c', 'x'), ServerException::class);
            $messages[$code] = $e->getMessage();
        }
        $wrong = array_filter($messages, static fn (string $m, string $code): bool => !str_starts_with($m, $code), ARRAY_FILTER_USE_BOTH);
        self::assertSame([], $wrong, 'ServerException messages that do not start with the Redis error code');
    }

    public function testRightPasswordWorksAndIsNeverShown(): void
    {
        $server = $this->redis('g00d-Passw0rd');
        $channel = self::channel('auth');
        $subscriber = $this->subscribe($server, $channel);
        $client = new Client($server->url(user: 'default', db: 3), self::OPTIONS);
        self::assertSame(1, $client->publish($channel, 'authenticated'));
        self::assertSame(['authenticated'], $subscriber->messages(1));
        $stats = $client->stats();
        self::assertSame("redis://default:<redacted>@127.0.0.1:{$server->port()}/3", $stats['endpoint']);
        self::assertStringNotContainsString('g00d-Passw0rd', serialize($stats));
        [$row] = $server->qrpushClients(getmypid());
        self::assertSame('3', $row['db'], 'the /3 of the URL selects database 3');
        self::assertSame('default', $row['user']);
    }

    private function assertNoSecret(\Throwable $e, Client $client, string ...$secrets): void
    {
        $stats = $client->stats();
        foreach ($secrets as $secret) {
            foreach ([$e->getMessage(), (string) $e, (string) $stats['last_error'], $stats['endpoint'], print_r($stats, true)] as $text) {
                self::assertStringNotContainsString($secret, $text);
            }
        }
    }
}
