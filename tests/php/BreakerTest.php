<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;
use QrPush\ConnectionException;
use QrPush\TimeoutException;

/**
 * The circuit breaker as PHP sees it: after a connection attempt timed out, calls throw
 * ConnectionException "circuit open ..." at once for qrpush.breaker_cooldown; stats() and phpinfo
 * show its state; bad values are a ValueError. (The core's tests/breaker.rs covers the trial, the
 * cool-down of 0 and the other edge cases.)
 */
final class BreakerTest extends TestCase
{
    public function testTimedOutConnectFailsTheNextCallsFastAndShowsInStats(): void
    {
        $server = $this->redis();
        $client = new Client($server->url(), ['connect_timeout' => 0.3, 'timeout' => 0.3, 'breaker_cooldown' => 0.6]);
        self::assertSame(['state' => 'closed', 'opened_at' => null, 'fast_failures' => 0, 'trips' => 0], $client->stats()['breaker']);
        $server->freeze();
        try {
            $t = microtime(true);
            self::assertThrowsExactly(TimeoutException::class, fn () => $client->publish('c', 'x'));
            self::assertGreaterThanOrEqual(0.25, microtime(true) - $t);
            $t = microtime(true);
            $e = self::assertThrowsExactly(ConnectionException::class, fn () => $client->publish('c', 'x'), 'circuit open for Redis at 127.0.0.1:');
            self::assertLessThan(0.05, microtime(true) - $t, 'failed fast');
            self::assertMatchesRegularExpression('/; retrying after 0\.\d+ s \(qrpush\.breaker_cooldown\)$/', $e->getMessage());
        } finally {
            $server->thaw();
        }
        $breaker = $client->stats()['breaker'];
        self::assertSame('open', $breaker['state']);
        self::assertEqualsWithDelta(microtime(true), $breaker['opened_at'], 2.0);
        self::assertSame(1, $breaker['fast_failures']);
        self::assertSame(1, $breaker['trips']);

        usleep(700000); // the cool-down is over: one trial, which succeeds now
        self::assertSame('half-open', $client->stats()['breaker']['state']);
        self::assertSame(0, $client->publish('c', 'x'));
        self::assertSame(['state' => 'closed', 'opened_at' => null, 'fast_failures' => 1, 'trips' => 1], $client->stats()['breaker']);
    }

    public function testZeroIsAcceptedAndInvalidValuesAreRefused(): void
    {
        $server = $this->redis();
        $client = new Client($server->url(), ['breaker_cooldown' => 0]);
        self::assertSame(0, $client->publish('c', 'x'));
        self::assertSame('closed', $client->stats()['breaker']['state']);
        self::assertThrowsExactly(\ValueError::class, fn () => new Client($server->url(), ['breaker_cooldown' => -1]), 'breaker_cooldown: expected 0 (off) or seconds');
    }

    public function testPhpinfoShowsTheDirectiveAndTheState(): void
    {
        $server = $this->redis();
        $server->freeze();
        try {
            $result = PhpProcess::code(
                ['qrpush.url' => $server->url(), 'qrpush.connect_timeout' => '0.2', 'qrpush.timeout' => '0.2', 'qrpush.breaker_cooldown' => '30'],
                <<<'PHP'
                foreach ([1, 2] as $i) {
                    try { QrPush::publish('c', 'x'); } catch (QrPush\Exception $e) { echo get_class($e), "\n"; }
                }
                phpinfo(INFO_MODULES);
                PHP,
            );
        } finally {
            $server->thaw();
        }
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertStringStartsWith("QrPush\\TimeoutException\nQrPush\\ConnectionException\n", $result->stdout, $result->describe());
        self::assertMatchesRegularExpression('/qrpush\.breaker_cooldown => 30\.0/', $result->stdout);
        self::assertMatchesRegularExpression('/circuit breaker => open, opened at \d+\.\d{3} \(Unix time\); 1 trips, 1 fast failures/', $result->stdout);
    }
}
