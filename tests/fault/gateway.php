<?php

declare(strict_types=1);

/*
 * The gateway under a topology fault (the topology table's "gateway" column; see suite.php
 * --topology): one qrpush-gateway pointed at the scenario's topology the way the extension is
 * (per-login channels; on Cluster `--cluster-publish sharded`), and browsers (browsers.php) waiting
 * on logins started through php-fpm, their sockets open before the fault. After each fault, every
 * browser whose login's channel now lives on another node (the Sentinel primary changed, the
 * channel's slot owner died or its slot moved) must get the login's current status — the gateway's
 * resend after its resubscribe — and then every browser the event of a step taken through php-fpm
 * after the fault (scan after the first fault, approve after the second). Target: each within
 * BOUND seconds (the status: of the fault's start; the event: of the request that published it).
 */

use QrPush\Tests\Fpm;
use QrPush\Tests\Processes;

final class GatewayWatch
{
    /** seconds: a resent status after the fault's start, an event after its request started */
    public const BOUND = 15.0;
    /** browsers on Sentinel (one primary); on Cluster one per primary */
    private const SENTINEL_BROWSERS = 3;
    /** the step taken after each fault (then nothing more: the next would finish the login) */
    private const STEPS = [['scan', 'scanned'], ['approve', 'approved']];
    /** the state a status resent after fault N must say */
    private const STATES = ['pending', 'scanned', 'approved'];

    private int $pid;
    private int $port;
    private ?int $browsersPid = null;
    private string $log;
    /** @var list<array{id: string, qr: string, token: string, channel: string}> */
    public array $logins = [];
    /** @var list<array<string, mixed>> one entry per fault */
    public array $cycles = [];
    /** @var list<string> targets missed, named */
    public array $missed = [];

    public function __construct(string $binary, private Topology $topology, string $secret, private string $dir, private Fpm $fpm)
    {
        $secretFile = "{$dir}/gateway.secret";
        file_put_contents($secretFile, $secret);
        chmod($secretFile, 0600);
        $this->port = Processes::freePort();
        $args = [$binary, '--listen', "127.0.0.1:{$this->port}", '--redis-url', $topology->url(),
            '--channel-mode', 'per_login', '--secret-file', $secretFile];
        if ($topology instanceof ClusterTopology) {
            $args = [...$args, '--cluster-publish', 'sharded'];
        }
        [, $this->pid] = Processes::start($args, "{$dir}/gateway.log", 'gateway');
        try {
            $this->connect();
        } catch (Throwable $e) {
            $this->stop();
            throw $e;
        }
    }

    /** Waits for the gateway, starts the logins and their browsers, and waits for each one's first status. */
    private function connect(): void
    {
        waitFor(fn (): bool => str_contains((string) @file_get_contents("http://127.0.0.1:{$this->port}/healthz"), '"redis":"up"'), 15.0, 'the gateway to be up');
        $this->startLogins();
        $this->log = "{$this->dir}/browsers.log";
        touch($this->log);
        [, $this->browsersPid] = Processes::start(
            [PHP_CLI, '-n', __DIR__ . '/browsers.php', (string) $this->port, $this->log, ...array_column($this->logins, 'token')],
            "{$this->dir}/browsers.err",
            'browsers',
        );
        // Connected before the fault: each socket got its login's first status (the gateway subscribed it).
        waitFor(fn (): bool => count($this->firstFrames('status', 0.0, 'pending')) === count($this->logins), 10.0, 'every browser\'s first status');
    }

    /** Logins through php-fpm: three on Sentinel, on Cluster until one's channel is on each primary. */
    private function startLogins(): void
    {
        $nodes = [];
        $want = $this->topology instanceof ClusterTopology ? count($this->topology->primaries()) : self::SENTINEL_BROWSERS;
        for ($tries = 0; count($this->logins) < $want; $tries++) {
            if ($tries >= 60) {
                throw new RuntimeException('no login on every primary after 60 starts: ' . json_encode($nodes));
            }
            $login = $this->fpm->requestJson(__DIR__ . '/www/gateway-login.php', ['op' => 'start']);
            if (!$login['ok']) {
                throw new RuntimeException("Login::start() through php-fpm failed: {$login['e']}: {$login['m']}");
            }
            $node = $this->topology->nodeOf($login['channel']);
            if ($this->topology instanceof ClusterTopology && isset($nodes[$node])) {
                continue;
            }
            $nodes[$node] = true;
            $this->logins[] = $login;
        }
    }

    /**
     * The load's channel: on Cluster in the first login's slot (a hash tag), so the fault aimed at
     * the load's channel (its owner killed, its slot moved) moves a gateway subscription too.
     */
    public function loadChannel(string $channel): string
    {
        return $this->topology instanceof ClusterTopology ? "{$channel}:{{$this->logins[0]['channel']}}" : $channel;
    }

    /**
     * Just before a fault: waits until every replica has what its primary has (the logins, and the
     * step of the previous fault: a kill -9 of a primary loses what was not replicated yet, which
     * is Redis's promise, not the gateway's), then says where each browser's login channel lives
     * (a port), by browser.
     *
     * @return list<int|null>
     */
    public function beforeFault(): array
    {
        waitReplicated($this->topology, 10.0);
        return $this->nodes();
    }

    /** Where each browser's login channel lives now (a port), by browser. @return list<int|null> */
    private function nodes(): array
    {
        return array_map(fn (array $l): ?int => $this->topology->nodeOf($l['channel']), $this->logins);
    }

    /**
     * Frames of `$type` received after `$after`, the first per browser; with `$state`, statuses
     * saying another state are misses (kept under 'wrong').
     *
     * @return array<int, array{0: float, 1: array<string, mixed>}> browser => [time, message]
     */
    private function firstFrames(string $type, float $after, ?string $state = null): array
    {
        $first = [];
        foreach (file($this->log, FILE_IGNORE_NEW_LINES) ?: [] as $line) {
            $parts = explode(' ', $line, 4);
            if ($parts[0] !== 'F' || (float) $parts[1] <= $after) {
                continue;
            }
            $i = (int) $parts[2];
            $m = json_decode($parts[3], true);
            if (!is_array($m) || ($m['type'] ?? '') !== $type || ($m['loginId'] ?? '') !== $this->logins[$i]['id'] || isset($first[$i])) {
                continue;
            }
            if ($state !== null && ($m['data']['state'] ?? '') !== $state) {
                continue;
            }
            $first[$i] = [(float) $parts[1], $m];
        }
        return $first;
    }

    /** Sockets that ended: browser => why. @return array<int, string> */
    private function closed(): array
    {
        $closed = [];
        foreach (file($this->log, FILE_IGNORE_NEW_LINES) ?: [] as $line) {
            $parts = explode(' ', $line, 4);
            if ($parts[0] === 'X') {
                $closed[(int) $parts[2]] = $parts[3] ?? '';
            }
        }
        return $closed;
    }

    private function name(int $i): string
    {
        return "browser {$i} (login {$this->logins[$i]['id']}, channel {$this->logins[$i]['channel']})";
    }

    /**
     * After fault number `$n` (`$before`: nodes() just before it): the resent statuses, then the
     * next step's event.
     *
     * @param list<int|null> $before
     */
    public function afterFault(FaultWindow $w, array $before, int $n): void
    {
        $after = $this->nodes();
        $moved = array_keys(array_filter($after, fn (?int $node, int $i): bool => $node !== $before[$i], ARRAY_FILTER_USE_BOTH));
        $state = self::STATES[min($n, count(self::STATES) - 1)];
        $resent = fn (): array => array_intersect_key($this->firstFrames('status', $w->start, $state), array_flip($moved));
        Processes::waitFor(fn (): bool => count($resent()) === count($moved), max(0.0, $w->start + self::BOUND - microtime(true)), 0.02);
        $statuses = $resent();
        $cycle = ['browsers' => count($this->logins), 'moved' => count($moved), 'resent' => count($statuses),
            'status_after' => $statuses === [] ? null : max(array_map(fn (array $f): float => $f[0] - $w->start, $statuses)),
            'events' => 0, 'expected' => 0, 'event_after' => null];
        foreach (array_diff($moved, array_keys($statuses)) as $i) {
            $this->missed[] = sprintf('gateway: %s got no status saying %s within %.0f s of the fault (its channel moved from port %s to %s)', $this->name($i), $state, self::BOUND, $before[$i] ?? '-', $after[$i] ?? '-');
        }
        foreach ($this->closed() as $i => $why) {
            $this->missed[] = "gateway: {$this->name($i)}'s socket ended ({$why})";
        }
        if (isset(self::STEPS[$n])) {
            [$op, $type] = self::STEPS[$n];
            $cycle['expected'] = count($this->logins);
            $requests = [];
            foreach ($this->logins as $i => $l) {
                $requests[] = [__DIR__ . '/www/gateway-login.php', ['op' => $op, 'qr' => $l['qr'], 'id' => $l['id'], 'user' => "gateway-user-{$i}"]];
            }
            $sent = microtime(true);
            try {
                $answers = array_map([Fpm::class, 'decode'], $this->fpm->requests($requests));
            } catch (RuntimeException $e) {
                $answers = [];
                $this->missed[] = "gateway: the {$op} requests after the fault failed: " . $e->getMessage();
            }
            $done = [];
            foreach ($answers as $i => $a) {
                if ($a['ok']) {
                    $done[] = $i;
                } else {
                    $this->missed[] = "gateway: {$op} of {$this->name($i)} after the fault threw {$a['e']}: {$a['m']}";
                }
            }
            $received = fn (): array => array_intersect_key($this->firstFrames($type, $sent), array_flip($done));
            Processes::waitFor(fn (): bool => count($received()) === count($done), self::BOUND, 0.005);
            $events = $received();
            $cycle['events'] = count($events);
            $cycle['event_after'] = $events === [] ? null : max(array_map(fn (array $f): float => $f[0] - $sent, $events));
            foreach (array_diff($done, array_keys($events)) as $i) {
                $this->missed[] = sprintf('gateway: %s did not get the %s event within %.0f s of the %s request', $this->name($i), $type, self::BOUND, $op);
            }
        }
        $this->cycles[] = $cycle;
    }

    /** The table's figures over every fault. */
    public function summary(): array
    {
        $sum = fn (string $k): int => array_sum(array_column($this->cycles, $k));
        $max = function (string $k): ?float {
            $v = array_filter(array_column($this->cycles, $k), fn ($x): bool => $x !== null);
            return $v === [] ? null : max($v);
        };
        return ['browsers' => count($this->logins), 'moved' => $sum('moved'), 'resent' => $sum('resent'),
            'status_after' => $max('status_after'), 'events' => $sum('events'), 'expected' => $sum('expected'),
            'event_after' => $max('event_after')];
    }

    /** The names of the gateway's Redis connections: its Pub/Sub links, and the core's pooled client (status reads). */
    public function connectionNames(): array
    {
        return ['qrpush-gateway', "qrpush-{$this->pid}"];
    }

    public function stop(): void
    {
        if ($this->browsersPid !== null) {
            Processes::stop($this->browsersPid);
        }
        Processes::stop($this->pid);
    }
}
