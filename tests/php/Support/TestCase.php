<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;

/**
 * Base class: servers and processes a test starts through these helpers are stopped in tearDown
 * (by pid), even when the test failed.
 */
abstract class TestCase extends \PHPUnit\Framework\TestCase
{
    /** @var list<RedisServer|RedisCluster|RedisSentinel|Fpm|Subscriber> */
    private array $owned = [];

    protected function tearDown(): void
    {
        foreach (array_reverse($this->owned) as $thing) {
            if ($thing instanceof Subscriber) {
                $thing->close();
            } elseif ($thing instanceof RedisServer) {
                $thing->kill(); // no persistence to flush: SIGKILL is instant, SIGTERM takes ~0.1 s
            } else {
                $thing->stop();
            }
        }
        $this->owned = [];
        parent::tearDown();
    }

    protected function redis(?string $password = null, array $extraArgs = [], bool $unixSocket = false): RedisServer
    {
        return $this->owned[] = new RedisServer($password, $extraArgs, $unixSocket);
    }

    protected function subscribe(RedisServer $server, string $channel, bool $pattern = false, bool $sharded = false): Subscriber
    {
        return $this->owned[] = new Subscriber($server, $channel, $pattern, $sharded);
    }

    /** A Redis Cluster of 3 primaries + 3 replicas, stopped in tearDown. */
    protected function redisCluster(): RedisCluster
    {
        if (ExternalServers::enabled()) {
            self::markTestSkipped('redis-cli --cluster create runs only where the tests run redis-server themselves');
        }
        return $this->owned[] = new RedisCluster();
    }

    /**
     * 1 primary + 1 replica + 3 Sentinels, stopped in tearDown.
     *
     * @param string|null $sentinelPassword The Sentinels' own requirepass (see RedisSentinel).
     * @param string|null $pki A TestPki directory: every server on TLS too (see RedisSentinel).
     */
    protected function redisSentinel(?string $sentinelPassword = null, ?string $pki = null): RedisSentinel
    {
        if (ExternalServers::enabled()) {
            self::markTestSkipped('Sentinels need a config file on the side that runs redis-server');
        }
        return $this->owned[] = new RedisSentinel($sentinelPassword, $pki);
    }

    /**
     * @param array<string, string> $ini
     * @param array<string, array<string, string>> $morePools see Fpm
     */
    protected function fpm(RedisServer $server, int $workers = 1, array $ini = [], bool $extensionInPool = false, array $morePools = []): Fpm
    {
        return $this->owned[] = new Fpm($server->url(), $workers, $ini, $extensionInPool, morePools: $morePools);
    }

    /** A Client with short time bounds, so that a failing test fails fast. */
    protected static function client(RedisServer $server, array $options = [], ?string $url = null): Client
    {
        return new Client($url ?? $server->url(), $options + ['connect_timeout' => 1.0, 'timeout' => 1.0]);
    }

    protected static function channel(string $what = 'ch'): string
    {
        return "test:{$what}:" . bin2hex(random_bytes(4));
    }

    /**
     * Runs `$fn`, asserts that it throws exactly `$class` (not a subclass) and returns the exception.
     */
    protected static function assertThrowsExactly(string $class, callable $fn, string $messageContains = ''): \Throwable
    {
        try {
            $fn();
        } catch (\Throwable $e) {
            self::assertSame(
                $class,
                $e::class,
                "expected {$class}, got " . $e::class . ': ' . $e->getMessage(),
            );
            if ($messageContains !== '') {
                self::assertStringContainsString($messageContains, $e->getMessage());
            }
            return $e;
        }
        self::fail("expected {$class}, but nothing was thrown");
    }
}
