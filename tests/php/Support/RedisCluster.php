<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * A Redis Cluster for one test: 3 primaries + 3 replicas (RedisServer children with
 * --cluster-enabled, each with its own free cluster-bus port), joined by `redis-cli --cluster
 * create`; usable once every node says cluster_state:ok and knows all the others. Every node is
 * stopped by its pid in stop() and by its own destructor.
 *
 * Needs redis-cli beside the tests (REDIS_CLI, else PATH): not available when the servers are
 * external (the Wine run), where the tests using it skip.
 */
final class RedisCluster
{
    /** @var list<RedisServer> */
    public readonly array $nodes;

    public function __construct(int $primaries = 3, int $replicasEach = 1)
    {
        $nodes = [];
        for ($i = 0; $i < $primaries * (1 + $replicasEach); $i++) {
            $nodes[] = new RedisServer(null, [
                '--cluster-enabled', 'yes',
                '--cluster-port', (string) Processes::freePort(),
                '--cluster-node-timeout', '2000',
            ]);
        }
        $this->nodes = $nodes;
        $command = [
            getenv('REDIS_CLI') ?: 'redis-cli', '--cluster', 'create',
            ...array_map(static fn (RedisServer $n): string => "127.0.0.1:{$n->port()}", $nodes),
            '--cluster-replicas', (string) $replicasEach, '--cluster-yes',
        ];
        $result = PhpProcess::exec($command, 60.0);
        if ($result->exitCode !== 0) {
            $this->stop();
            throw new \RuntimeException('redis-cli --cluster create failed: ' . $result->describe());
        }
        $count = \count($nodes);
        $settled = Processes::waitFor(function () use ($count): bool {
            foreach ($this->nodes as $node) {
                $info = (string) $node->command('CLUSTER', 'INFO');
                if (!str_contains($info, "cluster_state:ok") || !str_contains($info, "cluster_known_nodes:{$count}")) {
                    return false;
                }
            }
            return true;
        }, 30.0, 0.05);
        if (!$settled) {
            $this->stop();
            throw new \RuntimeException('the Redis Cluster did not reach cluster_state:ok within 30 s');
        }
    }

    /** redis-cluster://127.0.0.1:P1,… with every node as a seed. */
    public function url(): string
    {
        return 'redis-cluster://' . implode(',', array_map(static fn (RedisServer $n): string => "127.0.0.1:{$n->port()}", $this->nodes));
    }

    /** The primary owning `$key`'s slot, as the servers compute it (CLUSTER KEYSLOT, CLUSTER SLOTS). */
    public function ownerOf(string $key): RedisServer
    {
        $slot = (int) $this->nodes[0]->command('CLUSTER', 'KEYSLOT', $key);
        foreach ($this->nodes[0]->command('CLUSTER', 'SLOTS') as $range) {
            if ($slot >= (int) $range[0] && $slot <= (int) $range[1]) {
                return $this->node((int) $range[2][1]);
            }
        }
        throw new \RuntimeException("slot {$slot} is not served");
    }

    /** A node that does not own `$key`'s slot (a primary or a replica). */
    public function notOwnerOf(string $key): RedisServer
    {
        $owner = $this->ownerOf($key)->port();
        foreach ($this->nodes as $node) {
            if ($node->port() !== $owner) {
                return $node;
            }
        }
        throw new \LogicException('a Cluster of one node');
    }

    public function node(int $port): RedisServer
    {
        foreach ($this->nodes as $node) {
            if ($node->port() === $port) {
                return $node;
            }
        }
        throw new \RuntimeException("no Cluster node on port {$port}");
    }

    public function stop(): void
    {
        foreach ($this->nodes ?? [] as $node) {
            $node->kill();
        }
    }
}
