<?php

/**
 * What Laravel itself publishes to Redis for four broadcasts: written by reading Laravel's source
 * (laravel/framework 10.x to 13.x, src/Illuminate/Broadcasting; these parts have not changed since
 * 5.x), not by running QrPush. tests/php/LaravelBroadcastTest.php checks that QrPush::broadcast()
 * publishes exactly these bytes to exactly these channels; tests/interop/laravel checks that
 * Laravel Echo Server delivers them to a laravel-echo client.
 *
 * How every byte follows from Laravel's code, for an event class with `broadcastOn()`,
 * `broadcastWith()` (the `data` below) and perhaps `broadcastAs()`, dispatched with
 * `broadcast($event)` or `broadcast($event)->toOthers()`:
 *
 * 1. Payload. `BroadcastEvent::getPayloadFromEvent()` returns
 *        array_merge($event->broadcastWith(), ['socket' => data_get($event, 'socket')])
 *    `socket` is the `InteractsWithSockets` property that `toOthers()` sets to
 *    `Broadcast::socket()` (the request's `X-Socket-ID` header, sent by laravel-echo), else null.
 *    array_merge() renumbers integer keys from 0 and replaces an existing `socket` key in place;
 *    otherwise `socket` comes last. So `data` always has a `socket` key: a list payload becomes a
 *    JSON object (case "list").
 * 2. Event name. `BroadcastEvent::handle()` uses `broadcastAs()` if the event has it, else
 *    `get_class($event)`, e.g. `App\Events\OrderShipped` (case "public": laravel-echo's default
 *    namespace `App.Events` turns `.listen('OrderShipped')` into that name).
 * 3. Message. `RedisBroadcaster::broadcast()` does
 *        $payload = json_encode(['event' => $event, 'data' => $payload,
 *                                'socket' => Arr::pull($payload, 'socket')]);
 *    PHP builds the array literal left to right: `data` is a copy of the payload taken before
 *    Arr::pull() removes `socket` from the variable, so the socket id appears twice, inside
 *    `data` and as the top-level `socket`. Keys in this order: event, data, socket.
 * 4. Spelling. json_encode() is called without flags, so:
 *    - `/` is escaped: `https:\/\/shop.test\/orders\/42` (JSON_UNESCAPED_SLASHES not set);
 *    - every non-ASCII character is `\u` + 4 lowercase hex digits of its UTF-16 code unit(s):
 *      ü = `\u00fc`, ß = `\u00df`, 👋 (U+1F44B) = the surrogate pair `\ud83d\udc4b`, U+2028 =
 *      `\u2028` (JSON_UNESCAPED_UNICODE not set);
 *    - `"` and `\` are `\"` and `\\` (`App\\Events\\OrderShipped`); tab is `\t`; `<` stays;
 *    - floats use serialize_precision -1 (the shortest round-trip digits) and, without
 *      JSON_PRESERVE_ZERO_FRACTION, no `.0`: 19.0 is `19`, -0.0 is `-0`; 1.0E+25 is `1.0e+25`
 *      (PHP's exponent form always has a fraction digit); 0.1 + 0.2 is `0.30000000000000004`;
 *    - no spaces, no newline at the end.
 * 5. Channels. `RedisBroadcaster::formatChannels()` maps each channel to `$this->prefix .
 *    (string) $channel`; BroadcastManager::createRedisDriver() passes
 *    `config('database.redis.options.prefix')` as that prefix (Laravel's default config:
 *    `Str::slug(env('APP_NAME', 'laravel'), '_').'_database_'` = `laravel_database_`).
 *    `new PrivateChannel('orders.42')` is `private-orders.42`, `new PresenceChannel('room.1')` is
 *    `presence-room.1`. The Lua script (`EVAL ... 0 payload channel...`) then runs
 *    `redis.call('publish', ARGV[i], ARGV[1])` for each channel in order: one PUBLISH per channel,
 *    the same payload bytes each time.
 *
 * Each case: the arguments of QrPush::broadcast() that stand for the Laravel event
 * (`channels` = broadcastOn() as strings, `event`, `data` = broadcastWith(), `socket`), the
 * prefix, and what Redis receives: channel => message, in publish order. The messages are
 * nowdoc strings: byte for byte, no trailing newline.
 */

return [
    // broadcast(new OrderShipped($order)) on new Channel('orders'); no broadcastAs(), no toOthers().
    'public' => [
        'prefix' => 'laravel_database_',
        'channels' => ['orders'],
        'event' => 'App\Events\OrderShipped',
        'data' => ['order' => ['id' => 42, 'total' => 19.0, 'url' => 'https://shop.test/orders/42', 'note' => "Grüße 👋"]],
        'socket' => null,
        'published' => [
            'laravel_database_orders' => <<<'JSON'
                {"event":"App\\Events\\OrderShipped","data":{"order":{"id":42,"total":19,"url":"https:\/\/shop.test\/orders\/42","note":"Gr\u00fc\u00dfe \ud83d\udc4b"},"socket":null},"socket":null}
                JSON,
        ],
    ],
    // broadcast(new OrderUpdated(...))->toOthers() on new PrivateChannel('orders.42'), with
    // broadcastAs() = 'OrderUpdated'; broadcastWith() happens to return a `socket` key (replaced
    // in place by array_merge) and an integer key 3 (renumbered to 0).
    'private' => [
        'prefix' => 'laravel_database_',
        'channels' => ['private-orders.42'],
        'event' => 'OrderUpdated',
        'data' => ['id' => 42, 'socket' => 'from-data', 3 => 'x', 'ratio' => 0.1],
        'socket' => '1234.5678',
        'published' => [
            'laravel_database_private-orders.42' => <<<'JSON'
                {"event":"OrderUpdated","data":{"id":42,"socket":"1234.5678","0":"x","ratio":0.1},"socket":"1234.5678"}
                JSON,
        ],
    ],
    // An event on two channels, a public one and a presence channel, broadcastWith() = [].
    'two-channels' => [
        'prefix' => 'laravel_database_',
        'channels' => ['orders', 'presence-room.1'],
        'event' => 'Ping',
        'data' => [],
        'socket' => null,
        'published' => [
            'laravel_database_orders' => <<<'JSON'
                {"event":"Ping","data":{"socket":null},"socket":null}
                JSON,
            'laravel_database_presence-room.1' => <<<'JSON'
                {"event":"Ping","data":{"socket":null},"socket":null}
                JSON,
        ],
    ],
    // broadcastWith() returns a list: array_merge() makes it a map with keys 0..7 and `socket`.
    // No prefix (database.redis.options.prefix = '').
    'list' => [
        'prefix' => '',
        'channels' => ['metrics'],
        'event' => 'Sample',
        'data' => [1, 2.5, -0.0, 1.0E+25, 0.1 + 0.2, true, null, "a\"b\\c\ttab <p> \u{2028}"],
        'socket' => null,
        'published' => [
            'metrics' => <<<'JSON'
                {"event":"Sample","data":{"0":1,"1":2.5,"2":-0,"3":1.0e+25,"4":0.30000000000000004,"5":true,"6":null,"7":"a\"b\\c\ttab <p> \u2028","socket":null},"socket":null}
                JSON,
        ],
    ],
];
