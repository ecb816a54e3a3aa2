<?php
// The cost of a durable publish beside a plain one, in one PHP CLI process over a warm connection
// to the same Redis (nobody subscribed). Each contender publishes the same ~300 B event N times;
// prints one JSON line per contender: {name, n, runs: [wall µs per publish, ...], cpu: [µs of this
// process's CPU time (user + system) per publish, ...]}.
//   php durable.php PORT N RUNS
// Contenders:
//   publish            QrPush\Client::publish() (the baseline)
//   durable            QrPush\Client::publishDurable(): XADD MAXLEN ~ 1000 + PUBLISH in one EVALSHA
//   durable-maxage     the same with stream_max_age (one more XTRIM MINID per publish)
//   publish-many-100   publishMany() of 100 events, per event
//   durable-many-100   publishManyDurable() of 100 events, per event (100 EVALSHA pipelined)
declare(strict_types=1);

require __DIR__ . '/common.php';

[, $port, $n, $runs] = $argv + [null, null, '1000', '3'];
$port = (int) $port;
$n = (int) $n;
$runs = (int) $runs;
$url = "redis://127.0.0.1:{$port}";
$options = ['timeout' => BENCH_TIMEOUT, 'connect_timeout' => BENCH_TIMEOUT, 'stream_maxlen' => 1000];
$client = new QrPush\Client($url, $options);
$aged = new QrPush\Client($url, $options + ['stream_max_age' => 3600]);
$event = bench_event(1);
$batch = array_fill(0, 100, ['events', $event]);

function cpu_us(array $usage): float
{
    return $usage['ru_utime.tv_sec'] * 1e6 + $usage['ru_utime.tv_usec'] + $usage['ru_stime.tv_sec'] * 1e6 + $usage['ru_stime.tv_usec'];
}

// name => [callable, publishes per call]
$contenders = [
    'publish' => [static fn () => $client->publish('events', $event), 1],
    'durable' => [static fn () => $client->publishDurable('events', $event), 1],
    'durable-maxage' => [static fn () => $aged->publishDurable('events-aged', $event), 1],
    'publish-many-100' => [static fn () => $client->publishMany($batch), 100],
    'durable-many-100' => [static fn () => $client->publishManyDurable($batch), 100],
];
foreach ($contenders as [$publish, $per]) {
    for ($i = 0; $i < max(1, intdiv(min(200, $n), $per)); $i++) {
        $publish();
    }
}
$wall = $cpu = [];
for ($r = 0; $r < $runs; $r++) {
    foreach ($contenders as $name => [$publish, $per]) {
        $calls = max(1, intdiv($n, $per));
        $u = getrusage();
        $t = hrtime(true);
        for ($i = 0; $i < $calls; $i++) {
            $publish();
        }
        $wall[$name][] = (hrtime(true) - $t) / 1000 / ($calls * $per);
        $cpu[$name][] = (cpu_us(getrusage()) - cpu_us($u)) / ($calls * $per);
    }
}
foreach ($contenders as $name => $_) {
    echo json_encode(['name' => $name, 'n' => $n, 'runs' => $wall[$name], 'cpu' => $cpu[$name]]), "\n";
}
