<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;
use QrPush\ConnectionException;
use QrPush\ServerException;

/** Client::stats(): the documented keys and types, and counters that follow real outcomes. */
final class StatsTest extends TestCase
{
    private const KEYS = [
        'published', 'failed', 'reconnects', 'connections_created', 'pool_size', 'pool_idle', 'pool_in_use',
        'last_error', 'latency_us', 'endpoint', 'pid', 'breaker', 'topology',
    ];

    private static function assertShape(array $stats): void
    {
        self::assertSame(self::KEYS, array_keys($stats));
        foreach (['published', 'failed', 'reconnects', 'connections_created', 'pool_size', 'pool_idle', 'pool_in_use', 'pid'] as $key) {
            self::assertIsInt($stats[$key], $key);
            self::assertGreaterThanOrEqual(0, $stats[$key], $key);
        }
        self::assertTrue($stats['last_error'] === null || \is_string($stats['last_error']), 'last_error is ?string');
        self::assertIsString($stats['endpoint']);
        self::assertSame(['p50', 'p90', 'p99', 'max', 'count'], array_keys($stats['latency_us']));
        foreach ($stats['latency_us'] as $key => $value) {
            self::assertIsInt($value, "latency_us.{$key}");
        }
        self::assertSame(getmypid(), $stats['pid']);
        self::assertSame(['state', 'opened_at', 'fast_failures', 'trips'], array_keys($stats['breaker']));
        self::assertSame(['kind', 'service', 'primary', 'failovers', 'redirects'], array_keys($stats['topology']));
        self::assertContains($stats['topology']['kind'], ['standalone', 'cluster', 'sentinel']);
        self::assertContains($stats['breaker']['state'], ['closed', 'open', 'half-open']);
        self::assertSame($stats['breaker']['state'] === 'closed', $stats['breaker']['opened_at'] === null, 'opened_at is null only while closed');
        if ($stats['breaker']['opened_at'] !== null) {
            self::assertIsFloat($stats['breaker']['opened_at']);
        }
        self::assertIsInt($stats['breaker']['fast_failures']);
        self::assertIsInt($stats['breaker']['trips']);
    }

    public function testFreshClientHasZeroCountersAndDoesNotConnect(): void
    {
        $server = $this->redis();
        $client = new Client($server->url(), ['pool_size' => 3]);
        $stats = $client->stats();
        self::assertShape($stats);
        self::assertSame(
            ['published' => 0, 'failed' => 0, 'reconnects' => 0, 'connections_created' => 0, 'pool_size' => 3, 'pool_idle' => 0, 'pool_in_use' => 0, 'last_error' => null],
            \array_slice($stats, 0, 8),
        );
        self::assertSame(['p50' => 0, 'p90' => 0, 'p99' => 0, 'max' => 0, 'count' => 0], $stats['latency_us']);
        self::assertSame("redis://127.0.0.1:{$server->port()}/0", $stats['endpoint']);
        self::assertSame([], $server->qrpushClients(), 'constructing a Client does not connect');
    }

    public function testCountersFollowPublishes(): void
    {
        $server = $this->redis();
        $client = self::client($server);
        for ($i = 0; $i < 5; $i++) {
            $client->publish('c', "m{$i}");
        }
        $client->publishMany([['c', 'a'], ['c', 'b'], ['c', 'c']]);
        self::assertGreaterThan(0.0, $client->ping());
        $stats = $client->stats();
        self::assertShape($stats);
        self::assertSame(8, $stats['published'], '5 publishes + 3 pipelined messages');
        self::assertSame(0, $stats['failed']);
        self::assertSame(1, $stats['connections_created'], 'one connection, reused');
        self::assertSame(0, $stats['reconnects']);
        self::assertSame(1, $stats['pool_idle']);
        self::assertSame(0, $stats['pool_in_use']);
        self::assertNull($stats['last_error']);
        self::assertSame(7, $stats['latency_us']['count'], '5 publishes + 1 publishMany + 1 ping');
        self::assertGreaterThan(0, $stats['latency_us']['max']);
        self::assertLessThanOrEqual($stats['latency_us']['max'], $stats['latency_us']['p50']);
        self::assertLessThanOrEqual($stats['latency_us']['p99'], $stats['latency_us']['p50']);
        self::assertCount(1, $server->qrpushClients(getmypid()));
    }

    public function testClientsOfTheSameEndpointShareOnePool(): void
    {
        $server = $this->redis();
        $a = self::client($server);
        $b = self::client($server, ['channel_prefix' => 'other:']);
        $a->publish('c', 'x');
        $b->publish('c', 'y');
        self::assertSame(2, $a->stats()['published']);
        self::assertSame($a->stats(), $b->stats());
        self::assertCount(1, $server->qrpushClients(getmypid()));
        // Another database is another endpoint: its own pool and counters.
        $c = new Client($server->url(db: 1));
        self::assertSame(0, $c->stats()['published']);
    }

    public function testFailuresAreCountedWithTheirError(): void
    {
        $server = $this->redis();
        $server->stop();
        $client = new Client($server->url(), ['connect_timeout' => 0.5, 'timeout' => 0.5]);
        try {
            $client->publishMany([['c', 'a'], ['c', 'b']]);
            self::fail('no exception');
        } catch (ConnectionException $e) {
        }
        $stats = $client->stats();
        self::assertSame(0, $stats['published']);
        self::assertSame(2, $stats['failed'], 'both messages of the batch failed');
        self::assertSame($e->getMessage(), $stats['last_error']);
        self::assertSame(0, $stats['pool_in_use'], 'the failed slot was given back');
    }

    /**
     * A PUBLISH that Redis answers with an error reply (here NOAUTH) did not publish anything:
     * it must count as failed, with last_error, not as published.
     */
    public function testPublishRejectedByRedisCountsAsFailed(): void
    {
        $server = $this->redis('g00d-Passw0rd');
        $client = new Client(str_replace(':g00d-Passw0rd@', '', $server->url()), ['connect_timeout' => 0.5, 'timeout' => 0.5]);
        try {
            $client->publish('c', 'x');
            self::fail('no exception');
        } catch (ServerException $e) {
        }
        $stats = $client->stats();
        self::assertSame(
            ['published' => 0, 'failed' => 1, 'last_error' => $e->getMessage()],
            ['published' => $stats['published'], 'failed' => $stats['failed'], 'last_error' => $stats['last_error']],
        );
    }
}
