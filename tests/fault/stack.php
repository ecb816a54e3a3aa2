<?php

declare(strict_types=1);

/*
 * One fault-suite scenario end to end (see suite.php): a private redis-server (behind the fault
 * proxy when the scenario says so), a php-fpm pool publishing through the extension, the counting
 * subscriber and the FastCGI load generator; the fault injected while the load runs; then the
 * files the analysis reads. Every process is a child stopped by its own handle, never by name;
 * every wait is bounded.
 */

use QrPush\Tests\Fpm;
use QrPush\Tests\Processes;
use QrPush\Tests\RedisServer;

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

/** The php-fpm pool under load: the flavour's php-fpm with the extension, the scenario's settings. */
function startFpm(string $binary, string $ext, string $flavour, Settings $s, Scenario $scenario, string $url, array $moreIni = []): Fpm
{
    $ini = [
        'qrpush.connect_timeout' => (string) $s->connectTimeout,
        'qrpush.timeout' => (string) $s->timeout,
        // qrpush.breaker_cooldown: the default (0.5 s) unless a scenario sets it
        'display_errors' => 'stderr',
        'log_errors' => '0',
        'max_execution_time' => '30',
    ] + $scenario->ini + $moreIni;
    $pool = ['listen.backlog' => '1024'];
    if ($scenario->maxRequests !== null) {
        $pool['pm.max_requests'] = (string) $scenario->maxRequests;
    }
    // Debian's php-fpm has no pcntl: the fork scenario forks through FFI.
    $options = $flavour === 'nts' ? ['-d', 'extension=ffi', '-d', 'ffi.enable=1'] : [];
    return new Fpm($url, $s->workers, $ini, pool: $pool, binary: $binary, extension: $ext, options: $options, name: 'fault');
}

/** Login flows a second, at most, in scenarios that run them. */
const LOGIN_RATE = 40;

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

/** @param string|null $gateway the qrpush-gateway binary a topology scenario runs beside (gateway.php) */
function runScenario(Scenario $sc, Settings $s, string $flavour, string $ext, string $fpmBinary, ?string $gateway = null): Outcome
{
    $dir = Processes::tempDir('fault');
    $topology = $sc->topology === null ? null : ($sc->topology)();
    $redis = $topology === null ? new RedisServer(null, $sc->redisArgs, $sc->unixSocket) : null;
    $stack = new Stack($redis, $s, $dir);
    $stack->topology = $topology;
    $stack->fpmBinary = $fpmBinary;
    $proxy = null;
    $fpm = null;
    $subPid = $loadPid = $loginPid = null;
    $watch = null;
    $channel = 'fault:' . bin2hex(random_bytes(4));
    $stack->channel = $channel;
    try {
        if ($sc->viaProxy) {
            $proxy = new Proxy($redis->port(), $dir);
            $stack->proxy = $proxy;
        }
        if ($sc->prepare !== null) {
            ($sc->prepare)($stack);
        }
        $targetPort = $proxy?->port ?? $redis?->port();
        $url = $stack->url ?? $topology?->url() ?? ($sc->unixSocket ? 'unix://' . $redis->unixSocket() : "redis://127.0.0.1:{$targetPort}");
        // The gateway's handshake tokens are signed by php-fpm with the secret the gateway checks.
        $gatewaySecret = $topology !== null && $gateway !== null ? bin2hex(random_bytes(24)) : null;
        $fpm = startFpm($stack->fpmBinary, $ext, $flavour, $s, $sc, $url, $gatewaySecret === null ? [] : ['qrpush.gateway_secret' => $gatewaySecret]);
        $fpmPort = $fpm->port();
        if ($gatewaySecret !== null) {
            $watch = new GatewayWatch($gateway, $topology, $gatewaySecret, $dir, $fpm);
            $channel = $watch->loadChannel($channel);
            $stack->channel = $channel;
        }
        $subRedis = $stack->subscriberRedis ?? $redis;

        $subLog = "{$dir}/subscriber.log";
        touch($subLog);
        $subTarget = $topology?->subscriberTarget() ?? (string) $subRedis->port();
        [, $subPid] = Processes::start([PHP_CLI, '-n', __DIR__ . '/subscriber.php', $subTarget, $channel, $subLog], "{$dir}/subscriber.err", 'subscriber');
        waitFor(fn (): bool => str_contains((string) file_get_contents($subLog), "S "), 5.0, 'the subscriber');

        $query = 'ch=' . rawurlencode($channel) . '&id={id}' . ($sc->fork ? "&fork=1&redis_port={$targetPort}" : '');
        $results = "{$dir}/results.log";
        [, $loadPid] = Processes::start(
            [PHP_CLI, '-n', __DIR__ . '/loadgen.php', (string) $fpmPort, __DIR__ . '/www/publish.php', $query, (string) $s->concurrency, (string) $s->rate, $results],
            "{$dir}/loadgen.err",
            'load generator',
        );
        $stack->loadgenPid = $loadPid;
        $loginResults = null;
        if ($sc->logins) {
            // One flow at a time, at most LOGIN_RATE a second: logins in flight at every moment of
            // the fault without taking the publishing load's workers.
            $loginResults = "{$dir}/logins.log";
            [, $loginPid] = Processes::start(
                [PHP_CLI, '-n', __DIR__ . '/loadgen.php', (string) $fpmPort, __DIR__ . '/www/login.php', 'id={id}', '1', (string) LOGIN_RATE, $loginResults],
                "{$dir}/logins.err",
                'login load generator',
            );
        }

        $windows = [];
        $t = microtime(true) + $s->before;
        $cycles = $sc->inject === null ? 0 : $s->cycles;
        for ($i = 0; $i < $cycles; $i++) {
            sleepUntil($t);
            $nodes = $watch?->beforeFault();
            $w = ($sc->inject)($stack);
            $windows[] = $w;
            $watch?->afterFault($w, $nodes, $i);
            $t = $w->end + $s->after;
        }
        sleepUntil($sc->inject === null ? $t + $s->hold + $s->after : $t);
        $stopAt = microtime(true);
        Processes::stop($loadPid, Processes::SIGTERM, 30.0);
        $loadPid = null;
        if ($loginPid !== null) {
            Processes::stop($loginPid, Processes::SIGTERM, 30.0);
            $loginPid = null;
        }

        // Every confirmed message reached Redis before its reply: once a marker published now has
        // reached the subscriber, everything before it has too (Pub/Sub keeps order per connection).
        // On a topology: on its primary now, which the subscriber follows.
        waitFor(function () use ($subRedis, $topology, $channel): bool {
            try {
                return ($topology?->publishMarker($channel, '__end__') ?? $subRedis->command('PUBLISH', $channel, '__end__')) >= 1;
            } catch (RuntimeException) {
                return false;
            }
        }, 10.0, 'the subscriber to be subscribed at the end');
        waitFor(fn (): bool => str_contains((string) file_get_contents($subLog), "M __end__\n"), 10.0, 'the end marker');

        // Connections left to Redis: each must belong to a live php-fpm worker (a socket held by a
        // process other than the one that named it would outlive its namer).
        $workers = $fpm->workerPids();
        $stale = [];
        foreach ($topology?->liveNodes() ?? [$redis] as $node) {
            foreach ($node->qrpushClients() as $c) {
                if ($watch !== null && in_array($c['name'], $watch->connectionNames(), true)) {
                    continue; // the gateway's own (Pub/Sub links, status reads), stopped with it
                }
                $pid = (int) substr($c['name'], strlen('qrpush-'));
                if (!in_array($pid, $workers, true)) {
                    $stale[] = "{$c['name']} on port {$node->port()}";
                }
            }
        }
        if ($proxy !== null) {
            $stale = []; // behind the proxy Redis sees the proxy's sockets, named by their worker
        }
        Processes::stop($subPid);
        $subPid = null;

        $o = analyse($sc, $s, $windows, $results, $subLog, $stale, $stopAt, $loginResults);
        if ($watch !== null) {
            $o->row['gateway'] = $watch->summary();
            foreach ($watch->missed as $m) {
                $o->missed[] = "{$sc->name}: {$m}";
            }
        }
        return $o;
    } finally {
        $watch?->stop();
        foreach ([$loadPid, $loginPid, $subPid] as $pid) {
            if ($pid !== null) {
                Processes::stop($pid, Processes::SIGTERM, 10.0);
            }
        }
        $fpm?->stop(10.0);
        $proxy?->stop();
        foreach ($stack->pids as $pid) {
            Processes::stop($pid);
        }
        foreach ($stack->servers as $server) {
            $server->kill();
        }
        $redis?->kill();
        $topology?->stop();
        if (getenv('QRPUSH_FAULT_KEEP') === false) {
            Processes::removeDir($dir);
        } else {
            if ($fpm !== null) {
                file_put_contents("{$dir}/fpm.log", $fpm->logs());
            }
            fwrite(STDERR, "kept {$dir}\n");
        }
    }
}
