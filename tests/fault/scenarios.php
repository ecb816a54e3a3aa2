<?php

declare(strict_types=1);

/*
 * The fault suite's scenarios (see suite.php): the run's settings, what a fault acts on, and one
 * Scenario per fault, each a name, a one-line description, how the stack is set up, and the
 * injection itself, which returns when the fault was on (its FaultWindow).
 */

use QrPush\Tests\Processes;
use QrPush\Tests\RedisServer;

/** The run's settings: the short run fits `make test`, the soak repeats every fault longer. */
final class Settings
{
    public function __construct(
        public readonly int $workers,
        public readonly int $concurrency,
        /** requests per second over all connections; 0: as fast as the workers answer */
        public readonly float $rate,
        public readonly float $connectTimeout,
        public readonly float $timeout,
        /** seconds of load before the first fault, after each fault, and faults' own length */
        public readonly float $before,
        public readonly float $after,
        public readonly float $hold,
        public readonly int $cycles,
        /** timer allowance on top of the configured bound (a call's run-queue wait is taken out) */
        public readonly float $slack,
    ) {
    }

    public function bound(): float
    {
        return $this->connectTimeout + $this->timeout;
    }
}

/** What a scenario's fault did, for the analysis: when it ran and when it cut the subscriber. */
final class FaultWindow
{
    /** when a topology had settled again after the fault (all its nodes agreeing), if it was waited for */
    public ?float $settled = null;

    /** @param list<array{0: float, 1: float}> $cuts */
    public function __construct(public float $start, public float $end, public array $cuts = [])
    {
    }
}

/** Everything a fault needs to act on, and what a scenario's `prepare` may change. */
final class Stack
{
    public ?Proxy $proxy = null;
    public int $loadgenPid = 0;
    /** the Redis the subscriber listens on (default: `redis`) */
    public ?RedisServer $subscriberRedis = null;
    /** php-fpm's qrpush.url (default: Redis's TCP port, the proxy's, or the Unix socket) */
    public ?string $url = null;
    /** the php-fpm to run (default: the flavour's), e.g. a wrapper that starts it in a namespace */
    public ?string $fpmBinary = null;
    /** @var list<RedisServer> more servers, killed with the stack */
    public array $servers = [];
    /** @var list<int> more processes (pids), stopped with the stack */
    public array $pids = [];
    /** the Sentinel or Cluster a topology scenario publishes through (topology.php) */
    public ?Topology $topology = null;
    /** the channel the load publishes on */
    public string $channel = '';

    /** @param RedisServer|null $redis the one Redis (null in a topology scenario) */
    public function __construct(public ?RedisServer $redis, public Settings $settings, public string $dir)
    {
    }
}

/**
 * One scenario: a name, a one-line description, how the stack is set up, and the fault.
 */
final class Scenario
{
    /**
     * @param \Closure(Stack): FaultWindow|null $inject
     * @param array<string, string> $ini more pool directives
     * @param list<string> $redisArgs more redis-server arguments
     * @param \Closure(Stack): void|null $prepare sets the stack up further before php-fpm starts
     */
    public function __construct(
        public readonly string $name,
        public readonly string $what,
        public readonly ?\Closure $inject,
        public readonly bool $viaProxy = false,
        public readonly array $ini = [],
        public readonly ?int $maxRequests = null,
        public readonly bool $fork = false,
        /** the extension promises that nothing fails here */
        public readonly bool $noErrors = false,
        public readonly array $redisArgs = [],
        /** php-fpm publishes over Redis's Unix socket */
        public readonly bool $unixSocket = false,
        public readonly ?\Closure $prepare = null,
        /**
         * The subscriber listens on a replica, which gets every PUBLISH by replication: a confirmed
         * publish must reach it whatever its receiver count (0, the primary's own subscribers).
         */
        public readonly bool $heardThroughReplica = false,
        /** @var \Closure(): Topology|null starts the Sentinel or Cluster to publish through instead of one Redis */
        public readonly ?\Closure $topology = null,
        /** recovery target: publishing works again within this many seconds after the fault */
        public readonly float $recoveryBound = 1.0,
        /** whole QR login flows run through php-fpm beside the publishing load (www/login.php) */
        public readonly bool $logins = false,
    ) {
    }
}

/** @return list<Scenario> */
function scenarios(Settings $s): array
{
    $hold = $s->hold;
    $ms = static fn (float $seconds): int => (int) round($seconds * 1000);
    return [
        new Scenario('baseline', 'no fault: the reference figures', null, noErrors: true),
        new Scenario('kill -9 + restart', 'SIGKILL redis-server mid-load, start it again on the same port', function (Stack $st): FaultWindow {
            $t = microtime(true);
            $st->redis->kill();
            $dead = microtime(true);
            $st->redis->restart(); // waits until it answers PING
            return new FaultWindow($t, microtime(true), [[$t, $dead]]);
        }),
        new Scenario('stopped ' . $hold . ' s', 'SIGTERM redis-server, leave it down, start it again', function (Stack $st) use ($hold): FaultWindow {
            $t = microtime(true);
            $st->redis->stop(); // waits until it exited
            $dead = microtime(true);
            sleepUntil($t + $hold);
            $st->redis->restart();
            return new FaultWindow($t, microtime(true), [[$t, $dead]]);
        }),
        new Scenario('SIGSTOP ' . $hold . ' s', 'freeze redis-server (the kernel still accepts connections), then SIGCONT', function (Stack $st) use ($hold): FaultWindow {
            $t = microtime(true);
            $st->redis->freeze();
            sleepUntil($t + $hold);
            $st->redis->thaw();
            return new FaultWindow($t, microtime(true));
        }),
        new Scenario('CLIENT PAUSE 2000 ALL', 'every client command held for 2 s', function (Stack $st): FaultWindow {
            $t = microtime(true);
            $st->redis->command('CLIENT', 'PAUSE', 2000, 'ALL');
            sleepUntil($t + 2.0);
            return new FaultWindow($t, $t + 2.0);
        }),
        new Scenario('CLIENT KILL TYPE normal', 'every publisher connection killed server-side, 5 times, 200 ms apart', function (Stack $st): FaultWindow {
            $t = microtime(true);
            for ($i = 0; $i < 5; $i++) {
                sleepUntil($t + 0.2 * $i);
                $st->redis->command('CLIENT', 'KILL', 'TYPE', 'normal'); // SKIPME yes; subscribers are type pubsub
            }
            return new FaultWindow($t, microtime(true));
        }),
        new Scenario('idle timeout 1 s', 'CONFIG SET timeout 1; load paused until Redis closed every idle pooled connection; load resumed', function (Stack $st): FaultWindow {
            $t = microtime(true);
            $st->redis->command('CONFIG', 'SET', 'timeout', '1');
            Processes::signal($st->loadgenPid, SIGUSR1);
            usleep(200000);
            waitFor(fn (): bool => $st->redis->qrpushClients() === [], 5.0, 'Redis to close the idle connections');
            $closed = microtime(true);
            Processes::signal($st->loadgenPid, SIGUSR2);
            return new FaultWindow($t, $closed);
        }, noErrors: true),
        new Scenario('maxclients reached', 'idle extra clients + CONFIG SET maxclients to the count left after killing the publishers\' connections', function (Stack $st) use ($hold): FaultWindow {
            $fillers = [];
            for ($i = 0; $i < 3; $i++) {
                $fillers[] = $st->redis->connect();
            }
            $admin = $st->redis->connect();
            $clients = $st->redis->clientList();
            $publishers = array_filter($clients, fn (array $c): bool => str_starts_with($c['name'] ?? '', 'qrpush-'));
            // Left after the kills: admin, fillers, subscriber (the CLIENT LIST connection is gone).
            $full = count($clients) - 1 - count($publishers);
            $t = microtime(true);
            $admin->send('MULTI');
            $admin->read(5.0, true);
            $admin->send('CONFIG', 'SET', 'maxclients', (string) max(1, $full));
            $admin->read(5.0, true);
            foreach ($publishers as $c) {
                $admin->send('CLIENT', 'KILL', 'ID', $c['id']);
                $admin->read(5.0, true);
            }
            $admin->send('EXEC');
            $reply = $admin->read(5.0, true);
            if (!is_array($reply) || ($reply[0] ?? null) !== 'OK') {
                throw new RuntimeException('MULTI/CONFIG SET maxclients failed: ' . json_encode($reply));
            }
            sleepUntil($t + $hold);
            $reply = $admin->call('CONFIG', 'SET', 'maxclients', '10000');
            if ($reply !== 'OK') {
                throw new RuntimeException('CONFIG SET maxclients 10000 failed: ' . json_encode($reply));
            }
            $end = microtime(true);
            foreach ($fillers as $f) {
                $f->close();
            }
            return new FaultWindow($t, $end);
        }),
        new Scenario('proxy: blackhole ' . $hold . ' s', 'the TCP path swallows everything: open connections go silent, new ones are accepted and never forwarded', function (Stack $st) use ($hold): FaultWindow {
            $t = microtime(true);
            $st->proxy->set('blackhole');
            sleepUntil($t + $hold);
            $st->proxy->set('pass');
            return new FaultWindow($t, microtime(true));
        }, viaProxy: true),
        new Scenario('proxy: blackhole, breaker off', 'the same with qrpush.breaker_cooldown=0: every call pays connect_timeout', function (Stack $st) use ($hold): FaultWindow {
            $t = microtime(true);
            $st->proxy->set('blackhole');
            sleepUntil($t + $hold);
            $st->proxy->set('pass');
            return new FaultWindow($t, microtime(true));
        }, viaProxy: true, ini: ['qrpush.breaker_cooldown' => '0']),
        new Scenario('proxy: delay ' . $ms($s->timeout / 4) . ' ms', 'every chunk forwarded late, both ways: round trips well within qrpush.timeout', function (Stack $st) use ($hold, $s, $ms): FaultWindow {
            $t = microtime(true);
            $st->proxy->set('delay ' . $ms($s->timeout / 4));
            sleepUntil($t + $hold);
            $st->proxy->set('pass');
            return new FaultWindow($t, microtime(true));
        }, viaProxy: true, noErrors: true),
        new Scenario('proxy: delay ' . $ms($s->timeout) . ' ms', 'round trips twice qrpush.timeout: every call times out, PUBLISHes still arrive late', function (Stack $st) use ($hold, $s, $ms): FaultWindow {
            $t = microtime(true);
            $st->proxy->set('delay ' . $ms($s->timeout));
            sleepUntil($t + $hold);
            $st->proxy->set('pass');
            return new FaultWindow($t, microtime(true));
        }, viaProxy: true),
        new Scenario('unix socket: SIGSTOP, full backlog', 'qrpush.url on Redis\'s Unix socket with a listen backlog of 2, Redis frozen ' . $hold . ' s: new connections fill the backlog, then connect() itself would wait', function (Stack $st) use ($hold): FaultWindow {
            $t = microtime(true);
            $st->redis->freeze();
            sleepUntil($t + $hold);
            $st->redis->thaw();
            return new FaultWindow($t, microtime(true));
        }, redisArgs: ['--tcp-backlog', '2'], unixSocket: true),
        new Scenario('REPLICAOF: primary demoted', 'the subscriber on a replica; the primary demoted (REPLICAOF), the replica promoted, the address (the proxy) moved to it; pooled connections still reach the demoted server', function (Stack $st): FaultWindow {
            $new = $st->subscriberRedis;
            $t = microtime(true);
            $st->redis->command('REPLICAOF', '127.0.0.1', (string) $new->port());
            $demoted = microtime(true);
            $new->command('REPLICAOF', 'NO', 'ONE');
            $st->proxy->set("upstream {$new->port()}");
            // A PUBLISH that ran on the old primary just before its demotion may not have been
            // replicated yet: asynchronous replication, not the client, loses it.
            return new FaultWindow($t, microtime(true), [[$t, $demoted]]);
        }, viaProxy: true, prepare: function (Stack $st): void {
            $replica = new RedisServer();
            $st->servers[] = $replica;
            $st->redis->command('CONFIG', 'SET', 'repl-diskless-sync-delay', '0');
            $replica->command('REPLICAOF', '127.0.0.1', (string) $st->redis->port());
            waitFor(fn (): bool => str_contains((string) $replica->command('INFO', 'replication'), 'master_link_status:up'), 10.0, 'the replication link');
            $st->subscriberRedis = $replica;
        }, heardThroughReplica: true),
        new Scenario('proxy: NAT forgets idle flows', 'load paused, the path forgets every open connection (no FIN, no RST: they go silent), load resumed after qrpush.idle_check_after; new connections pass', function (Stack $st): FaultWindow {
            $t = microtime(true);
            Processes::signal($st->loadgenPid, SIGUSR1);
            usleep(200000); // the requests in flight finish
            $st->proxy->set('forget');
            usleep(700000); // idle longer than idle_check_after
            Processes::signal($st->loadgenPid, SIGUSR2);
            return new FaultWindow($t, microtime(true));
        }, viaProxy: true, ini: ['qrpush.idle_check_after' => '0.5'], noErrors: true),
        new Scenario('DNS: name server silent', 'qrpush.url names a host only a stub name server knows; it answers no query for ' . $hold . ' s from the start (workers have nothing cached), then answers', function (Stack $st) use ($hold): FaultWindow {
            $t = microtime(true);
            sleepUntil($t + $hold);
            Processes::signal($st->pids[0], SIGUSR2);
            return new FaultWindow($t, microtime(true));
        }, prepare: function (Stack $st): void {
            silentNameServer($st);
        }),
        new Scenario('fpm recycling + fork', 'pm.max_requests=10 and every request forks a child that publishes too', null,
            maxRequests: 10, fork: true, noErrors: true),
    ];
}

/** A loopback address of the stub name server: not 127.0.0.1, so that nothing else listens there. */
const NAME_SERVER = '127.0.0.154';
/** The host name in qrpush.url: known to the stub name server only. */
const REDIS_NAME = 'redis.qrpush-fault.test';

/**
 * The DNS scenario's stack: a stub name server (dns.php) on NAME_SERVER:53, silent until SIGUSR2;
 * qrpush.url naming REDIS_NAME; and php-fpm in a mount namespace whose /etc/resolv.conf names the
 * stub only (bind-mounted there, the machine's own resolv.conf untouched).
 */
function silentNameServer(Stack $st): void
{
    $ready = "{$st->dir}/dns.ready";
    [, $pid] = Processes::start([PHP_CLI, '-n', __DIR__ . '/dns.php', NAME_SERVER, REDIS_NAME, 'silent', $ready], "{$st->dir}/dns.log", 'stub name server');
    $st->pids[] = $pid;
    waitFor(fn (): bool => is_file($ready) || !Processes::isRunning($pid), 5.0, 'the stub name server');
    if (!Processes::isRunning($pid)) {
        throw new RuntimeException('the stub name server did not start: ' . @file_get_contents("{$st->dir}/dns.log"));
    }
    $resolv = "{$st->dir}/resolv.conf";
    file_put_contents($resolv, 'nameserver ' . NAME_SERVER . "\noptions timeout:1 attempts:1\n");
    // In the chroot "/" is no mount point, so a namespace cannot make it private; there every mount
    // is private already (scripts/lib.sh's qr_run), and the copies stay so. Elsewhere: private.
    $propagation = getenv('QRPUSH_IN_CHROOT') === '1' ? 'unchanged' : 'private';
    $wrapper = "{$st->dir}/php-fpm-in-namespace";
    file_put_contents($wrapper, "#!/bin/sh\n"
        . "exec unshare --mount --propagation {$propagation} -- sh -c 'mount --bind \"\$0\" /etc/resolv.conf && exec \"\$@\"' "
        . escapeshellarg($resolv) . ' ' . escapeshellarg($st->fpmBinary ?? '') . " \"\$@\"\n");
    chmod($wrapper, 0755);
    $st->fpmBinary = $wrapper;
    $st->url = 'redis://' . REDIS_NAME . ':' . $st->redis->port();
}
