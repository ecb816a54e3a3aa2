<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;
use QrPush\ConnectionException;
use QrPush\ServerException;
use QrPush\TimeoutException;

/**
 * What a web request sees when Redis misbehaves: the documented exception class within the time
 * bound (connect_timeout + timeout), silent recovery from connections Redis closed while idle,
 * and no password in any message.
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

    public function testRedisGoneUnderAWarmConnectionIsAConnectionException(): void
    {
        foreach (['stop', 'kill'] as $how) {
            $server = $this->redis();
            $client = new Client($server->url(), self::OPTIONS);
            self::assertSame(0, $client->publish('c', 'warm'));
            $server->{$how}();
            [, $elapsed] = self::timed(fn () => $client->publish('c', 'x'), ConnectionException::class);
            self::assertLessThan(self::BOUND, $elapsed, $how);
        }
    }

    #[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
    public function testMissingUnixSocketIsAConnectionException(): void
    {
        $client = new Client('unix:///nonexistent-' . bin2hex(random_bytes(4)) . '/redis.sock', self::OPTIONS);
        [, $elapsed] = self::timed(fn () => $client->publish('c', 'x'), ConnectionException::class);
        self::assertLessThan(self::BOUND, $elapsed);
    }

    public function testFrozenRedisIsATimeoutExceptionWithinTheBound(): void
    {
        $server = $this->redis();
        $channel = self::channel('frozen');
        $subscriber = $this->subscribe($server, $channel);
        // No circuit breaker: it would fail the calls right after the thaw fast (BreakerTest).
        $options = self::OPTIONS + ['breaker_cooldown' => 0];
        $warm = new Client($server->url(db: 1), $options);
        self::assertSame(1, $warm->publish($channel, 'before'));

        $server->freeze();
        try {
            // A new connection: the kernel accepts it, the handshake is never answered.
            $fresh = new Client($server->url(), $options);
            [, $elapsed] = self::timed(fn () => $fresh->publish($channel, 'fresh while frozen'), TimeoutException::class);
            self::assertLessThan(self::BOUND, $elapsed, 'new connection');
            self::assertGreaterThanOrEqual(0.45, $elapsed, 'connect_timeout is 0.5 s');
            // A warm connection: the PUBLISH is written, its reply never comes.
            [$e, $elapsed] = self::timed(fn () => $warm->publish($channel, 'warm while frozen'), TimeoutException::class);
            self::assertLessThan(self::BOUND, $elapsed, 'warm connection');
            self::assertGreaterThanOrEqual(0.45, $elapsed, 'timeout is 0.5 s');
            self::assertStringContainsString("127.0.0.1:{$server->port()}", $e->getMessage());
            [, $elapsed] = self::timed(fn () => $warm->ping(), TimeoutException::class);
            self::assertLessThan(self::BOUND, $elapsed, 'ping');
        } finally {
            $server->thaw();
        }

        // After the thaw the same clients work again, on new connections: a reply left over from
        // the timed-out PUBLISH (1 receiver) must not be taken for the answer to the next one.
        self::assertSame(0, $warm->publish(self::channel('nobody'), 'after thaw, to nobody'));
        self::assertSame(1, $warm->publish($channel, 'after thaw'));
        self::assertSame(1, $fresh->publish($channel, 'fresh after thaw'));
        // The PUBLISH that timed out had reached Redis's socket: it is executed once when Redis
        // wakes up, and never re-sent by the client (that would be a duplicate).
        self::assertSame(['before', 'warm while frozen', 'after thaw', 'fresh after thaw'], $subscriber->messages(4));
        $subscriber->assertNothingMore(0.1);
    }

    public function testRestartBetweenPublishesIsInvisible(): void
    {
        $server = $this->redis();
        $client = self::client($server);
        self::assertSame(0, $client->publish('c', 'before'));
        $before = $server->qrpushClients(getmypid());
        self::assertCount(1, $before);

        $server->restart();
        $channel = self::channel('restart');
        $subscriber = $this->subscribe($server, $channel);

        self::assertSame(1, $client->publish($channel, 'after restart'));
        self::assertSame(['after restart'], $subscriber->messages(1));
        $stats = $client->stats();
        self::assertGreaterThanOrEqual(1, $stats['reconnects']);
        self::assertSame(2, $stats['connections_created']);
        self::assertSame(0, $stats['failed']);
        self::assertSame(2, $stats['published']);
        self::assertCount(1, $server->qrpushClients(getmypid()));
    }

    public function testClientKillBetweenPublishesIsInvisible(): void
    {
        $server = $this->redis();
        $channel = self::channel('kill');
        $subscriber = $this->subscribe($server, $channel);
        $client = self::client($server);
        self::assertSame(1, $client->publish($channel, 'one'));

        [$connection] = $server->qrpushClients(getmypid());
        self::assertSame(1, $server->command('CLIENT', 'KILL', 'ID', $connection['id']));
        self::assertSame(1, $client->publish($channel, 'two'));
        [$second] = $server->qrpushClients(getmypid());
        self::assertNotSame($connection['id'], $second['id']);

        // TYPE normal: every non-pubsub connection (the subscriber survives, the admin one is skipped).
        self::assertGreaterThanOrEqual(1, $server->command('CLIENT', 'KILL', 'TYPE', 'normal'));
        self::assertSame(1, $client->publish($channel, 'three'));
        [$third] = $server->qrpushClients(getmypid());
        self::assertNotSame($second['id'], $third['id']);

        self::assertSame(['one', 'two', 'three'], $subscriber->messages(3));
        $subscriber->assertNothingMore(0.05);
        self::assertSame(0, $client->stats()['failed']);
    }

    public function testIdleTimeoutCloseIsInvisible(): void
    {
        $server = $this->redis();
        $channel = self::channel('idle');
        $subscriber = $this->subscribe($server, $channel);
        $client = self::client($server);
        self::assertSame(1, $client->publish($channel, 'one'));
        self::assertCount(1, $server->qrpushClients(getmypid()));

        $server->command('CONFIG', 'SET', 'timeout', '1');
        $closed = Processes::waitFor(fn (): bool => $server->qrpushClients(getmypid()) === [], 5.0, 0.1);
        self::assertTrue($closed, 'Redis closed the idle connection');

        self::assertSame(1, $client->publish($channel, 'two'));
        self::assertSame(['one', 'two'], $subscriber->messages(2));
        self::assertSame(0, $client->stats()['failed']);
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
