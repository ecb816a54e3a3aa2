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
    /** @param list<array{0: float, 1: float}> $cuts */
    public function __construct(public float $start, public float $end, public array $cuts = [])
    {
    }
}

/** Everything a fault needs to act on. */
final class Stack
{
    public ?Proxy $proxy = null;
    public int $loadgenPid = 0;

    public function __construct(public RedisServer $redis, public Settings $settings)
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
        new Scenario('fpm recycling + fork', 'pm.max_requests=10 and every request forks a child that publishes too', null,
            maxRequests: 10, fork: true, noErrors: true),
    ];
}
