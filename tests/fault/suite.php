<?php

declare(strict_types=1);

/*
 * The fault-injection suite for one flavour (see tests/fault/run, which runs it for NTS and ZTS):
 * publishers under load — php-fpm workers publishing through the static facade, driven by a FastCGI
 * load generator, one unique id per message — and a subscriber counting every id, while one fault
 * per scenario is injected into Redis or into the TCP path. One table row per scenario; exit status
 * 1 when a target is missed.
 *
 *   php suite.php --flavour nts|zts --ext <libqrpush.so> --fpm <php-fpm> [--soak] [--only a,b]
 *
 * Every process it starts (redis-server, php-fpm, proxy, subscriber, load generator) is a child
 * started by proc_open and stopped by its own handle, never by name; every wait is bounded.
 */

require __DIR__ . '/../php/Support/Processes.php';
require __DIR__ . '/../php/Support/Resp.php';
require __DIR__ . '/../php/Support/RedisServer.php';

use QrPush\Tests\Processes;
use QrPush\Tests\RedisServer;

const PHP_CLI = PHP_BINARY;

$opts = getopt('', ['flavour:', 'ext:', 'fpm:', 'soak', 'only:', 'json:', 'rules']);
$flavour = $opts['flavour'] ?? 'nts';
$ext = $opts['ext'] ?? '';
$fpmBinary = $opts['fpm'] ?? '';
$soak = isset($opts['soak']);
$only = isset($opts['only']) ? explode(',', $opts['only']) : null;
if (!is_file($ext) || !is_executable($fpmBinary)) {
    fwrite(STDERR, "usage: php suite.php --flavour nts|zts --ext <libqrpush.so> --fpm <php-fpm> [--soak] [--only a,b] [--json out]\n");
    exit(2);
}

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

// connect_timeout and timeout are 0.25 s rather than the 1 s defaults so that every fault outlasts
// several bounds within a short run; breaker_cooldown keeps its default (0.5 s). A path that never
// delivers what it accepted (the blackhole) can delay recovery by up to connect_timeout (a trial in
// flight) + breaker_cooldown: the recovery target < 1 s needs that sum below 1 s.
$settings = $soak
    ? new Settings(workers: 8, concurrency: 8, rate: 0, connectTimeout: 0.25, timeout: 0.25,
        before: 2.0, after: 3.0, hold: 3.0, cycles: 4, slack: 0.05)
    : new Settings(workers: 4, concurrency: 4, rate: 0, connectTimeout: 0.25, timeout: 0.25,
        before: 0.4, after: 0.8, hold: 1.0, cycles: 1, slack: 0.05);

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
    public ?int $fpmPid = null;

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

// ---------------------------------------------------------------------------------------------
// Processes of one scenario.

function waitFor(callable $condition, float $seconds, string $what): mixed
{
    $value = Processes::waitFor($condition, $seconds, 0.005);
    if (!$value) {
        throw new RuntimeException("timed out after {$seconds} s waiting for {$what}");
    }
    return $value;
}

function sleepUntil(float $t): void
{
    $left = $t - microtime(true);
    if ($left > 0) {
        usleep((int) ($left * 1e6));
    }
}

/** @return array{0: int, 1: int, 2: string} pid, port, dir */
function startFpm(string $binary, string $ext, string $flavour, Settings $s, Scenario $scenario, string $url, string $dir): array
{
    $asRoot = function_exists('posix_getuid') ? posix_getuid() === 0 : trim((string) shell_exec('id -u')) === '0';
    $ini = [
        'qrpush.url' => $url,
        'qrpush.connect_timeout' => (string) $s->connectTimeout,
        'qrpush.timeout' => (string) $s->timeout,
        // qrpush.breaker_cooldown: the default (0.5 s) unless a scenario sets it
        'display_errors' => 'stderr',
        'log_errors' => '0',
        'max_execution_time' => '30',
    ] + $scenario->ini;
    for ($attempt = 1; $attempt <= 3; $attempt++) {
        $port = Processes::freePort();
        $lines = [
            '[global]',
            "error_log = {$dir}/fpm.log",
            'log_level = notice',
            'daemonize = no',
            "pid = {$dir}/php-fpm.pid",
            '',
            '[fault]',
            "listen = 127.0.0.1:{$port}",
            'listen.backlog = 1024',
            'listen.allowed_clients = 127.0.0.1',
            'pm = static',
            "pm.max_children = {$s->workers}",
            'catch_workers_output = yes',
            'clear_env = yes',
        ];
        if ($scenario->maxRequests !== null) {
            $lines[] = "pm.max_requests = {$scenario->maxRequests}";
        }
        if ($asRoot) {
            array_push($lines, 'user = root', 'group = root');
        }
        foreach ($ini as $name => $value) {
            $lines[] = "php_admin_value[{$name}] = \"{$value}\"";
        }
        file_put_contents("{$dir}/php-fpm.conf", implode("\n", $lines) . "\n");
        @unlink("{$dir}/fpm.log");
        $command = [$binary, '-n', '-F', '-y', "{$dir}/php-fpm.conf", '-d', "extension={$ext}"];
        if ($flavour === 'nts') {
            // Debian's php-fpm has no pcntl: the fork scenario forks through FFI.
            array_push($command, '-d', 'extension=ffi', '-d', 'ffi.enable=1');
        }
        if ($asRoot) {
            $command[] = '-R';
        }
        [, $pid] = Processes::start($command, "{$dir}/fpm.out", "php-fpm on port {$port}");
        $ready = Processes::waitFor(
            fn (): bool => !Processes::isRunning($pid)
                || str_contains((string) @file_get_contents("{$dir}/fpm.log"), 'ready to handle connections'),
            10.0,
        );
        if ($ready && Processes::isRunning($pid)) {
            return [$pid, $port, $dir];
        }
        Processes::stop($pid);
    }
    throw new RuntimeException("php-fpm did not start:\n" . @file_get_contents("{$dir}/fpm.log") . @file_get_contents("{$dir}/fpm.out"));
}

/** Pids of the php-fpm master's children (its workers). @return list<int> */
function fpmWorkers(int $master): array
{
    $children = @file_get_contents("/proc/{$master}/task/{$master}/children");
    if ($children !== false) {
        return array_map('intval', preg_split('/\s+/', trim($children), -1, PREG_SPLIT_NO_EMPTY));
    }
    $pids = [];
    foreach (glob('/proc/[0-9]*/stat') ?: [] as $stat) {
        $fields = explode(' ', (string) @file_get_contents($stat));
        if (($fields[3] ?? '') === (string) $master) {
            $pids[] = (int) $fields[0];
        }
    }
    return $pids;
}

final class Proxy
{
    public int $pid;
    public int $port;
    /** @var resource */
    private $control;

    public function __construct(int $upstreamPort, string $dir)
    {
        $ready = "{$dir}/proxy.ports";
        [, $this->pid] = Processes::start([PHP_CLI, '-n', __DIR__ . '/proxy.php', (string) $upstreamPort, $ready], "{$dir}/proxy.log", 'fault proxy');
        $ports = waitFor(fn () => is_file($ready) ? trim((string) file_get_contents($ready)) : false, 5.0, 'the proxy');
        [$port, $controlPort] = array_map('intval', explode(' ', $ports));
        $this->port = $port;
        $control = @stream_socket_client("tcp://127.0.0.1:{$controlPort}", $errno, $errstr, 2.0);
        if ($control === false) {
            throw new RuntimeException("cannot reach the proxy's control port: {$errstr}");
        }
        stream_set_timeout($control, 5);
        $this->control = $control;
    }

    /** Switches the path; returns once the proxy applied it. */
    public function set(string $mode): string
    {
        fwrite($this->control, "{$mode}\n");
        $line = (string) fgets($this->control);
        if (!str_starts_with($line, 'ok')) {
            throw new RuntimeException("the proxy did not take '{$mode}': {$line}");
        }
        return trim($line);
    }

    public function stop(): void
    {
        Processes::stop($this->pid);
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

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

// ---------------------------------------------------------------------------------------------
// One scenario, end to end.

final class Outcome
{
    public array $row = [];
    /** @var list<string> */
    public array $missed = [];
    public array $samples = [];
}

function runScenario(Scenario $sc, Settings $s, string $flavour, string $ext, string $fpmBinary): Outcome
{
    $dir = Processes::tempDir('fault');
    $redis = new RedisServer();
    $stack = new Stack($redis, $s);
    $proxy = null;
    $fpmPid = $subPid = $loadPid = null;
    $channel = 'fault:' . bin2hex(random_bytes(4));
    try {
        if ($sc->viaProxy) {
            $proxy = new Proxy($redis->port(), $dir);
            $stack->proxy = $proxy;
        }
        $targetPort = $proxy?->port ?? $redis->port();
        [$fpmPid, $fpmPort] = startFpm($fpmBinary, $ext, $flavour, $s, $sc, "redis://127.0.0.1:{$targetPort}", $dir);
        $stack->fpmPid = $fpmPid;

        $subLog = "{$dir}/subscriber.log";
        touch($subLog);
        [, $subPid] = Processes::start([PHP_CLI, '-n', __DIR__ . '/subscriber.php', (string) $redis->port(), $channel, $subLog], "{$dir}/subscriber.err", 'subscriber');
        waitFor(fn (): bool => str_contains((string) file_get_contents($subLog), "S "), 5.0, 'the subscriber');

        $query = 'ch=' . rawurlencode($channel) . '&id={id}' . ($sc->fork ? "&fork=1&redis_port={$targetPort}" : '');
        $results = "{$dir}/results.log";
        [, $loadPid] = Processes::start(
            [PHP_CLI, '-n', __DIR__ . '/loadgen.php', (string) $fpmPort, __DIR__ . '/www/publish.php', $query, (string) $s->concurrency, (string) $s->rate, $results],
            "{$dir}/loadgen.err",
            'load generator',
        );
        $stack->loadgenPid = $loadPid;

        $windows = [];
        $t = microtime(true) + $s->before;
        $cycles = $sc->inject === null ? 0 : $s->cycles;
        for ($i = 0; $i < $cycles; $i++) {
            sleepUntil($t);
            $w = ($sc->inject)($stack);
            $windows[] = $w;
            $t = $w->end + $s->after;
        }
        sleepUntil($sc->inject === null ? $t + $s->hold + $s->after : $t);
        $stopAt = microtime(true);
        Processes::stop($loadPid, Processes::SIGTERM, 30.0);
        $loadPid = null;

        // Every confirmed message reached Redis before its reply: once a marker published now has
        // reached the subscriber, everything before it has too (Pub/Sub keeps order per connection).
        waitFor(function () use ($redis, $channel): bool {
            try {
                return $redis->command('PUBLISH', $channel, '__end__') >= 1;
            } catch (RuntimeException) {
                return false;
            }
        }, 10.0, 'the subscriber to be subscribed at the end');
        waitFor(fn (): bool => str_contains((string) file_get_contents($subLog), "M __end__\n"), 10.0, 'the end marker');

        // Connections left to Redis: each must belong to a live php-fpm worker (a socket held by a
        // process other than the one that named it would outlive its namer).
        $workers = fpmWorkers($fpmPid);
        $stale = [];
        foreach ($redis->qrpushClients() as $c) {
            $pid = (int) substr($c['name'], strlen('qrpush-'));
            if (!in_array($pid, $workers, true)) {
                $stale[] = $c['name'];
            }
        }
        if ($proxy !== null) {
            $stale = []; // behind the proxy Redis sees the proxy's sockets, named by their worker
        }
        Processes::stop($subPid);
        $subPid = null;

        return analyse($sc, $s, $windows, $results, $subLog, $stale, $stopAt);
    } finally {
        foreach ([$loadPid, $subPid, $fpmPid] as $pid) {
            if ($pid !== null) {
                Processes::stop($pid, Processes::SIGTERM, 10.0);
            }
        }
        $proxy?->stop();
        $redis->kill();
        if (getenv('QRPUSH_FAULT_KEEP') === false) {
            Processes::removeDir($dir);
        } else {
            fwrite(STDERR, "kept {$dir}\n");
        }
    }
}

/**
 * @param list<FaultWindow> $windows
 * @param list<string> $stale
 */
function analyse(Scenario $sc, Settings $s, array $windows, string $resultsFile, string $subLog, array $stale, float $stopAt): Outcome
{
    $o = new Outcome();
    $publishes = [];
    $requests = 0;
    $fcgiFailures = 0;
    $maxE2e = 0.0;
    $forks = 0;
    $pids = [];
    $shared = 0;
    $wrongPid = 0;
    foreach (file($resultsFile, FILE_IGNORE_NEW_LINES) ?: [] as $line) {
        $requests++;
        $parts = explode(' ', $line, 5);
        if ($parts[0] === 'F') {
            $fcgiFailures++;
            $o->samples['FastCGI'] ??= $line;
            continue;
        }
        $sent = (float) $parts[2];
        $answered = (float) $parts[3];
        $maxE2e = max($maxE2e, $answered - $sent);
        $r = json_decode($parts[4], true);
        $publishes[] = $r;
        $pids[$r['pid']] = true;
        if (isset($r['fork_error'])) {
            $fcgiFailures++;
            $o->samples['fork'] ??= $r['fork_error'];
        }
        if (isset($r['child'])) {
            $forks++;
            $child = $r['child'];
            $publishes[] = $child;
            if ($child['shared'] !== [] || $child['sockets'] !== 1) {
                $shared++;
                $o->samples['shared socket'] ??= json_encode($child);
            }
            if ($child['qrpush_pid'] !== $child['pid']) {
                $wrongPid++;
            }
        }
    }

    $received = [];
    $cuts = 0;
    foreach (file($subLog, FILE_IGNORE_NEW_LINES) ?: [] as $line) {
        if (str_starts_with($line, 'M ')) {
            $id = substr($line, 2);
            $received[$id] = ($received[$id] ?? 0) + 1;
        } elseif (str_starts_with($line, 'C ')) {
            $cuts++;
        }
    }
    unset($received['__end__']);

    $cutWindows = [];
    foreach ($windows as $w) {
        foreach ($w->cuts as [$from, $to]) {
            $cutWindows[] = [$from - 0.05, $to + 0.05];
        }
    }
    $inCut = static function (float $t) use ($cutWindows): bool {
        foreach ($cutWindows as [$from, $to]) {
            if ($t >= $from && $t <= $to) {
                return true;
            }
        }
        return false;
    };

    $confirmed = $heard = $lost = $excused = $excRecv = $over = $overRaw = 0;
    $maxCall = $maxNet = $maxCpuWait = 0.0;
    $exceptions = [];
    $published = [];
    foreach ($publishes as $p) {
        $id = (string) $p['id'];
        $published[$id] = true;
        $call = $p['us'] / 1e6;
        $net = max(0, $p['us'] - ($p['rq'] ?? 0)) / 1e6;
        if ($call > $maxCall) {
            $maxCall = $call;
            $o->samples['slowest'] = $p;
        }
        $maxNet = max($maxNet, $net);
        if ($call > $s->bound() + $s->slack) {
            $overRaw++;
            $maxCpuWait = max($maxCpuWait, ($p['rq'] ?? 0) / 1e6);
        }
        if ($net > $s->bound() + $s->slack) {
            $over++;
            $o->samples['over the bound'] ??= json_encode($p);
        }
        if ($p['ok']) {
            $confirmed++;
            if ($p['n'] >= 1) {
                $heard++;
                if (!isset($received[$id])) {
                    if ($inCut($p['t1'])) {
                        $excused++;
                    } else {
                        $lost++;
                        $o->samples['silent loss'] ??= json_encode($p);
                    }
                }
            }
        } else {
            $class = preg_replace('/^QrPush\\\\|Exception$/', '', $p['e']);
            $exceptions[$class] = ($exceptions[$class] ?? 0) + 1;
            $o->samples[$class] ??= $p['m'];
            $o->samples["{$class} (record)"] ??= $p;
            if (isset($received[$id])) {
                $excRecv++;
            }
        }
    }
    $duplicates = 0;
    $phantoms = 0;
    foreach ($received as $id => $count) {
        $duplicates += $count - 1;
        if (!isset($published[$id])) {
            $phantoms++;
        }
    }

    // Recovery: from the end of each fault to the first confirmed publish that started after it;
    // tail: to the last failure after it (how long some calls still failed).
    $recovery = $tail = null;
    foreach ($windows as $i => $w) {
        $until = $windows[$i + 1]->start ?? $stopAt;
        $first = null;
        $last = 0.0;
        foreach ($publishes as $p) {
            if ($p['ok'] && $p['t0'] >= $w->end && $p['t1'] <= $until) {
                $first = $first === null ? $p['t1'] : min($first, $p['t1']);
            }
            if (!$p['ok'] && $p['t1'] >= $w->end && $p['t1'] <= $until) {
                $last = max($last, $p['t1'] - $w->end);
            }
        }
        $r = $first === null ? INF : $first - $w->end;
        $recovery = max($recovery ?? 0.0, $r);
        $tail = max($tail ?? 0.0, $last);
    }

    ksort($exceptions);
    $o->row = [
        'scenario' => $sc->name,
        'requests' => $requests,
        'publishes' => count($publishes),
        'confirmed' => $confirmed,
        'heard' => $heard,
        'exceptions' => $exceptions,
        'received' => count($received),
        'duplicates' => $duplicates,
        'lost' => $lost,
        'excused' => $excused,
        'exc_received' => $excRecv,
        'max_call' => $maxCall,
        'max_net' => $maxNet,
        'over_raw' => $overRaw,
        'max_cpu_wait' => $maxCpuWait,
        'max_e2e' => $maxE2e,
        'over' => $over,
        'recovery' => $recovery,
        'tail' => $tail,
        'cuts' => $cuts,
        'forks' => $forks,
        'worker_pids' => count($pids),
        'shared' => $shared,
        'stale' => count($stale),
        'fcgi_failures' => $fcgiFailures,
    ];

    $miss = function (string $what) use ($o, $sc): void {
        $o->missed[] = "{$sc->name}: {$what}";
    };
    if ($duplicates > 0) {
        $miss("{$duplicates} duplicate(s)");
    }
    if ($lost > 0) {
        $miss("{$lost} silent loss(es), e.g. " . ($o->samples['silent loss'] ?? ''));
    }
    if ($phantoms > 0) {
        $miss("{$phantoms} message(s) received that were never published");
    }
    if ($over > 0) {
        $miss(sprintf('%d call(s) over the bound of %.2f s (+%.0f ms), e.g. %s', $over, $s->bound(), $s->slack * 1000, $o->samples['over the bound'] ?? ''));
    }
    if ($recovery !== null && $recovery >= 1.0) {
        $miss(is_finite($recovery) ? sprintf('recovery took %.3f s', $recovery) : 'no confirmed publish after the fault ended');
    }
    if ($fcgiFailures > 0) {
        $miss("{$fcgiFailures} request(s) without a proper answer, e.g. " . ($o->samples['FastCGI'] ?? $o->samples['fork'] ?? ''));
    }
    if ($sc->noErrors && $exceptions !== []) {
        $first = array_key_first($exceptions);
        $miss('exceptions where none are expected: ' . json_encode($exceptions) . ', e.g. ' . $o->samples[$first]
            . ' ' . json_encode($o->samples["{$first} (record)"], JSON_UNESCAPED_SLASHES));
    }
    if ($shared > 0 || $wrongPid > 0) {
        $miss("{$shared} forked child(ren) held a socket of their parent ({$wrongPid} with the parent's stats)");
    }
    if ($stale !== []) {
        $miss('connections of processes that are gone: ' . implode(', ', $stale));
    }
    if ($sc->fork && $forks === 0) {
        $miss('no request forked');
    }
    if ($requests < 20) {
        $miss("only {$requests} requests: the load generator did not run");
    }
    return $o;
}

// ---------------------------------------------------------------------------------------------
// The table.

function fmtExceptions(array $e): string
{
    if ($e === []) {
        return '-';
    }
    $parts = [];
    foreach ($e as $class => $n) {
        $parts[] = "{$class} {$n}";
    }
    return implode(', ', $parts);
}

/** @param list<Outcome> $outcomes */
function printTable(string $flavour, Settings $s, array $outcomes): void
{
    $rows = array_map(fn (Outcome $o): array => $o->row, $outcomes);
    $head = ['scenario', 'req', 'confirmed (heard)', 'exceptions', 'recv', 'dup', 'lost', 'excused', 'exc+recv', 'max call (net) / e2e', 'over', 'recovery', 'tail'];
    $lines = [];
    foreach ($rows as $r) {
        $lines[] = [
            $r['scenario'],
            (string) $r['requests'] . ($r['publishes'] !== $r['requests'] ? "+{$r['forks']}f" : ''),
            sprintf('%d (%d)', $r['confirmed'], $r['heard']),
            fmtExceptions($r['exceptions']),
            (string) $r['received'],
            (string) $r['duplicates'],
            (string) $r['lost'],
            (string) $r['excused'],
            (string) $r['exc_received'],
            sprintf('%.3f (%.3f) / %.3f s', $r['max_call'], $r['max_net'], $r['max_e2e']),
            (string) $r['over'],
            $r['recovery'] === null ? '-' : (is_finite($r['recovery']) ? sprintf('%.3f s', $r['recovery']) : 'never'),
            $r['tail'] === null ? '-' : sprintf('%.3f s', $r['tail']),
        ];
    }
    $widths = array_map('strlen', $head);
    foreach ($lines as $l) {
        foreach ($l as $i => $cell) {
            $widths[$i] = max($widths[$i], mb_strlen($cell));
        }
    }
    $fmt = static function (array $cells) use ($widths): string {
        $out = [];
        foreach ($cells as $i => $cell) {
            $out[] = $i === 0 || $i === 3 ? str_pad($cell, $widths[$i]) : str_pad($cell, $widths[$i], ' ', STR_PAD_LEFT);
        }
        return '| ' . implode(' | ', $out) . ' |';
    };
    printf(
        "\nQrPush fault suite, PHP 8.4 %s, php-fpm %d workers, %d concurrent requests, connect_timeout %.2f s + timeout %.2f s = bound %.2f s, breaker_cooldown default (0.5 s)%s\n",
        strtoupper($flavour),
        $s->workers,
        $s->concurrency,
        $s->connectTimeout,
        $s->timeout,
        $s->bound(),
        $s->cycles > 1 ? ", every fault {$s->cycles} times" : '',
    );
    echo $fmt($head), "\n";
    echo '|' . implode('|', array_map(fn (int $w): string => str_repeat('-', $w + 2), $widths)) . "|\n";
    foreach ($lines as $l) {
        echo $fmt($l), "\n";
    }
    echo "Notes:\n";
    foreach ($outcomes as $o) {
        $r = $o->row;
        $notes = [];
        if ($r['cuts'] > 0) {
            $notes[] = "subscriber's connection cut {$r['cuts']}x by the fault";
        }
        if ($r['forks'] > 0) {
            $notes[] = "{$r['forks']} forked children published, {$r['shared']} held a Redis socket with another process; "
                . "{$r['worker_pids']} worker pids served (recycled)";
        }
        if ($r['over_raw'] > $r['over']) {
            $notes[] = sprintf(
                '%d call(s) over the bound in wall time, within it once the time spent waiting for a CPU is taken out (up to %.3f s of run-queue wait)',
                $r['over_raw'] - $r['over'],
                $r['max_cpu_wait'],
            );
        }
        if ($r['stale'] > 0) {
            $notes[] = "{$r['stale']} Redis connection(s) of a process that is gone";
        }
        foreach (array_keys($r['exceptions']) as $class) {
            $m = (string) ($o->samples[$class] ?? '');
            $notes[] = "{$class}: " . (strlen($m) > 150 ? substr($m, 0, 147) . '...' : $m);
        }
        if ($notes !== []) {
            echo "  {$r['scenario']}: ", implode("\n    ", $notes), "\n";
        }
    }
}

function printRules(Settings $s): void
{
    $bound = sprintf('%.2f s', $s->bound());
    $slack = sprintf('%.0f ms', $s->slack * 1000);
    echo <<<TXT
        How to read it:
          confirmed  QrPush::publish() returned (Redis executed the PUBLISH); (heard): it returned >= 1 receiver,
                     i.e. Redis handed the message to the suite's subscriber, the only one on the channel.
          lost       silent losses: heard, never received, and not excused. Pub/Sub is at-most-once: a message
                     Redis handed to a subscriber connection is gone if that connection dies before Redis wrote
                     it out. Only kill -9 and stop cut the subscriber (it is a Pub/Sub client: CLIENT KILL TYPE
                     normal, the idle timeout, maxclients and the proxy never touch it); heard publishes that
                     returned from 50 ms before the signal to 50 ms after Redis was gone are "excused", not lost.
                     A confirmed publish with 0 receivers (subscriber reconnecting) is not silent: the caller
                     sees the 0.
          exc+recv   calls that threw although Redis ran the PUBLISH (its reply was late): the exception says the
                     outcome is unknown; QrPush never re-sends after a byte may have left, so no duplicate.
          max call   the longest QrPush::publish() in a worker, wall time; (net): without the time the worker
                     waited for a CPU (run queue, /proc/self/schedstat: a busy machine, not the client); e2e:
                     the longest FastCGI request as the load generator saw it. over: calls whose net time
                     exceeds the bound ({$bound}) + {$slack} timer slack (the notes count wall-time ones).
          recovery   from the end of the fault to the first confirmed publish that started after it (worst of
                     all cycles); tail: to the last exception after it (a worker's breaker still open).
          Targets: 0 dup, 0 lost, 0 over, recovery < 1 s; and no exception at all in baseline, idle timeout,
          short delay and recycling + fork, where nothing is broken from the client's point of view.

        TXT;
}

// ---------------------------------------------------------------------------------------------

$outcomes = [];
$missed = [];
$t0 = microtime(true);
foreach (scenarios($settings) as $sc) {
    if ($only !== null && !in_array($sc->name, $only, true) && !array_filter($only, fn ($o) => str_contains($sc->name, $o))) {
        continue;
    }
    $t = microtime(true);
    try {
        $o = runScenario($sc, $settings, $flavour, $ext, $fpmBinary);
        $outcomes[] = $o;
        $missed = array_merge($missed, $o->missed);
        fprintf(STDERR, "  %-32s %5.1f s  %s\n", $sc->name, microtime(true) - $t, $o->missed === [] ? 'ok' : 'MISSED');
        if (getenv('QRPUSH_FAULT_VERBOSE') !== false) {
            fwrite(STDERR, '    ' . json_encode($o->row) . "\n    " . json_encode($o->samples) . "\n");
        }
    } catch (Throwable $e) {
        $missed[] = "{$sc->name}: the scenario could not run: " . $e->getMessage();
        fprintf(STDERR, "  %-32s %5.1f s  ERROR %s\n", $sc->name, microtime(true) - $t, $e->getMessage());
    }
}
printTable($flavour, $settings, $outcomes);
if (isset($opts['rules'])) {
    printRules($settings);
}
if (isset($opts['json'])) {
    $rows = array_map(fn (Outcome $o): array => $o->row, $outcomes);
    file_put_contents($opts['json'], json_encode(['flavour' => $flavour, 'rows' => $rows, 'missed' => $missed], JSON_PRETTY_PRINT));
}
printf("%s: %d scenarios in %.1f s\n", strtoupper($flavour), count($outcomes), microtime(true) - $t0);
if ($missed !== []) {
    echo "\nTARGETS MISSED (" . strtoupper($flavour) . "):\n";
    foreach ($missed as $m) {
        echo "  - {$m}\n";
    }
    exit(1);
}
exit(0);
