<?php
// The cost of one publish in each format, in one PHP CLI process over a warm connection to the
// same Redis (nobody subscribed: PUBLISH's work in Redis is the same for every contender, the
// difference is the PHP side and the bytes). Each contender publishes the same event N times;
// prints one JSON line per contender: {name, n, runs: [wall µs per publish, ...], cpu: [µs of
// this process's CPU time (user + system) per publish, ...]}. The wall time is mostly the round
// trip; the CPU time is what the format costs PHP (encoding, packing, the syscalls).
//   php formats.php PORT N RUNS
// Contenders:
//   qrpush-publish      QrPush\Client::publish() of the event as JSON (the baseline)
//   qrpush-laravel-1    QrPush\Client::broadcast() to one channel (Laravel's format)
//   qrpush-laravel-3    QrPush\Client::broadcast() to three channels (one round trip)
//   laravel-phpredis-1  what Laravel's RedisBroadcaster does, without the framework around it:
//                       json_encode() of the same envelope, then phpredis EVAL of its Lua script
//   laravel-phpredis-3  the same to three channels
//   laravel-illuminate-1, -3  Laravel's own RedisBroadcaster::broadcast() (Debian's Illuminate, over
//                       phpredis through RedisManager, as a Laravel app has it), when BENCH_ILLUMINATE
//                       names the unpacked tree (bench/formats does); the framework's event
//                       dispatch and queue are not counted
//   qrpush-socketio     QrPush\SocketIo::emit() to a room (classic adapter, MessagePack)
//   qrpush-socketio-sharded  the same for the sharded adapter (SPUBLISH)
//   qrpush-socketio-streams  the same for @socket.io/redis-streams-adapter (XADD MAXLEN ~ 10000 of
//                       the adapter's JSON entry)
declare(strict_types=1);

require __DIR__ . '/common.php';

[, $port, $n, $runs] = $argv + [null, null, '1000', '3'];
$port = (int) $port;
$n = (int) $n;
$runs = (int) $runs;
$url = "redis://127.0.0.1:{$port}";
$options = ['timeout' => BENCH_TIMEOUT, 'connect_timeout' => BENCH_TIMEOUT];
$client = new QrPush\Client($url, $options + ['channel_prefix' => 'laravel_database_']);
$plain = new QrPush\Client($url, $options);
$event = bench_event(1);
$three = ['orders', 'private-orders.42', 'presence-room.1'];

$redis = new Redis();
$redis->connect('127.0.0.1', $port, BENCH_TIMEOUT);
// RedisBroadcaster::broadcastMultipleChannelsScript(), sent by EVAL as Laravel sends it.
$script = "for i = 2, #ARGV do\n  redis.call('publish', ARGV[i], ARGV[1])\nend";
$laravel = static function (array $channels, string $name, array $payload, ?string $socket) use ($redis, $script): void {
    $payload = array_merge($payload, ['socket' => $socket]);
    $message = json_encode(['event' => $name, 'data' => $payload, 'socket' => $payload['socket']]);
    $redis->eval($script, array_merge([$message], array_map(static fn ($c) => 'laravel_database_' . $c, $channels)), 0);
};
$illuminate = getenv('BENCH_ILLUMINATE') ?: null;
if ($illuminate !== null) {
    require $illuminate . '/Illuminate/Broadcasting/autoload.php';
    require $illuminate . '/Illuminate/Redis/autoload.php';
    $manager = new Illuminate\Redis\RedisManager(new Illuminate\Container\Container(), 'phpredis', [
        'options' => ['prefix' => 'laravel_database_'],
        'default' => ['host' => '127.0.0.1', 'port' => $port, 'database' => 0, 'read_timeout' => BENCH_TIMEOUT],
    ]);
    $broadcaster = new Illuminate\Broadcasting\Broadcasters\RedisBroadcaster($manager, null, 'laravel_database_');
    // BroadcastEvent's payload: broadcastWith() merged with the socket id.
    $illuminatePayload = array_merge($event, ['socket' => null]);
}
$io = (new QrPush\SocketIo($plain))->to('room:42');
$sharded = (new QrPush\SocketIo($plain, ['adapter' => 'sharded']))->to('room:42');
$streams = (new QrPush\SocketIo($plain, ['adapter' => 'streams']))->to('room:42');

function cpu_us(array $usage): float
{
    return $usage['ru_utime.tv_sec'] * 1e6 + $usage['ru_utime.tv_usec'] + $usage['ru_stime.tv_sec'] * 1e6 + $usage['ru_stime.tv_usec'];
}

$contenders = [
    'qrpush-publish' => static fn () => $plain->publish('events', $event),
    'qrpush-laravel-1' => static fn () => $client->broadcast('orders', 'App\Events\LoginConfirmed', $event),
    'qrpush-laravel-3' => static fn () => $client->broadcast($three, 'App\Events\LoginConfirmed', $event),
    'laravel-phpredis-1' => static fn () => $laravel(['orders'], 'App\Events\LoginConfirmed', $event, null),
    'laravel-phpredis-3' => static fn () => $laravel($three, 'App\Events\LoginConfirmed', $event, null),
    ...($illuminate === null ? [] : [
        'laravel-illuminate-1' => static fn () => $broadcaster->broadcast(['orders'], 'App\Events\LoginConfirmed', $illuminatePayload),
        'laravel-illuminate-3' => static fn () => $broadcaster->broadcast($three, 'App\Events\LoginConfirmed', $illuminatePayload),
    ]),
    'qrpush-socketio' => static fn () => $io->emit('login', $event),
    'qrpush-socketio-sharded' => static fn () => $sharded->emit('login', $event),
    'qrpush-socketio-streams' => static fn () => $streams->emit('login', $event),
];
// Warm every contender (connection made, code paths hot), then measure them in turns, run by run,
// so that a change of load on the machine touches every contender alike.
foreach ($contenders as $publish) {
    for ($i = 0; $i < min(200, $n); $i++) {
        $publish();
    }
}
$wall = $cpu = [];
for ($r = 0; $r < $runs; $r++) {
    foreach ($contenders as $name => $publish) {
        $u = getrusage();
        $t = hrtime(true);
        for ($i = 0; $i < $n; $i++) {
            $publish();
        }
        $wall[$name][] = (hrtime(true) - $t) / 1000 / $n;
        $cpu[$name][] = (cpu_us(getrusage()) - cpu_us($u)) / $n;
    }
}
foreach ($contenders as $name => $_) {
    echo json_encode(['name' => $name, 'n' => $n, 'runs' => $wall[$name], 'cpu' => $cpu[$name]]), "\n";
}
