<?php
// Shared by every PHP script of the benchmark (CLI loops and php-fpm endpoints): the Redis and ZMQ
// endpoints come from the environment (bench/run exports them; FPM gets them as env[...] values).
declare(strict_types=1);

const BENCH_CHANNEL = 'bench:events';
// Every client gets the same generous connect/read timeout: a benchmark on a loaded machine must
// measure slowness, not fail on it (bench/inside.sh gives QrPush the same through qrpush.*timeout).
const BENCH_TIMEOUT = 5.0;
const BENCH_PATTERN = '{"type":"qr.login","status":"confirmed","pad":"abcdefghijklmnopqrstuvwxyz0123456789"}';

function bench_env(string $name, ?string $default = null): string
{
    $v = getenv($name);
    if ($v === false || $v === '') {
        if ($default === null) {
            throw new RuntimeException("environment variable {$name} is not set (run bench/run)");
        }
        return $default;
    }
    return $v;
}

function bench_host(): string { return '127.0.0.1'; }
function bench_port(): int { return (int) bench_env('BENCH_REDIS_PORT'); }
function bench_pass(): string { return bench_env('BENCH_REDIS_PASS'); }
function bench_zmq_port(): int { return (int) bench_env('BENCH_ZMQ_PORT'); }

/** A QrPush\Client for the same Redis, over TCP or over TLS (its TLS port, trusting the bench CA). */
function bench_qrpush_client(bool $tls): QrPush\Client
{
    $auth = ':' . rawurlencode(bench_pass()) . '@' . bench_host();
    $options = ['timeout' => BENCH_TIMEOUT, 'connect_timeout' => BENCH_TIMEOUT];
    if (!$tls) {
        return new QrPush\Client("redis://{$auth}:" . bench_port(), $options);
    }
    return new QrPush\Client('rediss://' . $auth . ':' . bench_env('BENCH_TLS_PORT'),
        $options + ['tls_ca_file' => bench_env('BENCH_TLS_CA')]);
}

/** The same bytes as raw_floor.rs's payload(): printable, $size bytes. */
function bench_payload(int $size): string
{
    return substr(str_repeat(BENCH_PATTERN, intdiv($size, strlen(BENCH_PATTERN)) + 1), 0, $size);
}

/** A typical real-time event, as an application would publish it (~300 B of JSON). */
function bench_event(int $i): array
{
    return [
        'type' => 'qr.login.confirmed',
        'sessionId' => '3f6c2a9e8b1d4f70a5c6e2d9b8a71f04',
        'userId' => 40000 + $i,
        'status' => 'confirmed',
        'ts' => 1767225600.125,
        'device' => ['name' => 'Pixel 8', 'os' => 'Android 15', 'trusted' => true],
        'ip' => '203.0.113.7',
        'scopes' => ['read', 'write', 'notify'],
        'message' => 'Signed in on a new device — Zürich',
    ];
}

/** RESP for one command. */
function bench_resp(string ...$args): string
{
    $out = '*' . count($args) . "\r\n";
    foreach ($args as $a) {
        $out .= '$' . strlen($a) . "\r\n" . $a . "\r\n";
    }
    return $out;
}

/** User + system CPU of this process in µs (all threads). */
function bench_cpu_us(): float
{
    [$user, $sys] = bench_cpu_split_us();
    return $user + $sys;
}

/** [user, system] CPU of this process in µs (all threads). */
function bench_cpu_split_us(): array
{
    $r = getrusage();
    return [$r['ru_utime.tv_sec'] * 1e6 + $r['ru_utime.tv_usec'], $r['ru_stime.tv_sec'] * 1e6 + $r['ru_stime.tv_usec']];
}

/** @param list<int> $ns latencies in ns, sorted in place */
function bench_percentile(array &$ns, float $p): float
{
    $n = count($ns);
    $i = max(1, min($n, (int) ceil($p / 100 * $n))) - 1;
    return $ns[$i] / 1000;
}

// ---- connections, one function per contender, written the way an application would ---------------

function bench_phpredis_pconnect(): Redis
{
    $r = new Redis();
    // phpredis 6: AUTH in the connect options, so a pooled connection is authenticated once.
    $r->pconnect(bench_host(), bench_port(), BENCH_TIMEOUT, 'bench', 0, BENCH_TIMEOUT, ['auth' => [bench_pass()]]);
    return $r;
}

function bench_predis(): Predis\Client
{
    require_once '/usr/share/php/Predis/autoload.php';
    return new Predis\Client([
        'scheme' => 'tcp', 'host' => bench_host(), 'port' => bench_port(),
        'password' => bench_pass(), 'persistent' => true, 'timeout' => BENCH_TIMEOUT,
        'read_write_timeout' => BENCH_TIMEOUT,
    ]);
}

function bench_zmq_push(): ZMQSocket
{
    // Persistent context and socket: made once per process, reused by every later request.
    $ctx = new ZMQContext(1, true);
    return $ctx->getSocket(ZMQ::SOCKET_PUSH, 'bench-push', function (ZMQSocket $s): void {
        $s->setSockOpt(ZMQ::SOCKOPT_LINGER, 1000);
        $s->connect('tcp://' . bench_host() . ':' . bench_zmq_port());
    });
}

/**
 * The channels of the Cluster section (bench/inside/cluster.sh: 12 names, 4 on each of the 3
 * primaries, shard by shard in turn); the one bench channel elsewhere.
 * @return list<string>
 */
function bench_channels(): array
{
    return explode(',', bench_env('BENCH_CHANNELS', BENCH_CHANNEL));
}

/** @return list<string> host:port of every Cluster node */
function bench_cluster_seeds(): array
{
    return explode(',', bench_env('BENCH_CLUSTER_SEEDS'));
}

/** $batch (channel, message) pairs going round bench_channels(). */
function bench_spread_pairs(string $msg, int $batch): array
{
    $chs = bench_channels();
    $pairs = [];
    for ($i = 0; $i < $batch; $i++) {
        $pairs[] = [$chs[$i % count($chs)], $msg];
    }
    return $pairs;
}

function bench_phpredis_cluster(): RedisCluster
{
    // Persistent connections and the password, like bench_phpredis_pconnect().
    return new RedisCluster(null, bench_cluster_seeds(), BENCH_TIMEOUT, BENCH_TIMEOUT, true, bench_pass());
}

function bench_predis_cluster(): Predis\Client
{
    require_once '/usr/share/php/Predis/autoload.php';
    $client = new Predis\Client(array_map(fn (string $seed): string => "tcp://{$seed}", bench_cluster_seeds()), [
        'cluster' => 'redis',
        'parameters' => ['password' => bench_pass(), 'persistent' => true, 'timeout' => BENCH_TIMEOUT,
            'read_write_timeout' => BENCH_TIMEOUT],
    ]);
    // predis 2.4 refuses PUBLISH on a Cluster ("Cannot use 'PUBLISH' with redis-cluster") and has
    // no SPUBLISH command: taught here to route SPUBLISH by its channel, sent as a raw command.
    $client->getConnection()->getClusterStrategy()
        ->setCommandHandler('SPUBLISH', fn (Predis\Command\CommandInterface $c): string => $c->getArgument(0));
    return $client;
}

/** @return resource a blocking TCP stream, TCP_NODELAY, authenticated */
function bench_raw_socket()
{
    $ctx = stream_context_create(['socket' => ['tcp_nodelay' => true]]);
    $s = stream_socket_client('tcp://' . bench_host() . ':' . bench_port(), $errno, $errstr, BENCH_TIMEOUT,
        STREAM_CLIENT_CONNECT, $ctx);
    if ($s === false) {
        throw new RuntimeException("raw socket: {$errstr}");
    }
    stream_set_timeout($s, (int) BENCH_TIMEOUT);
    fwrite($s, bench_resp('AUTH', bench_pass()));
    $reply = fgets($s);
    if ($reply !== "+OK\r\n") {
        throw new RuntimeException('raw socket AUTH: ' . var_export($reply, true));
    }
    return $s;
}

/** VmRSS, Pss and private memory (smaps_rollup) of a process, in kB. */
function bench_self_memory(?int $pid = null): array
{
    $dir = '/proc/' . ($pid ?? 'self');
    $status = (string) file_get_contents("{$dir}/status");
    preg_match('/^VmRSS:\s+(\d+)/m', $status, $m);
    $rollup = (string) @file_get_contents("{$dir}/smaps_rollup");
    $private = 0;
    if (preg_match_all('/^Private_(?:Clean|Dirty):\s+(\d+)/m', $rollup, $p)) {
        $private = array_sum(array_map('intval', $p[1]));
    }
    preg_match('/^Pss:\s+(\d+)/m', $rollup, $pss);
    // The pages of the extension's shared object itself (code, data, relocations) in this process.
    $so_name = '/' . basename(getenv('BENCH_EXT') ?: 'libqrpush.so');
    $so = ['rss' => 0, 'private' => 0];
    $in = false;
    foreach (explode("\n", (string) @file_get_contents("{$dir}/smaps")) as $line) {
        if (preg_match('/^[0-9a-f]+-[0-9a-f]+ /', $line)) {
            $in = str_ends_with(rtrim($line), $so_name);
        } elseif ($in && preg_match('/^(Rss|Private_Clean|Private_Dirty):\s+(\d+)/', $line, $x)) {
            $so[$x[1] === 'Rss' ? 'rss' : 'private'] += (int) $x[2];
        }
    }
    return ['rss_kb' => (int) ($m[1] ?? 0), 'pss_kb' => (int) ($pss[1] ?? 0), 'private_kb' => $private,
        'so_rss_kb' => $so['rss'], 'so_private_kb' => $so['private']];
}
