<?php

declare(strict_types=1);

/*
 * The fault suite's topology scenarios (see suite.php --topology): php-fpm publishing through a
 * Sentinel-managed primary or a Redis Cluster (sharded mode: SPUBLISH to the channel's slot owner)
 * while the topology changes under it: SENTINEL FAILOVER, kill -9 of the primary, kill -9 of a
 * Cluster primary (its replica promoted), the channel's slot migrated by hand, one Sentinel down.
 * The counting subscriber follows the topology (subscriber.php sentinel:/cluster:), so "received"
 * means received by a subscriber of the new topology. The topologies are the PHP tests' own
 * (tests/php/Support: RedisSentinel, RedisCluster): free loopback ports, settled before use,
 * stopped by pid.
 */

use QrPush\Tests\RedisCluster;
use QrPush\Tests\RedisSentinel;
use QrPush\Tests\RedisServer;

/**
 * Waits for a topology condition that asks its nodes: a node that refuses or drops the question
 * (Sentinel kills the clients of a node it reconfigures, a restarted node is still loading) means
 * "not yet", not a failed scenario.
 */
function waitForTopology(callable $condition, float $seconds, string $what): mixed
{
    return waitFor(static function () use ($condition): mixed {
        try {
            return $condition();
        } catch (RuntimeException) {
            return false;
        }
    }, $seconds, $what);
}

/** A topology under test: where php-fpm and the subscriber point, and how to reach its current primary. */
interface Topology
{
    /** qrpush.url */
    public function url(): string;

    /** subscriber.php's first argument */
    public function subscriberTarget(): string;

    /** Publishes on the channel's current primary as a subscriber of the new topology hears it; its receiver count. */
    public function publishMarker(string $channel, string $payload): int;

    /** The port of the data node a channel is published on now (the primary; on Cluster its slot's owner). */
    public function nodeOf(string $channel): ?int;

    /** Every data node still running (for the stale-connection check). */
    public function liveNodes(): array;

    public function stop(): void;
}

final class SentinelTopology implements Topology
{
    public function __construct(public readonly RedisSentinel $sentinel)
    {
    }

    public function url(): string
    {
        return $this->sentinel->url();
    }

    public function subscriberTarget(): string
    {
        $ports = array_map(static fn (RedisServer $s): int => $s->port(), $this->sentinel->sentinels);
        return 'sentinel:' . implode(',', $ports) . '#' . RedisSentinel::SERVICE;
    }

    /** The primary's port as the running Sentinels name it, when they all agree (else null). */
    public function agreedPrimary(): ?int
    {
        $named = [];
        foreach ($this->sentinel->sentinels as $s) {
            if (!$s->isRunning()) {
                continue;
            }
            $addr = $s->command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', RedisSentinel::SERVICE);
            $named[] = is_array($addr) ? (int) $addr[1] : 0;
        }
        $named = array_unique($named);
        return count($named) === 1 && $named[0] !== 0 ? $named[0] : null;
    }

    public function server(int $port): RedisServer
    {
        foreach ([$this->sentinel->primary, $this->sentinel->replica] as $s) {
            if ($s->port() === $port) {
                return $s;
            }
        }
        throw new RuntimeException("no data node on port {$port}");
    }

    public function primary(): RedisServer
    {
        return $this->server(waitForTopology(fn (): ?int => $this->agreedPrimary(), 10.0, 'the Sentinels to agree on the primary'));
    }

    /**
     * Waits until every running Sentinel names a primary other than `$old`, that primary says it is
     * one (ROLE), and every other running data node replicates from it; returns when.
     */
    public function waitSettled(int $old): float
    {
        waitForTopology(function () use ($old): bool {
            $p = $this->agreedPrimary();
            if ($p === null || $p === $old || ($this->server($p)->command('ROLE')[0] ?? '') !== 'master') {
                return false;
            }
            foreach ($this->liveNodes() as $n) {
                if ($n->port() !== $p && !str_contains((string) $n->command('INFO', 'replication'), "master_port:{$p}\r\nmaster_link_status:up")) {
                    return false;
                }
            }
            return true;
        }, 45.0, 'the Sentinels to settle on a new primary');
        return microtime(true);
    }

    public function publishMarker(string $channel, string $payload): int
    {
        return (int) $this->primary()->command('PUBLISH', $channel, $payload);
    }

    public function nodeOf(string $channel): ?int
    {
        return $this->primary()->port();
    }

    public function liveNodes(): array
    {
        return array_values(array_filter([$this->sentinel->primary, $this->sentinel->replica], static fn (RedisServer $s): bool => $s->isRunning()));
    }

    public function stop(): void
    {
        $this->sentinel->stop();
    }
}

final class ClusterTopology implements Topology
{
    public function __construct(public readonly RedisCluster $cluster)
    {
        // A replica still in its first sync is never promoted (its data is too old to be trusted):
        // the kill scenario needs every replica's link up before the fault.
        waitForTopology(function (): bool {
            foreach ($this->liveNodes() as $n) {
                $info = (string) $n->command('INFO', 'replication');
                if (str_contains($info, 'role:slave') && !str_contains($info, 'master_link_status:up')) {
                    return false;
                }
            }
            return true;
        }, 30.0, 'every Cluster replica in sync');
    }

    public function url(): string
    {
        return $this->cluster->url();
    }

    public function subscriberTarget(): string
    {
        return 'cluster:' . implode(',', array_map(static fn (RedisServer $n): int => $n->port(), $this->cluster->nodes));
    }

    public function liveNodes(): array
    {
        return array_values(array_filter($this->cluster->nodes, static fn (RedisServer $n): bool => $n->isRunning()));
    }

    public function slot(string $channel): int
    {
        return (int) $this->liveNodes()[0]->command('CLUSTER', 'KEYSLOT', $channel);
    }

    /** The slot's owner as `$asked` sees it (CLUSTER SLOTS), or null when it is not served. */
    public function ownerPort(int $slot, RedisServer $asked): ?int
    {
        foreach ($asked->command('CLUSTER', 'SLOTS') as $range) {
            if ($slot >= (int) $range[0] && $slot <= (int) $range[1]) {
                return (int) $range[2][1];
            }
        }
        return null;
    }

    public function owner(string $channel): RedisServer
    {
        return $this->cluster->node($this->ownerPort($this->slot($channel), $this->liveNodes()[0]) ?? throw new RuntimeException('the slot is not served'));
    }

    public function nodeId(RedisServer $node): string
    {
        return trim((string) $node->command('CLUSTER', 'MYID'));
    }

    /** Primaries that are running, by port. @return list<RedisServer> */
    public function primaries(): array
    {
        return array_values(array_filter($this->liveNodes(), static fn (RedisServer $n): bool => ($n->command('ROLE')[0] ?? '') === 'master'));
    }

    /**
     * Waits until every running node says cluster_state:ok and names the same running owner of
     * `$slot`, other than `$not` when given; returns when.
     */
    public function waitSettled(int $slot, ?int $not = null): float
    {
        waitForTopology(function () use ($slot, $not): bool {
            $owners = [];
            foreach ($this->liveNodes() as $n) {
                if (!str_contains((string) $n->command('CLUSTER', 'INFO'), 'cluster_state:ok')) {
                    return false;
                }
                $owners[] = $this->ownerPort($slot, $n);
            }
            $owners = array_unique($owners);
            return count($owners) === 1 && $owners[0] !== null && $owners[0] !== $not
                && $this->cluster->node($owners[0])->isRunning();
        }, 45.0, 'the Cluster to settle on an owner of slot ' . $slot . ($not === null ? '' : " other than port {$not}"));
        return microtime(true);
    }

    public function publishMarker(string $channel, string $payload): int
    {
        return (int) $this->owner($channel)->command('SPUBLISH', $channel, $payload);
    }

    public function nodeOf(string $channel): ?int
    {
        return $this->ownerPort($this->slot($channel), $this->liveNodes()[0]);
    }

    public function stop(): void
    {
        $this->cluster->stop();
    }
}

/**
 * Waits until every replica of the topology has acknowledged what its primary had when asked: each
 * running primary's ROLE lists its replicas with their offsets, and each running replica's link is up.
 */
function waitReplicated(Topology $t, float $seconds): void
{
    $targets = [];
    foreach ($t->liveNodes() as $n) {
        $role = $n->command('ROLE');
        if (($role[0] ?? '') === 'master') {
            $targets[$n->port()] = (int) $role[1];
        }
    }
    waitForTopology(function () use ($t, $targets): bool {
        foreach ($t->liveNodes() as $n) {
            $role = $n->command('ROLE');
            if (($role[0] ?? '') === 'slave' && ($role[3] ?? '') !== 'connected') {
                return false;
            }
            if (($role[0] ?? '') === 'master' && isset($targets[$n->port()])) {
                foreach ($role[2] as $replica) {
                    if ((int) $replica[2] < $targets[$n->port()]) {
                        return false;
                    }
                }
            }
        }
        return true;
    }, $seconds, 'every replica to have what its primary had');
}

/** The node taken down in a cycle comes back before the next one (as a replica: the topology's own doing). */
function restartAsReplica(RedisServer $node, Closure $isReplica): void
{
    $node->restart();
    // Sentinel reconfigures a returning primary only after it reported that role for 8 s.
    waitForTopology($isReplica, 60.0, "the restarted node on port {$node->port()} to rejoin as a replica");
}

/**
 * Moves `$slot` from its owner to another primary by hand, the way `redis-cli --cluster reshard`
 * does it: IMPORTING on the target, MIGRATING on the source, the slot's keys MIGRATEd, held there
 * for `$hold` seconds while the load runs, then NODE on the target, the source and every other
 * primary. Returns [start, end of the SETSLOT NODE round].
 *
 * @return array{0: float, 1: float}
 */
function migrateSlot(ClusterTopology $t, int $slot, float $hold): array
{
    $from = $t->cluster->node($t->ownerPort($slot, $t->liveNodes()[0]));
    $to = null;
    foreach ($t->primaries() as $p) {
        if ($p->port() !== $from->port()) {
            $to = $p;
            break;
        }
    }
    $to ?? throw new RuntimeException('no other primary to move the slot to');
    $fromId = $t->nodeId($from);
    $toId = $t->nodeId($to);
    $start = microtime(true);
    $to->command('CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $fromId);
    $from->command('CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $toId);
    while (($keys = $from->command('CLUSTER', 'GETKEYSINSLOT', $slot, 100)) !== []) {
        $from->command('MIGRATE', '127.0.0.1', $to->port(), '', 0, 5000, 'KEYS', ...$keys);
    }
    sleepUntil($start + $hold);
    $to->command('CLUSTER', 'SETSLOT', $slot, 'NODE', $toId);
    $from->command('CLUSTER', 'SETSLOT', $slot, 'NODE', $toId);
    foreach ($t->primaries() as $p) {
        if ($p->port() !== $from->port() && $p->port() !== $to->port()) {
            $p->command('CLUSTER', 'SETSLOT', $slot, 'NODE', $toId);
        }
    }
    return [$start, microtime(true)];
}

/**
 * The topology scenarios. Each starts its own topology; a cycle injects the fault, waits until the
 * topology settled again (FaultWindow::$settled) and, where the fault took a node down, brings it
 * back for the next cycle.
 *
 * @return list<Scenario>
 */
function topologyScenarios(Settings $s): array
{
    $hold = $s->hold;
    $sentinel = static fn (): Topology => new SentinelTopology(new RedisSentinel());
    $cluster = static fn (): Topology => new ClusterTopology(new RedisCluster());
    // Per-login channels: what docs/TOPOLOGY.md recommends on a Cluster (single mode: one hot slot).
    $perLogin = ['qrpush.login_channel_mode' => 'per_login'];
    $sharded = ['qrpush.cluster_publish' => 'sharded'] + $perLogin;
    // A failover takes Sentinel's down-after-milliseconds (1 s) or the Cluster's node timeout (2 s)
    // plus an election: the publish window is measured and reported; the target is that publishing
    // works again within this bound, and never silently loses or duplicates on the way.
    $failoverBound = 10.0;
    return [
        new Scenario('Sentinel: SENTINEL FAILOVER', 'SENTINEL FAILOVER asked of a Sentinel: the replica promoted, the old primary demoted by Sentinel; pooled connections cut by Sentinel on both', function (Stack $st): FaultWindow {
            /** @var SentinelTopology $t */
            $t = $st->topology;
            $old = $t->primary()->port();
            $t0 = microtime(true);
            $reply = $st->topology->sentinel->sentinels[1]->command('SENTINEL', 'FAILOVER', RedisSentinel::SERVICE);
            if ($reply !== 'OK') {
                throw new RuntimeException('SENTINEL FAILOVER answered ' . json_encode($reply));
            }
            $w = new FaultWindow($t0, microtime(true));
            $w->settled = $t->waitSettled($old);
            return $w;
        }, ini: $perLogin, topology: $sentinel, recoveryBound: $failoverBound, logins: true),
        new Scenario('Sentinel: kill -9 primary', 'SIGKILL the primary: Sentinel sees it down after 1 s and promotes the replica', function (Stack $st): FaultWindow {
            /** @var SentinelTopology $t */
            $t = $st->topology;
            $primary = $t->primary();
            $t0 = microtime(true);
            $primary->kill();
            $dead = microtime(true);
            $w = new FaultWindow($t0, $dead, [[$t0, $dead]]);
            $w->settled = $t->waitSettled($primary->port());
            // Back for the next cycle: Sentinel turns the returning old primary into a replica.
            restartAsReplica($primary, fn (): bool => $t->agreedPrimary() !== $primary->port()
                && str_contains((string) $primary->command('INFO', 'replication'), "master_link_status:up"));
            return $w;
        }, ini: $perLogin, topology: $sentinel, recoveryBound: $failoverBound, logins: true),
        new Scenario('Sentinel: one Sentinel down', 'SIGKILL the Sentinel named first in qrpush.url for ' . $hold . ' s while workers recycle (pm.max_requests=10), so new processes discover the primary without it', function (Stack $st) use ($hold): FaultWindow {
            $first = $st->topology->sentinel->sentinels[0];
            $t0 = microtime(true);
            $first->kill();
            sleepUntil($t0 + $hold);
            $first->restart();
            return new FaultWindow($t0, microtime(true));
        }, ini: $perLogin, topology: $sentinel, maxRequests: 10, noErrors: true, logins: true),
        new Scenario('Cluster: kill -9 slot owner', 'SIGKILL the primary owning the channel\'s slot: its replica is promoted after the node timeout (2 s)', function (Stack $st) use ($hold): FaultWindow {
            /** @var ClusterTopology $t */
            $t = $st->topology;
            $slot = $t->slot($st->channel);
            $owner = $t->owner($st->channel);
            $t0 = microtime(true);
            $owner->kill();
            $dead = microtime(true);
            $w = new FaultWindow($t0, $dead, [[$t0, $dead]]);
            $w->settled = $t->waitSettled($slot, $owner->port());
            restartAsReplica($owner, fn (): bool => ($owner->command('ROLE')[0] ?? '') === 'slave'
                && str_contains((string) $owner->command('INFO', 'replication'), 'master_link_status:up'));
            $t->waitSettled($slot);
            return $w;
        }, ini: $sharded, topology: $cluster, recoveryBound: $failoverBound, logins: true),
        new Scenario('Cluster: slot migration', 'the channel\'s slot moved to another primary by hand (SETSLOT IMPORTING/MIGRATING, MIGRATE, held ' . $hold . ' s, SETSLOT NODE on every primary) while publishing', function (Stack $st) use ($hold): FaultWindow {
            /** @var ClusterTopology $t */
            $t = $st->topology;
            $slot = $t->slot($st->channel);
            $old = $t->owner($st->channel)->port();
            [$t0, $t1] = migrateSlot($t, $slot, $hold);
            $w = new FaultWindow($t0, $t1);
            $w->settled = $t->waitSettled($slot, $old);
            return $w;
        }, ini: $sharded, topology: $cluster, recoveryBound: $failoverBound, logins: true),
    ];
}
