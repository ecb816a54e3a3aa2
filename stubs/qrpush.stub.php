<?php

/**
 * QrPush — publish to Redis Pub/Sub from PHP over pooled persistent connections.
 *
 * This file is the API reference of the `qrpush` extension, for IDEs and static analysers. It is valid
 * PHP (`php -l`; bracketed namespaces, as PHP's own stubs mix global and namespaced classes) and is
 * never loaded next to the extension: tests/php/StubTest.php loads it into a PHP without the extension
 * and checks that its reflection matches the extension's exactly (classes, parents, methods,
 * parameter names, types and defaults, return types, constants).
 *
 * Accepted messages (the `$message` parameters):
 *  - string: published byte-for-byte;
 *  - array, \stdClass, \JsonSerializable, \BackedEnum: encoded to JSON by the extension, byte-identical to
 *    json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION),
 *    floats with the current serialize_precision.
 * Anything else (int, float, bool, null, other objects, closures, resources) is a \TypeError; invalid
 * UTF-8, NAN/INF and recursion are a \ValueError. Nothing is published when an argument is rejected.
 *
 * @generated-by hand; kept equal to reflection by tests/php/StubTest.php
 */

namespace {
    /**
     * Static facade over the default client of the `qrpush.*` directives in effect for the request (php.ini,
     * or per pool, location, vhost or directory: they are PHP_INI_PERDIR).
     *
     * The first call in a process opens a connection; later calls (and later requests served by the same
     * php-fpm worker, whatever their directives) reuse the connections of the same endpoint.
     */
    final class QrPush
    {
        /** The extension's version (the same as `phpversion('qrpush')`). */
        public const VERSION = '0.1.0';

        /**
         * Not constructible: QrPush is a static facade. Calling `new` throws an \Exception.
         */
        public function __construct() {}

        /**
         * Publishes one message to a channel (Redis PUBLISH), prefixed with `qrpush.channel_prefix`.
         *
         * @param string $channel Channel name: non-empty, no ASCII control characters (CR, LF, NUL, ...).
         * @param mixed $message string|array|\stdClass|\JsonSerializable|\BackedEnum (see the file header).
         * @return int The number of subscribers that received the message (0 when nobody listens).
         * @throws \ValueError Empty or invalid channel, message larger than `qrpush.max_payload`, unencodable value.
         * @throws \TypeError A message of a type that cannot be published.
         * @throws \QrPush\ConnectionException Redis cannot be reached, or the connection was lost.
         * @throws \QrPush\ReplicaException The server is a replica (or was demoted): nothing was delivered.
         * @throws \QrPush\TimeoutException Redis did not answer in time: every call returns or throws within
         *     `qrpush.connect_timeout` + `qrpush.timeout` + 50 ms, DNS and waiting for a pooled connection included.
         * @throws \QrPush\ServerException Redis answered with an error (NOAUTH, WRONGPASS, NOPERM, ...).
         * @see \QrPush\Client::publish()
         * @example QrPush::publish('qr-login-events', ['sessionId' => $sid, 'status' => 'confirmed']);
         */
        public static function publish(string $channel, mixed $message): int {}

        /**
         * Publishes many messages in one round trip (pipelined PUBLISH commands).
         *
         * Every pair is validated and encoded before anything is sent: one bad pair means nothing is published.
         * Redis then runs each PUBLISH on its own: one it refuses (NOPERM on a channel outside the ACL user's
         * patterns) does not roll back the others. When some messages were published and others not, a
         * \QrPush\PartialBatchException says which; sending the whole batch again would duplicate the published ones.
         *
         * @param array $messages A list of [string $channel, mixed $message] pairs, together at most
         *     `qrpush.max_batch_payload` bytes once encoded.
         * @return array<int, int> The receiver count of each message, in input order.
         * @throws \ValueError|\TypeError As publish(), naming the failing index; also a batch over `qrpush.max_batch_payload`.
         * @throws \QrPush\PartialBatchException Some messages were published and some were not (or may not have been).
         * @throws \QrPush\Exception As publish(), when no message was published.
         * @example QrPush::publishMany([['news', 'hello'], ['user:42', ['unread' => 3]]]);
         */
        public static function publishMany(array $messages): array {}

        /**
         * Measures one round trip to Redis (PING), for health checks.
         *
         * @return float The round-trip time in seconds.
         * @throws \QrPush\Exception When Redis cannot be reached within the time bound.
         * @example if (QrPush::ping() > 0.05) { error_log('redis is slow'); }
         */
        public static function ping(): float {}

        /**
         * Counters of the default client's connection pool in this process.
         *
         * @return array{published: int, failed: int, reconnects: int, connections_created: int,
         *     pool_size: int, pool_idle: int, pool_in_use: int, last_error: ?string,
         *     latency_us: array{p50: int, p90: int, p99: int, max: int, count: int},
         *     endpoint: string, pid: int,
         *     breaker: array{state: string, opened_at: ?float, fast_failures: int, trips: int},
         *     topology: array{kind: string, service: ?string, primary: ?string, failovers: int, redirects: int}}
         *     `last_error` and `endpoint` never contain a password. `breaker` is the circuit breaker in front of
         *     new connections: `state` is `closed`, `open` (a connection attempt timed out less than
         *     `qrpush.breaker_cooldown` ago: calls that need a new connection fail fast) or `half-open` (the
         *     cool-down is over: the next such call tries once); `opened_at` is when it last opened (Unix time,
         *     null while closed); `fast_failures` counts the calls it failed without trying; `trips` how often
         *     it opened. `topology.kind` is `standalone`, `cluster` (`redis-cluster://`: `redirects` counts the
         *     MOVED/ASK replies followed) or `sentinel` (`redis-sentinel://`: the `service`, the `primary` in use
         *     as host:port, null until first asked, and the `failovers` followed).
         * @example var_dump(QrPush::stats()['published']);
         */
        public static function stats(): array {}

        /**
         * Publishes an event in Laravel's Redis broadcast format, so Laravel Echo Server (or any reader of Laravel's
         * broadcasts) takes it for Laravel's own: byte for byte what `Illuminate\Broadcasting\Broadcasters\RedisBroadcaster`
         * publishes for an event whose `broadcastWith()` returns `$data`, after `->toOthers()` recorded `$socket`.
         *
         * The message is `{"event":…,"data":…,"socket":…}` encoded like Laravel's `json_encode()` (no flags: `\/`,
         * `\uXXXX`, `1.0` as `1`), where `data` is `array_merge($data, ['socket' => $socket])` (integer keys renumbered,
         * a `socket` key replaced where it is) — so the socket id is in `data` too, as in Laravel. It goes to
         * `qrpush.channel_prefix` + each channel (set the prefix to Laravel's `database.redis.options.prefix`, e.g.
         * `laravel_database_`), one PUBLISH per channel in one round trip. See docs/LARAVEL.md.
         *
         * @param string|array $channels A channel name, or a list of them, as Laravel names them: `orders` (public),
         *     `private-orders.1`, `presence-chat.1`. An empty list publishes nothing (as Laravel) and returns 0.
         * @param string $event The event name Echo listens for: the event's class (`App\Events\OrderShipped`) or its
         *     `broadcastAs()` name. Valid UTF-8.
         * @param array|null $data The event's payload (`broadcastWith()`); its values as `$message` values are accepted.
         * @param string|null $socket The socket id to leave out (Laravel's `X-Socket-ID`, `Echo.socketId()`); null: none.
         * @return int The receivers of all channels added up (one per listening Echo Server process per channel).
         * @throws \ValueError|\TypeError An invalid channel (names its index), event, socket id or payload; nothing is published.
         * @throws \QrPush\Exception As publishMany().
         * @example QrPush::broadcast('private-orders.' . $order->id, 'App\Events\OrderShipped', ['id' => $order->id], $request->header('X-Socket-ID'));
         */
        public static function broadcast(mixed $channels, string $event, ?array $data = null, ?string $socket = null): int {}

        /**
         * Publishes one message and stores it in the channel's capped Redis Stream, atomically (one Lua
         * script: XADD + PUBLISH), so a subscriber that was away can be given what it missed (the WebSocket
         * gateway replays it). Subscribers receive the message behind one header line
         * `qrpush-durable/1 <epoch> <offset>\n` (the gateway strips it).
         *
         * The stream is `qrpush:stream:{<prefix><channel>}`, trimmed to about `qrpush.stream_maxlen` entries
         * (and `qrpush.stream_max_age`); it expires `qrpush.stream_ttl` after its last publish. Never sent twice:
         * a script that may have run is not retried. On Redis Cluster it runs on the primary owning the
         * channel's slot and publishes with SPUBLISH (PUBLISH with qrpush.cluster_publish = global); there, in
         * the sharded mode, a channel with braces (whose stream key would hash to another slot) is a \ValueError.
         *
         * @param string $channel Channel name: non-empty, no ASCII control characters.
         * @param mixed $message string|array|\stdClass|\JsonSerializable|\BackedEnum (see the file header).
         * @return array{offset: string, epoch: string, receivers: int} The stream entry's id (`<ms>-<seq>`), the
         *     stream's epoch (changes when the stream is made again: history lost) and the subscribers that
         *     received the message.
         * @throws \ValueError|\TypeError|\QrPush\Exception As publish().
         * @see docs/DURABLE.md
         * @example $at = QrPush::publishDurable('notifications#42', ['text' => 'Invoice paid']); // $at['offset']
         */
        public static function publishDurable(string $channel, mixed $message): array {}

        /**
         * Durable publishes of many [channel, message] pairs in one round trip (one EVALSHA each, pipelined).
         * Every pair is validated and encoded before anything is sent.
         *
         * @param array $messages A list of [string $channel, mixed $message] pairs.
         * @return array<int, array{offset: string, epoch: string, receivers: int}> As publishDurable(), in input order.
         * @throws \ValueError|\TypeError|\QrPush\Exception As publishMany().
         * @example QrPush::publishManyDurable([['news', 'a'], ['notifications#42', ['unread' => 3]]]);
         */
        public static function publishManyDurable(array $messages): array {}

        /**
         * A signed token with which a browser joins channels on the WebSocket gateway
         * (`wss://host/ws?token=...`), signed with `qrpush.gateway_secret` (the gateway's secret).
         *
         * A channel `<name>#<user>[,<user>...]` is private to the users after its last `#`: the token must be for
         * one of them. The QR login's channels (`qrpush.login_channel`) are refused: only login tokens reach them.
         *
         * @param array $channels 1 to 32 distinct channel names (without `qrpush.channel_prefix`).
         * @param int $ttl Lifetime in seconds, 1 to 604800 (7 days).
         * @param string|null $user The user the token is for (needed for private channels).
         * @return string The token (`c1.` followed by URL-safe text).
         * @throws \ValueError A bad channel list, ttl or user; no `qrpush.gateway_secret` set.
         * @throws \TypeError A channel that is not a string.
         * @see docs/CHANNELS.md
         * @example $token = QrPush::subscriptionToken(['news', "notifications#$userId"], 3600, (string) $userId);
         */
        public static function subscriptionToken(array $channels, int $ttl, ?string $user = null): string {}
    }
}

namespace QrPush {
    /**
     * A client for one Redis endpoint, for apps that talk to more than one Redis or need other options than
     * php.ini's. Clients with the same endpoint and credentials share one connection pool per process.
     */
    final class Client
    {
        /**
         * Validates the configuration; connects lazily, on the first call that needs Redis.
         *
         * @param string|null $url `redis://[user[:password]@]host[:port][/db]`, `unix:///path/redis.sock`
         *     (Unix only), `redis-cluster://[[user]:password@]seed1:port[,seed2:port...]` for Redis Cluster, or
         *     `redis-sentinel://[[user]:password@]host1[:26379][,host2[:port]...][/db]#service` for Sentinel
         *     (`rediss://`, `rediss-cluster://`, `rediss-sentinel://` with TLS); null means `qrpush.url`.
         * @param array $options Keys are the php.ini directive names without `qrpush.`: `connect_timeout`,
         *     `timeout`, `pool_size`, `channel_prefix`, `max_payload`, `max_batch_payload`, `breaker_cooldown`,
         *     `idle_check_after`, `cluster_publish`, ... Unset keys come from php.ini.
         * @throws \ValueError A malformed URL, an unknown option key or an invalid option value.
         * @example $c = new QrPush\Client('redis://app:secret@127.0.0.1:6380/0', ['timeout' => 0.5]);
         */
        public function __construct(?string $url = null, ?array $options = null) {}

        /**
         * Publishes one message to a channel. See \QrPush::publish().
         *
         * @param string $channel Channel name: non-empty, no ASCII control characters.
         * @param mixed $message string|array|\stdClass|\JsonSerializable|\BackedEnum.
         * @return int The number of subscribers that received the message.
         * @throws \ValueError|\TypeError|\QrPush\Exception As \QrPush::publish().
         */
        public function publish(string $channel, mixed $message): int {}

        /**
         * Publishes many [channel, message] pairs in one round trip. See \QrPush::publishMany().
         *
         * @param array $messages A list of [string $channel, mixed $message] pairs.
         * @return array<int, int> The receiver count of each message, in input order.
         * @throws \ValueError|\TypeError|\QrPush\Exception As \QrPush::publishMany().
         */
        public function publishMany(array $messages): array {}

        /**
         * Measures one round trip to Redis (PING).
         *
         * @return float The round-trip time in seconds.
         * @throws \QrPush\Exception When Redis cannot be reached within the time bound.
         */
        public function ping(): float {}

        /**
         * Counters of this client's connection pool (shared by every client of the same endpoint).
         *
         * @return array See \QrPush::stats().
         */
        public function stats(): array {}

        /**
         * Publishes an event in Laravel's Redis broadcast format, `channel_prefix` first. See \QrPush::broadcast().
         *
         * @param string|array $channels A channel name or a list of them (`orders`, `private-orders.1`, ...).
         * @param string $event The event name.
         * @param array|null $data The event's payload.
         * @param string|null $socket The socket id to leave out.
         * @return int The receivers of all channels added up.
         * @throws \ValueError|\TypeError|\QrPush\Exception As \QrPush::broadcast().
         * @example (new QrPush\Client(null, ['channel_prefix' => 'laravel_database_']))->broadcast('orders', 'OrderShipped', ['id' => 7]);
         */
        public function broadcast(mixed $channels, string $event, ?array $data = null, ?string $socket = null): int {}

        /**
         * Durable publish with this client's Redis and options. See \QrPush::publishDurable().
         *
         * @return array{offset: string, epoch: string, receivers: int}
         * @throws \ValueError|\TypeError|\QrPush\Exception As \QrPush::publishDurable().
         */
        public function publishDurable(string $channel, mixed $message): array {}

        /**
         * Durable publishes of many pairs in one round trip. See \QrPush::publishManyDurable().
         *
         * @return array<int, array{offset: string, epoch: string, receivers: int}>
         * @throws \ValueError|\TypeError|\QrPush\Exception As \QrPush::publishManyDurable().
         */
        public function publishManyDurable(array $messages): array {}

        /**
         * A gateway subscription token signed with this client's `gateway_secret` option. See
         * \QrPush::subscriptionToken().
         *
         * @throws \ValueError|\TypeError As \QrPush::subscriptionToken().
         */
        public function subscriptionToken(array $channels, int $ttl, ?string $user = null): string {}
    }

    /**
     * Emits to Socket.IO servers that share their broadcasts through Redis with `@socket.io/redis-adapter`, as
     * `@socket.io/redis-emitter` does: `$io->of('/chat')->to('room1')->emit('message', $text)`.
     *
     * Every method but emit() returns a new object (the JavaScript emitter's operators do too): a `$io` kept in a
     * property is never changed by a call made on it. Messages are the adapter's MessagePack, published with
     * `qrpush.channel_prefix` in front of the channel:
     *  - classic adapter (`createAdapter`, the default): PUBLISH to `<key>#<namespace>#`, or
     *    `<key>#<namespace>#<room>#` when exactly one room is targeted — the emitter's message, byte for byte;
     *  - sharded adapter (`createShardedAdapter`, Redis 7+): SPUBLISH of the adapter's cluster message to the
     *    channel its `subscriptionMode` gives (a room's own channel in "dynamic" and "dynamic-private" modes).
     * See docs/SOCKETIO.md.
     */
    final class SocketIo
    {
        /**
         * An emitter for the main namespace `/`, with no room and no flag.
         *
         * @param \QrPush\Client|null $client The client to publish with (its endpoint, time bounds and `channel_prefix`);
         *     null: the default client (`qrpush.*` php.ini directives), as \QrPush::publish() uses.
         * @param array|null $options `adapter`: `classic` (default) or `sharded` (@socket.io/redis-adapter's
         *     createAdapter / createShardedAdapter), or `streams` (@socket.io/redis-streams-adapter); `key` (classic,
         *     sharded): the adapter's `key` / `channelPrefix` option (default `socket.io`); `subscription_mode`
         *     (sharded only): the adapter's `subscriptionMode`, `dynamic` (default), `static` or `dynamic-private`;
         *     `stream` (streams only): the adapter's `streamName` (default `socket.io`; a key, no channel_prefix);
         *     `stream_count` and `max_len` (streams only, ints from 1): its `streamCount` (default 1) and `maxLen`
         *     (default 10000, `XADD MAXLEN ~`). The others are strings.
         * @throws \ValueError|\TypeError An unknown option or an invalid value.
         * @example $io = new QrPush\SocketIo(null, ['adapter' => 'sharded']);
         * @example $io = new QrPush\SocketIo(null, ['adapter' => 'streams', 'stream' => 'socket.io', 'max_len' => 10000]);
         */
        public function __construct(?Client $client = null, ?array $options = null) {}

        /**
         * The same emitter in another namespace (rooms and flags start afresh, as the emitter's `of()`).
         *
         * @param string $namespace `/admin` or `admin` (a `/` is put in front).
         * @return SocketIo A new emitter.
         * @throws \ValueError Invalid UTF-8 or a control character.
         */
        public function of(string $namespace): SocketIo {}

        /**
         * Also targets the clients in `$rooms` (a set: a room is added once). No room: the whole namespace.
         *
         * @param string|array $rooms A room or a list of rooms: non-empty UTF-8 strings without control characters.
         * @return SocketIo A new emitter.
         * @throws \ValueError|\TypeError An invalid room (a list names its index).
         * @example $io->to('user:42')->emit('notification', ['unread' => 3]);
         */
        public function to(mixed $rooms): SocketIo {}

        /**
         * The same as to().
         *
         * @param string|array $rooms A room or a list of rooms.
         * @return SocketIo A new emitter.
         * @throws \ValueError|\TypeError As to().
         */
        public function in(mixed $rooms): SocketIo {}

        /**
         * Leaves out the clients in `$rooms`.
         *
         * @param string|array $rooms A room or a list of rooms.
         * @return SocketIo A new emitter.
         * @throws \ValueError|\TypeError As to().
         * @example $io->except('banned')->emit('news', $item);
         */
        public function except(mixed $rooms): SocketIo {}

        /**
         * Sets the `volatile` flag: a client that cannot take the event at once (not connected, busy) misses it.
         *
         * @return SocketIo A new emitter.
         */
        public function volatile(): SocketIo {}

        /**
         * Sets the `compress` flag: whether the servers compress the event for the clients (permessage-deflate).
         *
         * @param bool $compress The flag's value.
         * @return SocketIo A new emitter.
         */
        public function compress(bool $compress = true): SocketIo {}

        /**
         * Emits `$event` with `$args` to the targeted clients of every Socket.IO server. With the streams adapter: one
         * stream entry, which servers with connection-state recovery also replay to a client that was away.
         *
         * The arguments are what `$message` accepts, encoded as JSON would encode them (strings as UTF-8 text, arrays
         * as lists or maps, \JsonSerializable and \BackedEnum as json_encode sees them), then written as MessagePack:
         * clients receive what `JSON.parse` of that JSON gives. Binary strings (not UTF-8) are refused.
         *
         * @param string $event The event name (not one Socket.IO reserves: connect, connect_error, disconnect,
         *     disconnecting, newListener, removeListener).
         * @param mixed ...$args The event's arguments.
         * @return int Redis's receiver count: the Socket.IO server processes that got the message (classic: every
         *     server of the namespace; sharded: the subscribers of its channel); streams: 1, the entry appended.
         * @throws \ValueError|\TypeError An invalid event or argument; nothing is published.
         * @throws \QrPush\Exception As \QrPush::publish(); an `ERR unknown command` ServerException for the sharded
         *     adapter means Redis is older than 7.
         * @example $io->of('/chat')->to('room1')->emit('message', 'hello', ['from' => 'php']);
         */
        public function emit(string $event, mixed ...$args): int {}
    }

    /** Root of every exception QrPush throws for a Redis problem. Invalid arguments are \ValueError/\TypeError. */
    class Exception extends \RuntimeException
    {
    }

    /**
     * Redis cannot be reached (refused, unresolvable, unix socket missing) or the connection was lost; or the
     * circuit breaker is open: a connection attempt timed out less than `qrpush.breaker_cooldown` seconds ago,
     * so the call failed at once without trying ("circuit open for Redis at ... retrying after X s").
     */
    class ConnectionException extends Exception
    {
    }

    /**
     * The server is not the primary: a replica (or a Sentinel). A replica runs PUBLISH for its own subscribers
     * only, so QrPush never publishes through one: a new connection checks the server's role (ROLE) while
     * logging in, and a pooled connection whose server was demoted (a failover, REPLICAOF) is caught by the
     * check sent with every publish (WAIT 0 0, which a replica refuses). Nothing was delivered: the call may be
     * retried, e.g. once the address (DNS name, VIP) points at the new primary. Code 5.
     */
    class ReplicaException extends ConnectionException
    {
    }

    /** Redis did not answer within the configured time bound (`connect_timeout`, `timeout`). */
    class TimeoutException extends Exception
    {
    }

    /** Redis answered with an error reply (NOAUTH, WRONGPASS, NOPERM, ...). The message starts with its code. */
    class ServerException extends Exception
    {
    }

    /**
     * publishMany() when Redis published some messages of the batch and not others. Code 6. The message gives the
     * counts and the first failure. Send again only what getFailures() says was not published.
     */
    class PartialBatchException extends Exception
    {
        private $results;
        private $failures;

        /**
         * The messages Redis published.
         *
         * @return array<int, int> Index in the batch => the number of subscribers that received it.
         */
        public function getResults(): array {}

        /**
         * The other messages, each with why.
         *
         * @return array<int, \QrPush\Exception> Index in the batch => a \QrPush\ServerException when Redis refused it
         *     (it was not published: safe to send again), a \QrPush\ReplicaException when a demoted primary ran it for
         *     nobody (safe to send again), a \QrPush\TimeoutException or \QrPush\ConnectionException when the
         *     connection failed before its reply (it may have been published: sending it again may duplicate it).
         */
        public function getFailures(): array {}
    }

    /**
     * QR login, the publisher side: an atomic state machine in Redis that publishes every transition.
     *
     *   pending --scan()--> scanned --approve()--> approved --redeem()--> redeemed
     *                          `--reject()--> rejected       `--(3 wrong confirmation codes)--> cancelled
     *   pending|scanned|approved --cancel()--> cancelled;  a passed deadline --> expired
     *
     * Whoever scans a QR code first binds its login, and the QR code is on a screen anyone nearby can see.
     * So the browser never redeems on its own: status() with the browser secret tells it who approved (the
     * display name given to approve()), the browser asks its user "continue as <name>?" and for the code the
     * approving phone shows (approve()'s `confirmation_code`), and redeem() refuses any other code. An
     * attacker who scans a victim's QR code and approves cannot log the victim into the attacker's account
     * (login CSRF): the victim never sees the code. Scans are limited per user (qrpush.login_scan_limit per
     * qrpush.login_scan_window). The threat model: docs/LOGIN-THREAT-MODEL.md.
     *
     * Every call is one Lua script run on the default client's pooled connections (same `qrpush.url`, time
     * bounds and `qrpush.channel_prefix` as \QrPush::publish()): it checks the state, writes the new state and
     * its TTL, and PUBLISHes the event, so state and events never disagree and of concurrent calls only one
     * wins. A refused call throws a \QrPush\LoginException subclass and changes nothing, publishes nothing
     * (except that a wrong confirmation code is counted).
     *
     * Redis stores, per login, one hash `qrpush:login:<sha256(id)>` (on Redis Cluster
     * `qrpush:login:{<tag>}<sha256(id)>`, in the slot of the login's event channel; the script then
     * publishes with SPUBLISH, or PUBLISH with qrpush.cluster_publish = global): state, version, times, the scanning user,
     * device and display name, the browser's IP and user agent, and SHA-256 hashes of the QR token, browser
     * secret, ticket and confirmation code — never a secret, nor the login id itself; per scanning user, one
     * hash `qrpush:login:scans:<sha256(user id)>` with the times of their recent scans (a scan is
     * reserved there under the limit before the login moves, and given back when the move is refused). Exception messages
     * never contain a secret.
     *
     * Events (JSON) go to `qrpush.login_channel` (mode `single`, the default, the single-channel format:
     * every event also carries `sessionId` = login id, to route on) or to `<login_channel>:<id>` (mode
     * `per_login`), both after `qrpush.channel_prefix`:
     *   {"v":1,"type":"scanned|approved|rejected|redeemed|cancelled|expired","loginId":"<id>",
     *    ["sessionId":"<id>",] "seq":<state version>,"ts":<Redis time, ms>,"data":{...}}
     * data: scanned {"expiresAt":ms}, approved {"ticket":"...","expiresAt":ms}, expired {"from":"<state>"},
     * cancelled {"reason":"wrong_code"} after the last wrong confirmation code, others {}. Events never carry
     * the user id, display name, confirmation code, IP or user agent. `seq` is the login's version after the transition (2 = scanned, 3 = approved/rejected, ...):
     * a subscriber can drop duplicates and detect gaps; status() returns the same version.
     *
     * Status arrays (every method but redeem() returns one):
     *   array{id: string, state: string, version: int, created_at_ms: int, expires_at_ms: ?int, channel: string}
     * `expires_at_ms` is the deadline of a live login (pending/scanned: qrpush.login_pending_ttl after start;
     * approved: qrpush.login_approved_ttl after approve) and null once it is finished; a finished login stays
     * readable for qrpush.login_terminal_ttl, then it is gone (LoginNotFoundException).
     *
     * Ids, QR texts, tickets and secrets are accepted as any bytes: forged input is refused with the login
     * exception it deserves (mostly LoginNotFoundException), never a \TypeError.
     */
    final class Login
    {
        /**
         * Not constructible: QrPush\Login is a static facade. Calling `new` throws an \Exception.
         */
        public function __construct() {}

        /**
         * Creates a pending login, for the browser that wants to log in.
         *
         * @param string $browserIp The browser's address as the app sees it (shown to the phone); at most 64 bytes.
         * @param string $userAgent The browser's User-Agent (shown to the phone); cut to 512 bytes.
         * @return array The status array plus `qr` (the QR code's text, `<id>.<43 base64url chars>`) and
         *     `browser_secret` (43 base64url chars: put it in an HttpOnly SameSite=Strict cookie, never in the page),
         *     and `gateway_token`: the WebSocket gateway's handshake token for this login (`<id>.<expiry ms>.<key id>.<HMAC>`,
         *     signed with qrpush.gateway_secret, valid until the login can no longer change; the page may see it),
         *     or null when qrpush.gateway_secret is empty.
         * @throws \ValueError A browser IP longer than 64 bytes.
         * @throws \QrPush\Exception Redis could not be reached in time (ConnectionException, TimeoutException, ...).
         * @example $login = QrPush\Login::start($_SERVER['REMOTE_ADDR'], $_SERVER['HTTP_USER_AGENT'] ?? '');
         */
        public static function start(string $browserIp, string $userAgent): array {}

        /**
         * The logged-in phone user scanned `$qr`: binds the login to `$userId` (pending → scanned).
         *
         * @param string $qr The scanned text.
         * @param string $userId The phone's user: non-empty UTF-8, at most 256 bytes, no control characters.
         * @param string $deviceInfo A description of the phone (returned by nothing but stored); at most 1024 bytes.
         * @return array The status array plus `browser_ip` and `browser_user_agent`: show them, with
         *     `created_at_ms`, before the user approves (the QRLJacking defence).
         * @throws \QrPush\LoginNotFoundException Not a QR code of a login (or a forged, unknown or removed one).
         * @throws \QrPush\LoginExpiredException|\QrPush\LoginStateException Expired, or already scanned/finished
         *     (another phone scanned it first: tell the user the code may have been copied).
         * @throws \QrPush\LoginRateLimitedException `$userId` scanned qrpush.login_scan_limit logins within the last
         *     qrpush.login_scan_window seconds; nothing changed (refused scans are not counted).
         * @throws \ValueError An invalid user id or device info.
         */
        public static function scan(string $qr, string $userId, string $deviceInfo): array {}

        /**
         * The scanning user confirms (scanned → approved). Publishes `approved` with a new one-time ticket; the
         * phone never sees it. The browser has qrpush.login_approved_ttl seconds to redeem it, with the code
         * returned here.
         *
         * @param string $userId The user who scanned.
         * @param string $displayName How the browser will name the approving account before it redeems ("continue
         *     as <name>?"): non-empty UTF-8, at most 128 bytes, no control characters. Not a secret: the person at
         *     the browser may not be this user, so a name, not an email address or a private id.
         * @return array The status array plus `confirmation_code` (2 digits): show it on the phone, for its user to
         *     type into the browser. Never send it to the browser yourself.
         * @throws \QrPush\LoginWrongUserException Another user scanned this login.
         * @throws \QrPush\LoginStateException The login is not scanned (pending, already approved, finished).
         * @throws \QrPush\LoginNotFoundException|\QrPush\LoginExpiredException
         * @throws \ValueError An invalid user id or display name.
         */
        public static function approve(string $loginId, string $userId, string $displayName): array {}

        /**
         * The scanning user declines (scanned → rejected). Publishes `rejected`.
         *
         * @return array The status array.
         * @throws \QrPush\LoginWrongUserException|\QrPush\LoginStateException|\QrPush\LoginNotFoundException|\QrPush\LoginExpiredException
         */
        public static function reject(string $loginId, string $userId): array {}

        /**
         * The browser trades the ticket (from the `approved` event, or from status()), its secret and the
         * confirmation code its user typed for the user id, exactly once (approved → redeemed). Publishes
         * `redeemed`. Start a fresh session after it.
         *
         * @param string $confirmationCode What the browser's user typed: the code the approving phone shows
         *     (approve()'s `confirmation_code`), after being shown who approved (status()'s `approver_name`).
         * @return string The user id given to scan().
         * @throws \QrPush\LoginWrongSecretException The browser secret does not match (checked before the state).
         * @throws \QrPush\LoginTicketUsedException The login was already redeemed (a replayed ticket).
         * @throws \QrPush\LoginWrongTicketException The ticket does not match (forged, or replaced by status()).
         * @throws \QrPush\LoginWrongCodeException The code is not the approving phone's. Counted: the 3rd wrong code
         *     cancels the login (published as `cancelled` with {"reason":"wrong_code"}); the ticket stays valid
         *     until then.
         * @throws \QrPush\LoginStateException The login is not approved.
         * @throws \QrPush\LoginNotFoundException|\QrPush\LoginExpiredException
         */
        public static function redeem(string $loginId, string $ticket, string $browserSecret, string $confirmationCode): string {}

        /**
         * The browser gives up (pending/scanned/approved → cancelled). Publishes `cancelled`.
         *
         * @return array The status array.
         * @throws \QrPush\LoginWrongSecretException|\QrPush\LoginStateException|\QrPush\LoginNotFoundException|\QrPush\LoginExpiredException
         */
        public static function cancel(string $loginId, string $browserSecret): array {}

        /**
         * The login's current state, for a browser that reconnects or polls (Pub/Sub is at-most-once). A live
         * login past its deadline becomes `expired` here (and `expired` is published).
         *
         * @param string|null $browserSecret With the browser secret, an approved login's status also carries
         *     `ticket`: a new one, which replaces the event's (so a browser that missed `approved` can redeem),
         *     and `approver_name`: the display name given to approve(), to show before asking for the code.
         * @return array The status array (+ `ticket` and `approver_name`).
         * @throws \QrPush\LoginWrongSecretException A browser secret was given and does not match.
         * @throws \QrPush\LoginNotFoundException Unknown, forged, or finished longer ago than qrpush.login_terminal_ttl.
         */
        public static function status(string $loginId, ?string $browserSecret = null): array {}
    }

    /** Root of QR-login refusals (never thrown itself). getCode() is one of the constants. Nothing changed in Redis. */
    class LoginException extends Exception
    {
        public const NOT_FOUND = 101;
        public const EXPIRED = 102;
        public const WRONG_STATE = 103;
        public const WRONG_USER = 104;
        public const WRONG_SECRET = 105;
        public const WRONG_TICKET = 106;
        public const TICKET_USED = 107;
        public const WRONG_CODE = 108;
        public const RATE_LIMITED = 109;
    }

    /** No such login: an unknown or forged id or QR code, or one removed after expiring (code 101). */
    class LoginNotFoundException extends LoginException
    {
    }

    /** The login's deadline passed (code 102). */
    class LoginExpiredException extends LoginException
    {
    }

    /** The transition is not allowed from the login's current state, e.g. approve() twice (code 103). */
    class LoginStateException extends LoginException
    {
    }

    /** approve()/reject() by a user other than the one who scanned (code 104). */
    class LoginWrongUserException extends LoginException
    {
    }

    /** The browser secret does not match (code 105). */
    class LoginWrongSecretException extends LoginException
    {
    }

    /** The ticket does not match (code 106). */
    class LoginWrongTicketException extends LoginException
    {
    }

    /** The login was already redeemed: the ticket was used (code 107). */
    class LoginTicketUsedException extends LoginException
    {
    }

    /** redeem() with a confirmation code other than the approving phone's; the 3rd cancels the login (code 108). */
    class LoginWrongCodeException extends LoginException
    {
    }

    /** scan() by a user who scanned qrpush.login_scan_limit logins within qrpush.login_scan_window (code 109). */
    class LoginRateLimitedException extends LoginException
    {
    }
}
