<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;

/**
 * Redis Sentinel from PHP: the redis-sentinel:// URL forms in `new Client()` (validated without
 * connecting, the password never shown), and a publish through 1 primary + 1 replica + 3
 * Sentinels, with stats() and phpinfo showing the service, the primary in use and the failovers
 * followed; Sentinels with a password of their own, given as qrpush.sentinel_password (php.ini) or
 * the `sentinel_password` option, never shown.
 */
final class SentinelTest extends TestCase
{
    public function testSentinelUrlsAreValidatedWithoutConnecting(): void
    {
        $client = new Client('redis-sentinel://:s3cret@127.0.0.1:1,127.0.0.1/2#mymaster');
        $stats = $client->stats();
        self::assertSame('redis-sentinel://:<redacted>@127.0.0.1:1,127.0.0.1:26379/2#mymaster', $stats['endpoint']);
        self::assertSame(['kind' => 'sentinel', 'service' => 'mymaster', 'primary' => null, 'failovers' => 0, 'redirects' => 0], $stats['topology']);
        new Client('rediss-sentinel://127.0.0.1#mymaster');

        $bad = [
            'redis-sentinel://:s3cret@127.0.0.1:26379' => 'names no service',
            'redis-sentinel://:s3cret@127.0.0.1:26379#' => 'service name',
            'redis-sentinel://:s3cret@127.0.0.1,,127.0.0.2#s' => 'empty host',
        ];
        foreach ($bad as $url => $says) {
            $e = self::assertThrowsExactly(\ValueError::class, fn () => new Client($url), $says);
            self::assertStringNotContainsString('s3cret', $e->getMessage());
        }
    }

    public function testPublishGoesToThePrimaryTheSentinelsName(): void
    {
        $sentinel = $this->redisSentinel();
        $channel = self::channel('sentinel');
        $subscriber = $this->subscribe($sentinel->primary, $channel);

        $client = new Client($sentinel->url(), ['connect_timeout' => 1.0, 'timeout' => 1.0]);
        self::assertSame(1, $client->publish($channel, ['n' => 1]));
        self::assertSame([1, 1], $client->publishMany([[$channel, 'a'], [$channel, 'b']]));
        self::assertSame(['{"n":1}', 'a', 'b'], $subscriber->messages(3));
        $subscriber->assertNothingMore();
        $topology = $client->stats()['topology'];
        self::assertSame('sentinel', $topology['kind']);
        self::assertSame('127.0.0.1:' . $sentinel->primary->port(), $topology['primary']);
        self::assertSame(0, $topology['failovers']);

        $result = PhpProcess::code(
            ['qrpush.url' => $sentinel->url()],
            'echo QrPush::publish(' . var_export($channel, true) . ', "from php.ini"), "\n"; phpinfo(INFO_MODULES);',
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertStringStartsWith("1\n", $result->stdout, $result->describe());
        self::assertSame(['from php.ini'], $subscriber->messages(1));
        self::assertMatchesRegularExpression('/topology => sentinel/', $result->stdout);
        self::assertStringContainsString('qrpush / 127.0.0.1:' . $sentinel->primary->port(), $result->stdout);
        self::assertMatchesRegularExpression('/failovers followed => 0/', $result->stdout);
    }

    public function testSentinelsWithTheirOwnPasswordAreAskedWithSentinelPassword(): void
    {
        $sentinel = $this->redisSentinel('sentinel-s3cret');
        $channel = self::channel('sentinel-auth');
        $subscriber = $this->subscribe($sentinel->primary, $channel);
        $options = ['connect_timeout' => 1.0, 'timeout' => 1.0];

        $client = new Client($sentinel->url(), $options + ['sentinel_password' => 'sentinel-s3cret']);
        self::assertSame(1, $client->publish($channel, 'with the option'));
        self::assertSame(['with the option'], $subscriber->messages(1));
        self::assertStringNotContainsString('sentinel-s3cret', var_export($client->stats(), true));

        $without = new Client($sentinel->url(), $options);
        $e = self::assertThrowsExactly(\QrPush\ConnectionException::class, fn () => $without->publish($channel, 'x'), 'NOAUTH');
        self::assertStringContainsString("no primary of the Sentinel service 'qrpush' found", $e->getMessage());
        $wrong = new Client($sentinel->url(), $options + ['sentinel_password' => 'wrong-s3cret']);
        $e = self::assertThrowsExactly(\QrPush\ConnectionException::class, fn () => $wrong->publish($channel, 'x'), 'WRONGPASS');
        self::assertStringNotContainsString('wrong-s3cret', $e->getMessage());
        $e = self::assertThrowsExactly(\ValueError::class, fn () => new Client($sentinel->url(), ['sentinel_password' => "a\nb"]), 'sentinel_password');
        self::assertStringNotContainsString("a\nb", $e->getMessage());

        $result = PhpProcess::code(
            ['qrpush.url' => $sentinel->url(), 'qrpush.sentinel_password' => 'sentinel-s3cret', 'qrpush.sentinel_user' => 'default'],
            'echo QrPush::publish(' . var_export($channel, true) . ', "from php.ini"), "\n"; phpinfo(INFO_MODULES);',
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertStringStartsWith("1\n", $result->stdout, $result->describe());
        self::assertSame(['from php.ini'], $subscriber->messages(1));
        self::assertMatchesRegularExpression('/qrpush\.sentinel_password => <redacted>/', $result->stdout);
        self::assertMatchesRegularExpression('/qrpush\.sentinel_user => default/', $result->stdout);
        self::assertStringNotContainsString('sentinel-s3cret', $result->stdout . $result->stderr);
        $subscriber->assertNothingMore();
    }

    public function testTheSwitchSettingsComeFromPhpIniAndOptions(): void
    {
        $result = PhpProcess::code(
            ['qrpush.sentinel_check_interval' => '0.25', 'qrpush.sentinel_zero_check' => 'off'],
            'phpinfo(INFO_MODULES);',
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertMatchesRegularExpression('/qrpush\.sentinel_check_interval => 0\.25/', $result->stdout);
        self::assertMatchesRegularExpression('/qrpush\.sentinel_zero_check => off/', $result->stdout);
        $defaults = PhpProcess::code([], 'phpinfo(INFO_MODULES);');
        self::assertMatchesRegularExpression('/qrpush\.sentinel_check_interval => 1\.0/', $defaults->stdout);
        self::assertMatchesRegularExpression('/qrpush\.sentinel_zero_check => on/', $defaults->stdout);

        self::assertThrowsExactly(\ValueError::class, fn () => new Client('redis-sentinel://127.0.0.1#s', ['sentinel_zero_check' => 'maybe']), 'sentinel_zero_check');
        self::assertThrowsExactly(\ValueError::class, fn () => new Client('redis-sentinel://127.0.0.1#s', ['sentinel_check_interval' => '-1']), 'sentinel_check_interval');
    }

    /**
     * Right after SENTINEL FAILOVER the old primary still says it is master and runs PUBLISH for
     * nobody once the subscriber moved to the new primary: the call that lands there throws
     * ReplicaException (code 5) naming both nodes instead of returning 0, and every other call
     * reaches the subscriber on the new primary.
     */
    public function testAPublishForNobodyOnASwitchedPrimaryThrows(): void
    {
        $sentinel = $this->redisSentinel();
        $channel = self::channel('sentinel-switch');
        $client = new Client($sentinel->url(), ['connect_timeout' => 1.0, 'timeout' => 1.0, 'sentinel_check_interval' => '60']);
        $before = $this->subscribe($sentinel->primary, $channel);
        self::assertSame(1, $client->publish($channel, 'before'));
        self::assertSame(['before'], $before->messages(1));
        $before->close();

        $old = $sentinel->primary->port();
        $new = $sentinel->replica->port();
        self::assertSame('OK', (string) $sentinel->sentinels[0]->command('SENTINEL', 'FAILOVER', RedisSentinel::SERVICE));
        self::assertTrue(Processes::waitFor(function () use ($sentinel, $new): bool {
            if (($sentinel->replica->command('ROLE')[0] ?? null) !== 'master') {
                return false;
            }
            foreach ($sentinel->sentinels as $s) {
                $addr = $s->command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', RedisSentinel::SERVICE);
                if (!\is_array($addr) || (int) $addr[1] !== $new) {
                    return false;
                }
            }
            return true;
        }, 30.0, 0.05), 'the Sentinels did not switch to the replica within 30 s');
        $after = $this->subscribe($sentinel->replica, $channel);

        $delivered = [];
        $thrown = 0;
        for ($i = 0; $i < 50; $i++) {
            try {
                self::assertSame(1, $client->publish($channel, "after-{$i}"), "publish #{$i}");
                $delivered[] = "after-{$i}";
            } catch (\QrPush\ReplicaException $e) {
                self::assertSame(5, $e->getCode());
                self::assertStringContainsString("127.0.0.1:{$old}", $e->getMessage());
                self::assertStringContainsString("127.0.0.1:{$new}", $e->getMessage());
                $thrown++;
            }
        }
        self::assertSame(1, $thrown, 'only the first call after the switch went to the old primary');
        self::assertSame($delivered, $after->messages(\count($delivered)));
        $after->assertNothingMore();
        self::assertSame("127.0.0.1:{$new}", $client->stats()['topology']['primary']);
    }
}
