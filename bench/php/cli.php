<?php
// CLI measurements of bench/run, one contender per process so none inherits another's state:
//   php cli.php loop  CONTENDER SIZE N      sequential single publishes of SIZE bytes
//   php cli.php batch CONTENDER BATCH N     N messages of 100 B, in batches of BATCH
//   php cli.php array CONTENDER N           a typical event array (see bench_event)
// The *_spread and *_cl contenders go round the channels of BENCH_CHANNELS (the Cluster section).
// Prints one JSON object: ops (messages/s), p50_us/p99_us (per call: one publish, or one batch),
// wall_us and cpu_us (getrusage, all threads) per message. Any failure exits non-zero.
// BENCH_LABEL=name reports the result under another name (a variant: QrPush over rediss://).
// Each loop is written out per contender (no closure call in the timed path), with the same
// per-iteration bookkeeping for all: two hrtime() calls and one result check.
declare(strict_types=1);
require __DIR__ . '/common.php';

[, $mode, $who] = $argv + [null, null, null];
$a = (int) ($argv[3] ?? 0);
$n = (int) ($argv[4] ?? 0);
$ch = BENCH_CHANNEL;

function fail(string $why): never
{
    fwrite(STDERR, "cli.php: {$why}\n");
    exit(1);
}

set_exception_handler(function (Throwable $e): void {
    fail(get_class($e) . ': ' . $e->getMessage());
});

/** Runs $body($count) once for warm-up, then times it; $body returns the latencies in ns. */
function measure(callable $body, int $calls, int $messagesPerCall): array
{
    $body(max(1, min(1000, intdiv($calls, 10))));
    gc_collect_cycles();
    [$user0, $sys0] = bench_cpu_split_us();
    $t0 = hrtime(true);
    $lat = $body($calls);
    $wall = (hrtime(true) - $t0) / 1e3;
    [$user1, $sys1] = bench_cpu_split_us();
    $cpu = $user1 - $user0 + $sys1 - $sys0;
    sort($lat);
    $msgs = $calls * $messagesPerCall;
    return [
        'n' => $msgs,
        'ops' => round($msgs / ($wall / 1e6), 1),
        'p50_us' => round(bench_percentile($lat, 50), 2),
        'p99_us' => round(bench_percentile($lat, 99), 2),
        'wall_us' => round($wall / $msgs, 3),
        'cpu_us' => round($cpu / $msgs, 3),
        'user_us' => round(($user1 - $user0) / $msgs, 3),
        'sys_us' => round(($sys1 - $sys0) / $msgs, 3),
    ];
}

function loop_body(string $who, string $ch, string $msg): callable
{
    switch ($who) {
        case 'qrpush':
            QrPush::ping(); // connect outside the timed loop, like every other contender
            return function (int $n) use ($ch, $msg): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = QrPush::publish($ch, $msg);
                    $lat[] = hrtime(true) - $t;
                    if ($r < 0) fail('QrPush::publish returned ' . $r);
                }
                return $lat;
            };
        case 'phpredis':
            $redis = bench_phpredis_pconnect();
            return function (int $n) use ($redis, $ch, $msg): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = $redis->publish($ch, $msg);
                    $lat[] = hrtime(true) - $t;
                    if ($r === false) fail('phpredis publish failed: ' . $redis->getLastError());
                }
                return $lat;
            };
        case 'predis':
            $predis = bench_predis();
            $predis->connect();
            return function (int $n) use ($predis, $ch, $msg): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = $predis->publish($ch, $msg);
                    $lat[] = hrtime(true) - $t;
                    if (!is_int($r)) fail('predis publish returned ' . var_export($r, true));
                }
                return $lat;
            };
        case 'zmq':
            $push = bench_zmq_push();
            return function (int $n) use ($push, $msg): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = $push->send($msg);
                    $lat[] = hrtime(true) - $t;
                    if ($r === false) fail('zmq send failed');
                }
                return $lat;
            };
        case 'php_floor':
            $s = bench_raw_socket();
            $cmd = bench_resp('PUBLISH', $ch, $msg);
            return function (int $n) use ($s, $cmd): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    fwrite($s, $cmd);
                    $r = fgets($s);
                    $lat[] = hrtime(true) - $t;
                    if ($r === false || $r[0] !== ':') fail('raw socket PUBLISH: ' . var_export($r, true));
                }
                return $lat;
            };
        // The Cluster section (bench/inside/cluster.sh): the publishes go round bench_channels(),
        // 12 channels spread over the 3 shards; the single Redis is measured the same way.
        case 'qrpush_spread':
            QrPush::ping();
            $chs = bench_channels();
            return function (int $n) use ($chs, $msg): array {
                $lat = [];
                $k = count($chs);
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = QrPush::publish($chs[$i % $k], $msg);
                    $lat[] = hrtime(true) - $t;
                    if ($r < 0) fail('QrPush::publish returned ' . $r);
                }
                return $lat;
            };
        case 'phpredis_spread':
        case 'phpredis_cl':
            // One loop for both: Redis and RedisCluster share publish() and getLastError(), so
            // the timed path is the same code. RedisCluster has no spublish(): its publish() is
            // the classic, broadcast PUBLISH.
            [$redis, $what] = $who === 'phpredis_cl'
                ? [bench_phpredis_cluster(), 'RedisCluster']
                : [bench_phpredis_pconnect(), 'phpredis'];
            $chs = bench_channels();
            return function (int $n) use ($redis, $what, $chs, $msg): array {
                $lat = [];
                $k = count($chs);
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = $redis->publish($chs[$i % $k], $msg);
                    $lat[] = hrtime(true) - $t;
                    if ($r === false) fail("{$what} publish failed: " . $redis->getLastError());
                }
                return $lat;
            };
        case 'phpredis_cl_raw':
            // rawCommand's first argument is a key: the command goes to the owner of its slot.
            $cluster = bench_phpredis_cluster();
            $chs = bench_channels();
            return function (int $n) use ($cluster, $chs, $msg): array {
                $lat = [];
                $k = count($chs);
                for ($i = 0; $i < $n; $i++) {
                    $ch = $chs[$i % $k];
                    $t = hrtime(true);
                    $r = $cluster->rawCommand($ch, 'SPUBLISH', $ch, $msg);
                    $lat[] = hrtime(true) - $t;
                    if (!is_int($r)) fail('RedisCluster rawCommand SPUBLISH returned ' . var_export($r, true));
                }
                return $lat;
            };
        case 'predis_cl':
            $predis = bench_predis_cluster();
            $chs = bench_channels();
            return function (int $n) use ($predis, $chs, $msg): array {
                $lat = [];
                $k = count($chs);
                for ($i = 0; $i < $n; $i++) {
                    $ch = $chs[$i % $k];
                    $t = hrtime(true);
                    $r = $predis->executeCommand(Predis\Command\RawCommand::create('SPUBLISH', $ch, $msg));
                    $lat[] = hrtime(true) - $t;
                    if (!is_int($r)) fail('predis SPUBLISH returned ' . var_export($r, true));
                }
                return $lat;
            };
    }
    fail("unknown loop contender '{$who}'");
}

function batch_body(string $who, string $ch, string $msg, int $batch): callable
{
    $pairs = array_fill(0, $batch, [$ch, $msg]);
    switch ($who) {
        case 'qrpush_many':
        case 'qrpush_many_spread':
            // The Cluster section's variant sends batches going round bench_channels() (34/33/33
            // over the 3 shards) through the same timed loop.
            QrPush::ping();
            if ($who === 'qrpush_many_spread') {
                $pairs = bench_spread_pairs($msg, $batch);
            }
            return function (int $n) use ($pairs, $batch): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = QrPush::publishMany($pairs);
                    $lat[] = hrtime(true) - $t;
                    if (count($r) !== $batch) fail('publishMany returned ' . count($r) . ' counts');
                }
                return $lat;
            };
        case 'qrpush_loop':
            QrPush::ping();
            return function (int $n) use ($ch, $msg, $batch): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    for ($j = 0; $j < $batch; $j++) {
                        QrPush::publish($ch, $msg);
                    }
                    $lat[] = hrtime(true) - $t;
                }
                return $lat;
            };
        case 'phpredis_pipeline':
            $redis = bench_phpredis_pconnect();
            return function (int $n) use ($redis, $ch, $msg, $batch): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $redis->multi(Redis::PIPELINE);
                    for ($j = 0; $j < $batch; $j++) {
                        $redis->publish($ch, $msg);
                    }
                    $r = $redis->exec();
                    $lat[] = hrtime(true) - $t;
                    if (!is_array($r) || count($r) !== $batch) fail('phpredis pipeline exec failed');
                }
                return $lat;
            };
        case 'predis_pipeline':
            $predis = bench_predis();
            $predis->connect();
            return function (int $n) use ($predis, $ch, $msg, $batch): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = $predis->pipeline(function ($p) use ($ch, $msg, $batch): void {
                        for ($j = 0; $j < $batch; $j++) {
                            $p->publish($ch, $msg);
                        }
                    });
                    $lat[] = hrtime(true) - $t;
                    if (count($r) !== $batch) fail('predis pipeline failed');
                }
                return $lat;
            };
        // The Cluster section: batches going round bench_channels() (34/33/33 over the 3 shards).
        case 'phpredis_pipeline_spread':
            $redis = bench_phpredis_pconnect();
            $spread = bench_spread_pairs($msg, $batch);
            return function (int $n) use ($redis, $spread, $batch): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $redis->multi(Redis::PIPELINE);
                    foreach ($spread as [$c, $m]) {
                        $redis->publish($c, $m);
                    }
                    $r = $redis->exec();
                    $lat[] = hrtime(true) - $t;
                    if (!is_array($r) || count($r) !== $batch) fail('phpredis pipeline exec failed');
                }
                return $lat;
            };
        case 'phpredis_cl_batch':
            // RedisCluster refuses multi(Redis::PIPELINE) ("does not support PIPELINING"): the
            // closest is a loop of rawCommand SPUBLISH, one round trip each.
            $cluster = bench_phpredis_cluster();
            $spread = bench_spread_pairs($msg, $batch);
            return function (int $n) use ($cluster, $spread): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    foreach ($spread as [$c, $m]) {
                        $r = $cluster->rawCommand($c, 'SPUBLISH', $c, $m);
                        if (!is_int($r)) fail('RedisCluster rawCommand SPUBLISH returned ' . var_export($r, true));
                    }
                    $lat[] = hrtime(true) - $t;
                }
                return $lat;
            };
        case 'predis_cl_batch':
            // predis pipelines over a Cluster: every command is written to its node's
            // connection, then the replies are read in order.
            $predis = bench_predis_cluster();
            $spread = bench_spread_pairs($msg, $batch);
            return function (int $n) use ($predis, $spread, $batch): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $t = hrtime(true);
                    $r = $predis->pipeline(function ($p) use ($spread): void {
                        foreach ($spread as [$c, $m]) {
                            $p->executeCommand(Predis\Command\RawCommand::create('SPUBLISH', $c, $m));
                        }
                    });
                    $lat[] = hrtime(true) - $t;
                    if (count($r) !== $batch) fail('predis pipeline failed');
                }
                return $lat;
            };
    }
    fail("unknown batch contender '{$who}'");
}

function array_body(string $who, string $ch): callable
{
    $flags = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;
    switch ($who) {
        case 'qrpush_array':
            QrPush::ping();
            return function (int $n) use ($ch): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $event = bench_event($i);
                    $t = hrtime(true);
                    QrPush::publish($ch, $event);
                    $lat[] = hrtime(true) - $t;
                }
                return $lat;
            };
        case 'qrpush_json_encode':
            QrPush::ping();
            return function (int $n) use ($ch, $flags): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $event = bench_event($i);
                    $t = hrtime(true);
                    QrPush::publish($ch, json_encode($event, $flags));
                    $lat[] = hrtime(true) - $t;
                }
                return $lat;
            };
        case 'phpredis_json_encode':
            $redis = bench_phpredis_pconnect();
            return function (int $n) use ($redis, $ch, $flags): array {
                $lat = [];
                for ($i = 0; $i < $n; $i++) {
                    $event = bench_event($i);
                    $t = hrtime(true);
                    $r = $redis->publish($ch, json_encode($event, $flags));
                    $lat[] = hrtime(true) - $t;
                    if ($r === false) fail('phpredis publish failed');
                }
                return $lat;
            };
        case 'json_encode_only':
            return function (int $n) use ($flags): array {
                $lat = [];
                $len = 0;
                for ($i = 0; $i < $n; $i++) {
                    $event = bench_event($i);
                    $t = hrtime(true);
                    $len += strlen(json_encode($event, $flags));
                    $lat[] = hrtime(true) - $t;
                }
                return $lat;
            };
    }
    fail("unknown array contender '{$who}'");
}

switch ($mode) {
    case 'loop':
        $res = measure(loop_body($who, $ch, bench_payload($a)), $n, 1);
        break;
    case 'batch':
        $calls = max(1, intdiv($n, $a));
        $res = measure(batch_body($who, $ch, bench_payload(100), $a), $calls, $a);
        break;
    case 'array':
        $res = measure(array_body($who, $ch), $a, 1)
            + ['bytes' => strlen(json_encode(bench_event(1), JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION))];
        break;
    default:
        fail('usage: cli.php loop|batch|array CONTENDER ...');
}
// BENCH_LABEL names a variant of a contender (e.g. QrPush over TLS: same code, other qrpush.url).
echo json_encode(['contender' => getenv('BENCH_LABEL') ?: $who] + $res), "\n";
