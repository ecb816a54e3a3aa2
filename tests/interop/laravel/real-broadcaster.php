<?php

/**
 * Laravel's real RedisBroadcaster (Debian's Illuminate 10.48, over phpredis, as a Laravel app
 * configures it: RedisManager with the `phpredis` client and `options.prefix`, the broadcaster given
 * the same prefix) and QrPush::broadcast() publish every case of the fixture; a raw subscriber
 * checks that both put exactly the fixture's bytes on exactly its channels.
 *   php real-broadcaster.php REDIS_PORT ILLUMINATE_DIR   (tests/interop/run; phpredis and the extension loaded)
 * Prints one line per case and publisher, then "N passed, N failed"; exits 1 on a failure.
 */

declare(strict_types=1);

[, $port, $illuminate] = $argv;
require $illuminate . '/Illuminate/Broadcasting/autoload.php';
require $illuminate . '/Illuminate/Redis/autoload.php';
require __DIR__ . '/../../php/Support/Resp.php';

use Illuminate\Broadcasting\Broadcasters\RedisBroadcaster;
use Illuminate\Container\Container;
use Illuminate\Redis\RedisManager;
use QrPush\Tests\RespConnection;

$subscriber = new RespConnection('127.0.0.1', (int) $port);
$subscriber->send('PSUBSCRIBE', '*');
$subscriber->read(5.0, true);

/** @return list<array{0: string, 1: string}> the next $n messages as [channel, payload] */
$receive = static function (int $n) use ($subscriber): array {
    $got = [];
    while (\count($got) < $n && ($reply = $subscriber->read(5.0)) !== null) {
        $got[] = [$reply[2], $reply[3]];
    }
    return $got;
};

$passed = $failed = 0;
foreach (require __DIR__ . '/broadcast-fixture.php' as $name => $case) {
    $manager = new RedisManager(new Container(), 'phpredis', [
        'options' => ['prefix' => $case['prefix']],
        'default' => ['host' => '127.0.0.1', 'port' => (int) $port, 'database' => 0],
    ]);
    $publishers = [
        'Laravel RedisBroadcaster' => static function () use ($manager, $case): void {
            // What BroadcastEvent::handle() passes: the payload merged with the socket id.
            $payload = array_merge($case['data'], ['socket' => $case['socket']]);
            (new RedisBroadcaster($manager, null, $case['prefix']))->broadcast($case['channels'], $case['event'], $payload);
        },
        'QrPush::broadcast()' => static function () use ($port, $case): void {
            $client = new QrPush\Client("redis://127.0.0.1:{$port}", ['channel_prefix' => $case['prefix']]);
            $client->broadcast($case['channels'], $case['event'], $case['data'], $case['socket']);
        },
    ];
    $expected = array_map(null, array_map('strval', array_keys($case['published'])), array_values($case['published']));
    foreach ($publishers as $publisher => $publish) {
        $publish();
        $got = $receive(\count($expected));
        if ($got === $expected) {
            $passed++;
            echo "ok      {$name}: {$publisher} published the fixture's bytes\n";
        } else {
            $failed++;
            echo "FAILED  {$name}: {$publisher} published ", json_encode($got, JSON_UNESCAPED_SLASHES), "\n",
                "        expected ", json_encode($expected, JSON_UNESCAPED_SLASHES), "\n";
        }
    }
}
echo "{$passed} passed, {$failed} failed\n";
exit($failed === 0 ? 0 : 1);
