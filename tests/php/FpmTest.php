<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * The deployment QrPush is made for: php-fpm workers serving many requests, each publishing with
 * the static facade. A worker keeps one persistent connection across requests (named
 * qrpush-<worker pid> in CLIENT LIST); the master never connects; Redis restarts are invisible.
 */
#[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
final class FpmTest extends TestCase
{
    private RedisServer $server;

    protected function setUp(): void
    {
        $this->server = $this->redis();
    }

    public function testOneWorkerKeepsOneConnectionAcrossRequests(): void
    {
        $fpm = $this->fpm($this->server, workers: 1);
        self::assertSame([], $this->server->qrpushClients(), 'neither the master nor the idle worker connected at startup');
        $channel = self::channel('fpm');
        $subscriber = $this->subscribe($this->server, $channel);

        $sent = [];
        $workerPid = null;
        $connectionId = null;
        for ($i = 1; $i <= 20; $i++) {
            $message = "request {$i} " . bin2hex(random_bytes(4));
            $sent[] = $message;
            $response = $fpm->requestJson('publish.php', ['channel' => $channel, 'message' => $message]);
            self::assertArrayNotHasKey('error', $response, ($response['error'] ?? '') . ': ' . ($response['message'] ?? ''));
            self::assertSame(1, $response['receivers'], "request {$i}");
            $workerPid ??= $response['pid'];
            self::assertSame($workerPid, $response['pid'], 'one worker serves every request');
            self::assertNotSame($fpm->pid(), $workerPid, 'requests are served by a worker, not the master');

            // Persistence across requests: the worker's counters go on counting.
            self::assertSame($i, $response['stats']['published'], "published after request {$i}");
            self::assertSame(1, $response['stats']['connections_created'], "connections created after request {$i}");
            self::assertSame(0, $response['stats']['failed']);

            $connections = $this->server->qrpushClients();
            self::assertCount(1, $connections, "after request {$i}: exactly one QrPush connection");
            self::assertSame("qrpush-{$workerPid}", $connections[0]['name']);
            $connectionId ??= $connections[0]['id'];
            self::assertSame($connectionId, $connections[0]['id'], "after request {$i}: the same connection");
        }
        self::assertSame($sent, $subscriber->messages(20));
        $subscriber->assertNothingMore(0.05);
    }

    public function testRedisRestartBetweenRequestsIsInvisible(): void
    {
        $fpm = $this->fpm($this->server);
        $channel = self::channel('fpm-restart');
        $subscriber = $this->subscribe($this->server, $channel);
        $first = $fpm->requestJson('publish.php', ['channel' => $channel, 'message' => 'before restart']);
        self::assertSame(1, $first['receivers'] ?? $first);
        self::assertSame(['before restart'], $subscriber->messages(1));

        $this->server->restart();
        $subscriber = $this->subscribe($this->server, $channel);

        $second = $fpm->requestJson('publish.php', ['channel' => $channel, 'message' => 'after restart']);
        self::assertArrayNotHasKey('error', $second, ($second['error'] ?? '') . ': ' . ($second['message'] ?? ''));
        self::assertSame(1, $second['receivers']);
        self::assertSame($first['pid'], $second['pid']);
        self::assertSame(['after restart'], $subscriber->messages(1));
        self::assertSame(2, $second['stats']['published']);
        self::assertSame(0, $second['stats']['failed']);
        self::assertGreaterThanOrEqual(1, $second['stats']['reconnects']);
        self::assertSame(2, $second['stats']['connections_created']);
        $connections = $this->server->qrpushClients();
        self::assertCount(1, $connections);
        self::assertSame("qrpush-{$second['pid']}", $connections[0]['name']);
    }

    public function testTwoWorkersHoldAtMostOneConnectionEach(): void
    {
        $fpm = $this->fpm($this->server, workers: 2);
        $channel = self::channel('fpm-two');
        $subscriber = $this->subscribe($this->server, $channel);

        // Rounds of two concurrent requests that each keep their worker busy for a moment, so that
        // both workers serve requests.
        $pids = [];
        $sent = [];
        for ($round = 0; $round < 4; $round++) {
            $requests = [];
            for ($k = 0; $k < 2; $k++) {
                $sent[] = $message = "round {$round} request {$k}";
                $requests[] = ['publish.php', ['channel' => $channel, 'message' => $message, 'sleep_ms' => 150]];
            }
            foreach ($fpm->requests($requests) as $body) {
                $response = Fpm::decode($body);
                self::assertArrayNotHasKey('error', $response, ($response['error'] ?? '') . ': ' . ($response['message'] ?? ''));
                self::assertSame(1, $response['receivers']);
                $pids[$response['pid']] = true;
                self::assertSame(1, $response['stats']['connections_created'], 'one connection per worker, ever');
            }
            $connections = $this->server->qrpushClients();
            self::assertLessThanOrEqual(2, \count($connections), 'at most one connection per worker');
        }
        self::assertCount(2, $pids, 'both workers served requests');
        $names = array_column($this->server->qrpushClients(), 'name');
        sort($names);
        $expected = array_map(static fn (int $pid): string => "qrpush-{$pid}", array_keys($pids));
        sort($expected);
        self::assertSame($expected, $names, 'exactly one connection per worker that served requests');

        $received = $subscriber->messages(8);
        sort($received);
        sort($sent);
        self::assertSame($sent, $received);
        $subscriber->assertNothingMore(0.05);
    }

    public function testPoolDirectivesApplyInsideTheWorker(): void
    {
        $fpm = $this->fpm($this->server, ini: ['qrpush.channel_prefix' => 'site1:', 'qrpush.pool_size' => '1']);
        $subscriber = $this->subscribe($this->server, 'site1:orders');
        $response = $fpm->requestJson('publish.php', ['channel' => 'orders', 'message' => 'prefixed by php-fpm']);
        self::assertSame(1, $response['receivers'] ?? $response);
        self::assertSame(1, $response['stats']['pool_size']);
        self::assertSame("redis://127.0.0.1:{$this->server->port()}/0", $response['stats']['endpoint']);
        self::assertSame(['prefixed by php-fpm'], $subscriber->messages(1));
    }

    /** php_admin_value[extension] instead of php.ini: each worker loads the extension after the fork. */
    public function testExtensionLoadedByThePoolConfig(): void
    {
        $fpm = $this->fpm($this->server, workers: 1, ini: ['qrpush.channel_prefix' => 'pool:'], extensionInPool: true);
        $subscriber = $this->subscribe($this->server, 'pool:c');
        for ($i = 1; $i <= 3; $i++) {
            $response = $fpm->requestJson('publish.php', ['channel' => 'c', 'message' => "m{$i}"]);
            self::assertSame(1, $response['receivers'] ?? $response);
            self::assertSame($i, $response['stats']['published']);
            self::assertSame(1, $response['stats']['connections_created']);
        }
        self::assertSame(['m1', 'm2', 'm3'], $subscriber->messages(3));
        self::assertCount(1, $this->server->qrpushClients());
    }

    public function testRejectedArgumentsInARequestDoNotBreakTheWorker(): void
    {
        $fpm = $this->fpm($this->server);
        $channel = self::channel('fpm-bad');
        $subscriber = $this->subscribe($this->server, $channel);
        $bad = $fpm->requestJson('publish.php', ['channel' => '', 'message' => 'x']);
        self::assertSame('ValueError', $bad['error'] ?? null);
        $good = $fpm->requestJson('publish.php', ['channel' => $channel, 'message' => 'fine']);
        self::assertSame(1, $good['receivers'] ?? $good);
        self::assertSame($bad['pid'], $good['pid'], 'the same worker went on serving');
        self::assertSame(['fine'], $subscriber->messages(1));
        $subscriber->assertNothingMore(0.05);
    }
}
