<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;

/**
 * Redis Cluster from PHP: the redis-cluster:// and rediss-cluster:// URL forms in `new Client()`
 * and php.ini (validated without connecting, the password never shown), and publishes through a
 * real Cluster of 3 primaries + 3 replicas: sharded (SPUBLISH, seen by an SSUBSCRIBE on the node
 * owning the slot) and global (PUBLISH, seen by a SUBSCRIBE on another node); a whole QR login through
 * the Cluster, whose events reach the SSUBSCRIBE on the owner of the login's channel exactly once;
 * durable publishes stored and SPUBLISHed on the owner of each channel's slot.
 */
final class ClusterTest extends TestCase
{
    private const OPTIONS = ['connect_timeout' => 1.0, 'timeout' => 1.0];

    public function testClusterUrlsAreValidatedWithoutConnecting(): void
    {
        // Nothing listens on ports 1 and 2: a Client does not connect before it is used.
        $client = new Client('redis-cluster://app:s3cret%40pw@127.0.0.1:1,127.0.0.1:2', ['cluster_publish' => 'global']);
        self::assertSame('redis-cluster://app:<redacted>@127.0.0.1:1,127.0.0.1:2', $client->stats()['endpoint']);
        $tls = new Client('rediss-cluster://:s3cret@127.0.0.1:1');
        self::assertSame('rediss-cluster://:<redacted>@127.0.0.1:1', $tls->stats()['endpoint']);

        $bad = [
            'redis-cluster://127.0.0.1:7000,,127.0.0.1:7001' => 'empty host',
            'redis-cluster://127.0.0.1:7000/2' => 'only database 0',
            'redis-cluster://:s3cret@127.0.0.1:notaport' => 'not valid',
        ];
        foreach ($bad as $url => $says) {
            $e = self::assertThrowsExactly(\ValueError::class, fn () => new Client($url), $says);
            self::assertStringNotContainsString('s3cret', $e->getMessage());
        }
        self::assertThrowsExactly(
            \ValueError::class,
            fn () => new Client('redis-cluster://127.0.0.1:7000', ['cluster_publish' => 'fanout']),
            'cluster_publish: expected sharded or global',
        );
    }

    public function testPhpIniTakesAClusterUrlAndRiShowsIt(): void
    {
        $result = PhpProcess::run(
            ['qrpush.url' => 'redis-cluster://app:s3cretpw@127.0.0.1:7000,127.0.0.1:7001', 'qrpush.cluster_publish' => 'global'],
            ['--ri', 'qrpush'],
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertStringContainsString('redis-cluster://app:<redacted>@127.0.0.1:7000,127.0.0.1:7001', $result->stdout);
        self::assertMatchesRegularExpression('/qrpush\.cluster_publish => global/', $result->stdout);
        self::assertStringNotContainsString('s3cretpw', $result->stdout . $result->stderr);
    }

    public function testPublishesGoToTheOwnerOfTheChannelsSlot(): void
    {
        $cluster = $this->redisCluster();
        $channel = self::channel('cluster');
        $other = self::channel('cluster-other');
        $sharded = $this->subscribe($cluster->ownerOf($channel), $channel, sharded: true);
        $shardedOther = $this->subscribe($cluster->ownerOf($other), $other, sharded: true);

        $client = new Client($cluster->url(), self::OPTIONS);
        self::assertSame(1, $client->publish($channel, ['n' => 1]));
        self::assertSame([1, 1, 1], $client->publishMany([[$channel, 'a'], [$other, 'b'], [$channel, 'c']]));
        self::assertSame(['{"n":1}', 'a', 'c'], $sharded->messages(3));
        self::assertSame(['b'], $shardedOther->messages(1));
        $sharded->assertNothingMore();
        $shardedOther->assertNothingMore();
        self::assertSame(4, $client->stats()['published']);

        // Global mode: a classic SUBSCRIBE on a node that does not own the slot receives it.
        $classic = $this->subscribe($cluster->notOwnerOf($channel), $channel);
        $global = new Client($cluster->url(), self::OPTIONS + ['cluster_publish' => 'global']);
        $global->publish($channel, 'everywhere');
        self::assertSame(['everywhere'], $classic->messages(1));
        $sharded->assertNothingMore(0.2, 'a global publish is not a sharded message');
    }

    public function testTheFacadePublishesThroughAClusterFromPhpIni(): void
    {
        $cluster = $this->redisCluster();
        $channel = self::channel('cluster-ini');
        $sharded = $this->subscribe($cluster->ownerOf($channel), $channel, sharded: true);
        $result = PhpProcess::code(
            ['qrpush.url' => $cluster->url()],
            'echo QrPush::publish(' . var_export($channel, true) . ', "from php.ini");',
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertSame('1', $result->stdout, $result->describe());
        self::assertSame(['from php.ini'], $sharded->messages(1));
    }

    public function testAWholeLoginFlowPublishesOnTheOwnerOfItsChannel(): void
    {
        $cluster = $this->redisCluster();
        $ini = ['qrpush.url' => $cluster->url(), 'qrpush.login_channel_mode' => 'per_login'];
        // Two PHP processes, as two requests: the browser's start, then (once the test listens on
        // the login's channel) the phone's scan and approve and the browser's redeem.
        $start = PhpProcess::code($ini, <<<'PHP'
            $s = QrPush\Login::start('198.51.100.7', 'DesktopBrowser/1.0');
            echo json_encode(['id' => $s['id'], 'qr' => $s['qr'], 'secret' => $s['browser_secret'], 'channel' => $s['channel']]);
            PHP);
        self::assertSame(0, $start->exitCode, $start->describe());
        $login = json_decode($start->stdout, true, flags: JSON_THROW_ON_ERROR);
        $id = $login['id'];
        self::assertSame("qr-login-events:{$id}", $login['channel'], 'channel names as on one server');
        $owner = $cluster->ownerOf($login['channel']);
        $sharded = $this->subscribe($owner, $login['channel'], sharded: true);
        $classic = $this->subscribe($cluster->notOwnerOf($login['channel']), $login['channel']);

        $flow = PhpProcess::code($ini, sprintf(<<<'PHP'
            [$id, $qr, $secret] = [%s, %s, %s];
            $scan = QrPush\Login::scan($qr, 'alice', 'PhoneApp/2.0');
            $approve = QrPush\Login::approve($id, 'alice', 'Alice');
            $status = QrPush\Login::status($id, $secret);
            $user = QrPush\Login::redeem($id, $status['ticket'], $secret, $approve['confirmation_code']);
            echo json_encode([$scan['state'], $scan['browser_ip'], $approve['state'], $status['approver_name'], $user]);
            PHP, var_export($id, true), var_export($login['qr'], true), var_export($login['secret'], true)));
        self::assertSame(0, $flow->exitCode, $flow->describe());
        self::assertSame(['scanned', '198.51.100.7', 'approved', 'Alice', 'alice'], json_decode($flow->stdout, true));

        $events = array_map(
            static fn (string $m): array => json_decode($m, true, flags: JSON_THROW_ON_ERROR),
            $sharded->messages(3),
        );
        self::assertSame(
            [['scanned', 2, $id], ['approved', 3, $id], ['redeemed', 4, $id]],
            array_map(static fn (array $e): array => [$e['type'], $e['seq'], $e['loginId']], $events),
        );
        $sharded->assertNothingMore();
        $classic->assertNothingMore(0.1, 'sharded events stay on their shard');
        // The login's one key is on the channel's owner, in the channel's slot, without the id.
        $keys = $owner->command('KEYS', 'qrpush:login:{*');
        self::assertCount(1, $keys);
        self::assertStringNotContainsString($id, $keys[0]);
        self::assertSame(
            $owner->command('CLUSTER', 'KEYSLOT', $login['channel']),
            $owner->command('CLUSTER', 'KEYSLOT', $keys[0]),
        );
    }

    public function testDurablePublishesAreStoredAndPublishedOnTheOwnerOfTheirChannel(): void
    {
        $cluster = $this->redisCluster();
        $a = self::channel('durable-a');
        $b = null;
        for ($i = 0; $b === null; $i++) {
            $candidate = self::channel("durable-b{$i}");
            if ($cluster->ownerOf($candidate)->port() !== $cluster->ownerOf($a)->port()) {
                $b = $candidate;
            }
        }
        $subA = $this->subscribe($cluster->ownerOf($a), $a, sharded: true);
        $subB = $this->subscribe($cluster->ownerOf($b), $b, sharded: true);
        $client = new Client($cluster->url(), self::OPTIONS);

        $one = $client->publishDurable($a, ['n' => 1]);
        self::assertSame(1, $one['receivers']);
        $many = $client->publishManyDurable([[$a, 'x'], [$b, 'y'], [$a, 'z']]);
        self::assertSame([1, 1, 1], array_column($many, 'receivers'));
        self::assertSame($one['epoch'], $many[0]['epoch']);
        self::assertSame($many[0]['epoch'], $many[2]['epoch']);
        $frame = static fn (array $at, string $m): string => "qrpush-durable/1 {$at['epoch']} {$at['offset']}\n{$m}";
        self::assertSame([$frame($one, '{"n":1}'), $frame($many[0], 'x'), $frame($many[2], 'z')], $subA->messages(3));
        self::assertSame([$frame($many[1], 'y')], $subB->messages(1));
        $subA->assertNothingMore();
        $subB->assertNothingMore();
        // Each stream is on its channel's owner (the key shares the channel's slot).
        self::assertSame(3, $cluster->ownerOf($a)->command('XLEN', "qrpush:stream:{{$a}}"));
        self::assertSame(1, $cluster->ownerOf($b)->command('XLEN', "qrpush:stream:{{$b}}"));
        self::assertSame(4, $client->stats()['published']);
    }
}
