<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * The qrpush.* directives are PHP_INI_PERDIR: one php-fpm worker serves requests whose directives
 * differ — per nginx location (`fastcgi_param PHP_ADMIN_VALUE`), per pool (`php_admin_value`), per
 * directory (`.user.ini`) — and each request must publish, and run QR logins, with its own: its
 * prefix, its Redis, its login settings. Never another tenant's. Pools stay per endpoint: a
 * request that only changes the prefix reuses the worker's connection.
 */
#[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
final class PerDirectoryConfigTest extends TestCase
{
    private const SECRET = 'a-gateway-secret-of-32-bytes-xyz';

    private RedisServer $redisA;
    private RedisServer $redisB;

    protected function setUp(): void
    {
        $this->redisA = $this->redis();
        $this->redisB = $this->redis();
    }

    /**
     * One worker, requests alternating between two nginx locations that set their tenant with
     * PHP_ADMIN_VALUE (prefix, Redis, login TTL and gateway secret), and a third location that
     * only changes the prefix on tenant A's Redis.
     */
    public function testPhpAdminValuePerRequestInOneWorker(): void
    {
        $fpm = $this->fpm($this->redisA, workers: 1);
        $tenants = [
            'a' => ['qrpush.channel_prefix' => 'tenant-a:', 'qrpush.url' => $this->redisA->url(), 'qrpush.login_pending_ttl' => '120', 'qrpush.gateway_secret' => ''],
            'b' => ['qrpush.channel_prefix' => 'tenant-b:', 'qrpush.url' => $this->redisB->url(), 'qrpush.login_pending_ttl' => '45', 'qrpush.gateway_secret' => self::SECRET],
            'c' => ['qrpush.channel_prefix' => 'tenant-c:', 'qrpush.url' => $this->redisA->url(), 'qrpush.login_pending_ttl' => '120', 'qrpush.gateway_secret' => ''],
        ];
        // php-fpm keeps a PHP_ADMIN_VALUE in the worker for its later requests, so each location
        // sets every directive that differs between them (as an nginx configuration must).
        // Every publish channel of every tenant, on both servers.
        $onA = $this->subscribe($this->redisA, 'tenant-?:x', pattern: true);
        $onB = $this->subscribe($this->redisB, 'tenant-?:x', pattern: true);

        $responses = [];
        foreach (['a', 'b', 'a', 'c', 'b', 'a', 'c', 'b'] as $i => $tenant) {
            $adminValue = implode("\n", array_map(
                static fn (string $k, string $v): string => "{$k}=\"{$v}\"",
                array_keys($tenants[$tenant]),
                $tenants[$tenant],
            ));
            [$body] = $fpm->requests([['tenant.php', ['channel' => 'x', 'message' => "{$tenant}{$i}"], ['PHP_ADMIN_VALUE' => $adminValue]]]);
            $response = Fpm::decode($body);
            self::assertArrayNotHasKey('error', $response, ($response['error'] ?? '') . ': ' . ($response['message'] ?? ''));
            self::assertSame($tenants[$tenant]['qrpush.channel_prefix'], $response['prefix'], 'php-fpm applied the PHP_ADMIN_VALUE');
            self::assertSame($tenants[$tenant]['qrpush.channel_prefix'] . 'qr-login-events', $response['login_channel'], "request {$i} ({$tenant})");
            self::assertSame((int) $tenants[$tenant]['qrpush.login_pending_ttl'] * 1000, $response['login_ttl_ms'], "request {$i} ({$tenant})");
            self::assertSame($tenant === 'b', $response['gateway_token'], "request {$i} ({$tenant}): a gateway token only with tenant B's secret");
            $responses[] = [$tenant, $response];
        }

        $pids = array_unique(array_map(static fn (array $r): int => $r[1]['pid'], $responses));
        self::assertCount(1, $pids, 'one worker served every request');
        $expect = static function (array $tenants) use ($responses): array {
            $expected = [];
            foreach ($responses as $i => [$tenant]) {
                if (\in_array($tenant, $tenants, true)) {
                    $expected[] = ['channel' => "tenant-{$tenant}:x", 'payload' => "{$tenant}{$i}"];
                }
            }
            return $expected;
        };
        // Every request published on its own Redis, with its own prefix.
        self::assertSame($expect(['a', 'c']), $onA->receive(5));
        self::assertSame($expect(['b']), $onB->receive(3));
        $onA->assertNothingMore(0.1);
        $onB->assertNothingMore(0.1);
        self::assertSame(5, $this->redisA->command('DBSIZE'), "tenant A's and C's logins are in A's Redis");
        self::assertSame(3, $this->redisB->command('DBSIZE'), "tenant B's logins are in B's Redis");

        // Pools are per endpoint: A and C (another prefix, same Redis) share one connection.
        [$pid] = $pids;
        self::assertCount(1, $this->redisA->qrpushClients($pid), 'one connection to A for tenants A and C');
        self::assertCount(1, $this->redisB->qrpushClients($pid), 'one connection to B');
        $last = [];
        foreach ($responses as [$tenant, $response]) {
            $last[$tenant] = $response['stats'];
        }
        self::assertSame(1, $last['c']['connections_created'], 'the prefix change opened no connection');
        self::assertSame(1, $last['b']['connections_created']);
        self::assertSame("redis://127.0.0.1:{$this->redisB->port()}/0", $last['b']['endpoint']);
        self::assertSame("redis://127.0.0.1:{$this->redisA->port()}/0", $last['c']['endpoint']);
    }

    /**
     * An invalid per-request value is warned about (E_WARNING) the first time the worker meets
     * it, like an invalid php.ini value at startup, and the default is used.
     */
    public function testAnInvalidPerRequestValueWarnsOnceAndFallsBackToTheDefault(): void
    {
        $fpm = $this->fpm($this->redisA, workers: 1, ini: ['html_errors' => '0']);
        $channel = self::channel('warn');
        $subscriber = $this->subscribe($this->redisA, $channel);
        $bodies = [];
        foreach (['soon', 'soon', 'later'] as $i => $timeout) {
            [$bodies[$i]] = $fpm->requests([['publish.php', ['channel' => $channel, 'message' => "m{$i}"], ['PHP_ADMIN_VALUE' => "qrpush.timeout={$timeout}"]]]);
        }
        foreach ([0 => 1, 1 => 0, 2 => 1] as $i => $warnings) {
            self::assertSame($warnings, substr_count($bodies[$i], "Warning: QrPush::publish(): qrpush.timeout: expected seconds"), "request {$i}: {$bodies[$i]}");
            $response = Fpm::decode(substr($bodies[$i], (int) strpos($bodies[$i], '{"pid"')));
            self::assertSame(1, $response['receivers'] ?? $response, "request {$i}");
        }
        self::assertStringContainsString("using the default '1.0'", $bodies[0]);
        self::assertSame(['m0', 'm1', 'm2'], $subscriber->messages(3));
    }

    /** Two pools of one master, each with its own php_admin_values. */
    public function testTwoPoolsWithTheirOwnPhpAdminValues(): void
    {
        $fpm = $this->fpm(
            $this->redisA,
            ini: ['qrpush.channel_prefix' => 'pool-a:'],
            morePools: ['b' => ['qrpush.url' => $this->redisB->url(), 'qrpush.channel_prefix' => 'pool-b:', 'qrpush.gateway_secret' => self::SECRET]],
        );
        $onA = $this->subscribe($this->redisA, 'pool-a:x');
        $onB = $this->subscribe($this->redisB, 'pool-b:x');
        $responses = [];
        foreach ([['a1', null], ['b1', 'b'], ['a2', null], ['b2', 'b']] as [$message, $pool]) {
            [$body] = $fpm->requests([['tenant.php', ['channel' => 'x', 'message' => $message], [], $pool]]);
            $responses[] = Fpm::decode($body);
        }
        foreach ($responses as $i => $response) {
            self::assertArrayNotHasKey('error', $response, ($response['error'] ?? '') . ': ' . ($response['message'] ?? ''));
            self::assertSame(1, $response['receivers'], "request {$i}");
            self::assertSame($i % 2 === 1, $response['gateway_token'], "request {$i}: pool b alone has a gateway secret");
        }
        self::assertNotSame($responses[0]['pid'], $responses[1]['pid'], 'each pool has its own worker');
        self::assertSame(['a1', 'a2'], $onA->messages(2));
        self::assertSame(['b1', 'b2'], $onB->messages(2));
        $onA->assertNothingMore(0.05);
        $onB->assertNothingMore(0.05);
        self::assertSame(2, $this->redisA->command('DBSIZE'));
        self::assertSame(2, $this->redisB->command('DBSIZE'));
    }

    /**
     * Two directories with their own .user.ini, served by one worker in turn. (The pool's
     * php_admin_value of qrpush.url cannot be overridden there: only the other directives vary.)
     */
    public function testUserIniPerDirectoryInOneWorker(): void
    {
        $fpm = $this->fpm($this->redisA, workers: 1);
        $root = Processes::tempDir('user-ini');
        try {
            $scripts = [];
            foreach (['a' => 60, 'b' => 90] as $tenant => $ttl) {
                mkdir("{$root}/{$tenant}");
                copy(Fpm::FIXTURES . '/tenant.php', "{$root}/{$tenant}/tenant.php");
                file_put_contents("{$root}/{$tenant}/.user.ini", "qrpush.channel_prefix = \"dir-{$tenant}:\"\nqrpush.login_pending_ttl = {$ttl}\n");
                $scripts[$tenant] = "{$root}/{$tenant}/tenant.php";
            }
            $on = $this->subscribe($this->redisA, 'dir-?:x', pattern: true);
            $pids = [];
            foreach (['a', 'b', 'a', 'b'] as $i => $tenant) {
                $response = Fpm::decode($fpm->request($scripts[$tenant], ['channel' => 'x', 'message' => "{$tenant}{$i}"]));
                self::assertArrayNotHasKey('error', $response, ($response['error'] ?? '') . ': ' . ($response['message'] ?? ''));
                self::assertSame(1, $response['receivers'], "request {$i} ({$tenant})");
                self::assertSame("dir-{$tenant}:qr-login-events", $response['login_channel'], "request {$i} ({$tenant})");
                self::assertSame($tenant === 'a' ? 60000 : 90000, $response['login_ttl_ms'], "request {$i} ({$tenant})");
                $pids[] = $response['pid'];
            }
            self::assertCount(1, array_unique($pids), 'one worker served both directories');
            self::assertSame([
                ['channel' => 'dir-a:x', 'payload' => 'a0'],
                ['channel' => 'dir-b:x', 'payload' => 'b1'],
                ['channel' => 'dir-a:x', 'payload' => 'a2'],
                ['channel' => 'dir-b:x', 'payload' => 'b3'],
            ], $on->receive(4));
            $on->assertNothingMore(0.05);
        } finally {
            Processes::removeDir($root);
        }
    }
}
