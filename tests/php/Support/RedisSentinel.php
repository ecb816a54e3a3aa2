<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * 1 primary + 1 replica monitored as service "qrpush" by 3 Sentinels (quorum 2), for one test;
 * usable once every Sentinel names the primary and knows the replica and the other Sentinels.
 * Every server is stopped by its pid in stop() and by its own destructor.
 */
final class RedisSentinel
{
    public const SERVICE = 'qrpush';

    public readonly RedisServer $primary;
    public readonly RedisServer $replica;
    /** @var list<RedisServer> */
    public readonly array $sentinels;

    /**
     * @param string|null $sentinelPassword The Sentinels' own requirepass (they use it among
     *     themselves too); the data nodes stay without one.
     */
    public function __construct(?string $sentinelPassword = null)
    {
        $this->primary = new RedisServer();
        $port = $this->primary->port();
        $this->replica = new RedisServer(null, ['--replicaof', '127.0.0.1', (string) $port]);
        $service = self::SERVICE;
        $config = "sentinel monitor {$service} 127.0.0.1 {$port} 2\n"
            . "sentinel down-after-milliseconds {$service} 1000\n"
            . "sentinel failover-timeout {$service} 3000\n";
        if ($sentinelPassword !== null) {
            $config .= "requirepass {$sentinelPassword}\nsentinel sentinel-pass {$sentinelPassword}\n";
        }
        $this->sentinels = [
            new RedisServer($sentinelPassword, [], false, $config),
            new RedisServer($sentinelPassword, [], false, $config),
            new RedisServer($sentinelPassword, [], false, $config),
        ];
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

    /** redis-sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3#qrpush */
    public function url(): string
    {
        return 'redis-sentinel://' . implode(',', array_map(static fn (RedisServer $s): string => "127.0.0.1:{$s->port()}", $this->sentinels)) . '#' . self::SERVICE;
    }

    public function stop(): void
    {
        foreach ([...($this->sentinels ?? []), $this->replica ?? null, $this->primary ?? null] as $server) {
            $server?->kill();
        }
    }
}
