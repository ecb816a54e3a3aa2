<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;
use QrPush\ConnectionException;

/**
 * `rediss-sentinel://` from PHP: Sentinels and data nodes on TLS (1 primary + 1 replica
 * replicating over TLS, 3 Sentinels with TLS ports monitoring the primary's TLS port), the test
 * CA given as the `tls_ca_file` Client option and as `qrpush.tls_ca_file` in php.ini. Publishes
 * reach a subscriber on the primary exactly once, over a TLS connection to the primary's TLS
 * port; trusting another CA, the Sentinels' certificates are refused with a ConnectionException
 * and nothing is published. How the core asks TLS Sentinels is proved by
 * crates/qrpush-core/tests/sentinel_tls.rs.
 */
#[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
final class SentinelTlsTest extends TestCase
{
    use UsesTestPki;

    public function testPublishesThroughTlsSentinelsTrustingTheConfiguredCaOnly(): void
    {
        $sentinel = $this->redisSentinel(null, self::$pki);
        $url = $sentinel->url();
        self::assertStringStartsWith('rediss-sentinel://127.0.0.1:', $url);
        $channel = self::channel('sentinel-tls');
        $subscriber = $this->subscribe($sentinel->primary, $channel);
        $options = ['connect_timeout' => 2.0, 'timeout' => 1.0];
        $ca = self::$pki . '/ca.pem';
        $otherCa = self::$pki . '/other-ca.pem';

        // The CA as a Client option.
        $client = new Client($url, $options + ['tls_ca_file' => $ca]);
        self::assertSame(1, $client->publish($channel, ['n' => 1]));
        self::assertSame([1, 1], $client->publishMany([[$channel, 'a'], [$channel, 'b']]));
        self::assertSame(['{"n":1}', 'a', 'b'], $subscriber->messages(3));
        $stats = $client->stats();
        self::assertSame(str_replace('#', '/0#', $url), $stats['endpoint']);
        self::assertSame('sentinel', $stats['topology']['kind']);
        self::assertSame("127.0.0.1:{$sentinel->primaryTlsPort}", $stats['topology']['primary'], 'the primary is reached on its TLS port');
        // The connection this process holds to the primary is on its TLS port (the plain one
        // serves only the test's own connections).
        $ours = $sentinel->primary->qrpushClients(getmypid());
        self::assertNotEmpty($ours);
        foreach ($ours as $row) {
            self::assertSame("127.0.0.1:{$sentinel->primaryTlsPort}", $row['laddr'] ?? null, json_encode($row));
        }

        // The CA in php.ini, through the facade.
        $ini = ['qrpush.url' => $url, 'qrpush.tls_ca_file' => $ca, 'qrpush.connect_timeout' => '2'];
        $result = PhpProcess::code($ini, 'echo QrPush::publish(' . var_export($channel, true) . ", 'from php.ini'), ' ', QrPush::stats()['topology']['primary'];");
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertSame("1 127.0.0.1:{$sentinel->primaryTlsPort}", $result->stdout, $result->describe());
        self::assertSame('', $result->stderr);
        self::assertSame(['from php.ini'], $subscriber->messages(1));

        // Trusting another CA: the Sentinels are asked over TLS, so their certificates are refused
        // before any primary is named, as an option and in php.ini.
        $untrusting = new Client($url, $options + ['tls_ca_file' => $otherCa]);
        $e = self::assertThrowsExactly(
            ConnectionException::class,
            static fn () => $untrusting->publish($channel, 'must not arrive'),
            "no primary of the Sentinel service 'qrpush' found through 127.0.0.1:",
        );
        self::assertStringContainsString('certificate', strtolower($e->getMessage()));
        self::assertNull($untrusting->stats()['topology']['primary']);
        $result = PhpProcess::code(
            ['qrpush.tls_ca_file' => $otherCa] + $ini,
            'try { QrPush::publish(' . var_export($channel, true) . ", 'must not arrive'); }"
            . ' catch (QrPush\\ConnectionException $e) { echo get_class($e), ": ", $e->getMessage(); }',
        );
        self::assertStringStartsWith(
            "QrPush\\ConnectionException: no primary of the Sentinel service 'qrpush' found through 127.0.0.1:",
            $result->stdout,
            $result->describe(),
        );
        self::assertStringContainsString('certificate', strtolower($result->stdout));
        $subscriber->assertNothingMore();
    }
}
