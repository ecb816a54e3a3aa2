<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * 1 primary + 1 replica monitored as service "qrpush" by 3 Sentinels (quorum 2), for one test;
 * usable once every Sentinel names the primary and knows the replica and the other Sentinels.
 * Every server is stopped by its pid in stop() and by its own destructor.
 *
 * With a TestPki directory every server also listens on a TLS port: the replica replicates over
 * TLS, the Sentinels monitor the primary's TLS port (`tls-replication yes`, so they name the data
 * nodes' TLS ports) and url() is the `rediss-sentinel://` URL of the Sentinels' TLS ports. The
 * plain ports stay for the tests' own admin and subscriber connections.
 */
final class RedisSentinel
{
    public const SERVICE = 'qrpush';

    public readonly RedisServer $primary;
    public readonly RedisServer $replica;
    /** @var list<RedisServer> */
    public readonly array $sentinels;

    /** The primary's TLS port (null without TLS). */
    public readonly ?int $primaryTlsPort;
    /** @var list<int> The TLS port of each Sentinel, in the order of $sentinels (empty without TLS). */
    private array $sentinelTlsPorts = [];

    /**
     * @param string|null $sentinelPassword The Sentinels' own requirepass (they use it among
     *     themselves too); the data nodes stay without one.
     * @param string|null $pki A TestPki directory: every server on TLS too (see the class).
     */
    public function __construct(?string $sentinelPassword = null, private readonly ?string $pki = null)
    {
        $this->primaryTlsPort = $this->tlsPort();
        $this->primary = new RedisServer(null, $this->tlsArgs($this->primaryTlsPort));
        // The port the Sentinels monitor, and the replica replicates from.
        $port = $this->primaryTlsPort ?? $this->primary->port();
        $this->replica = new RedisServer(null, ['--replicaof', '127.0.0.1', (string) $port, ...$this->tlsArgs($this->tlsPort())]);
        $service = self::SERVICE;
        $config = "sentinel monitor {$service} 127.0.0.1 {$port} 2\n"
            . "sentinel down-after-milliseconds {$service} 1000\n"
            . "sentinel failover-timeout {$service} 3000\n";
        if ($sentinelPassword !== null) {
            $config .= "requirepass {$sentinelPassword}\nsentinel sentinel-pass {$sentinelPassword}\n";
        }
        $sentinels = [];
        for ($i = 0; $i < 3; $i++) {
            $tls = '';
            if ($pki !== null) {
                // A Sentinel takes its TLS settings from its config file only.
                $this->sentinelTlsPorts[] = $tlsPort = $this->tlsPort();
                $tls = "tls-port {$tlsPort}\ntls-cert-file {$pki}/server.pem\ntls-key-file {$pki}/server.key\n"
                    . "tls-ca-cert-file {$pki}/ca.pem\ntls-auth-clients no\ntls-replication yes\n";
            }
            $sentinels[] = new RedisServer($sentinelPassword, [], false, $tls . $config);
        }
        $this->sentinels = $sentinels;
        $settled = Processes::waitFor(function () use ($port): bool {
            foreach ($this->sentinels as $sentinel) {
                $addr = $sentinel->command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', self::SERVICE);
                if (!\is_array($addr) || (int) $addr[1] !== $port
                    || \count($sentinel->command('SENTINEL', 'SENTINELS', self::SERVICE)) !== 2
                    || \count($sentinel->command('SENTINEL', 'REPLICAS', self::SERVICE)) !== 1) {
                    return false;
                }
            }
            return true;
        }, 30.0, 0.05);
        if (!$settled) {
            $this->stop();
            throw new \RuntimeException('the Sentinels did not agree on the primary within 30 s');
        }
    }

    /** redis-sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3#qrpush (with TLS: rediss-sentinel:// and the TLS ports) */
    public function url(): string
    {
        if ($this->pki !== null) {
            return 'rediss-sentinel://' . implode(',', array_map(static fn (int $p): string => "127.0.0.1:{$p}", $this->sentinelTlsPorts)) . '#' . self::SERVICE;
        }
        return 'redis-sentinel://' . implode(',', array_map(static fn (RedisServer $s): string => "127.0.0.1:{$s->port()}", $this->sentinels)) . '#' . self::SERVICE;
    }

    /** A free port for a TLS listener, or null without TLS. */
    private function tlsPort(): ?int
    {
        return $this->pki === null ? null : Processes::freePort();
    }

    /** @return list<string> redis-server arguments for a TLS port that replicates over TLS too */
    private function tlsArgs(?int $tlsPort): array
    {
        return $tlsPort === null ? [] : [...TestPki::serverArgs($this->pki, $tlsPort), '--tls-replication', 'yes'];
    }

    public function stop(): void
    {
        foreach ([...($this->sentinels ?? []), $this->replica ?? null, $this->primary ?? null] as $server) {
            $server?->kill();
        }
    }
}
