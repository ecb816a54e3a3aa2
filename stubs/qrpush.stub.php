<?php

/**
 * QrPush — publish to Redis Pub/Sub from PHP over pooled persistent connections.
 *
 * This file is the API reference of the `qrpush` extension. It is not loaded by PHP: IDEs and static
 * analysers read it, and tests/php/StubTest.php checks that it matches the extension's reflection
 * exactly (classes, parents, methods, parameter names, types and defaults, return types, constants).
 *
 * Accepted messages (the `$message` parameters):
 *  - string: published byte-for-byte;
 *  - array, \stdClass, \JsonSerializable, \BackedEnum: encoded to JSON by the extension, byte-identical to
 *    json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION).
 * Anything else (int, float, bool, null, other objects, closures, resources) is a \TypeError; invalid
 * UTF-8, NAN/INF and recursion are a \ValueError. Nothing is published when an argument is rejected.
 *
 * @generated-by hand; kept equal to reflection by tests/php/StubTest.php
 */

/**
 * Static facade over the process-wide default client configured by the `qrpush.*` php.ini directives.
 *
 * The first call in a process opens a connection; later calls (and later requests served by the same
 * php-fpm worker) reuse it.
 */
final class QrPush
{
    /** The extension's version (the same as `phpversion('qrpush')`). */
    public const VERSION = '0.1.0';

    /**
     * Publishes one message to a channel (Redis PUBLISH), prefixed with `qrpush.channel_prefix`.
     *
     * @param string $channel Channel name: non-empty, no ASCII control characters (CR, LF, NUL, ...).
     * @param mixed $message string|array|\stdClass|\JsonSerializable|\BackedEnum (see the file header).
     * @return int The number of subscribers that received the message (0 when nobody listens).
     * @throws \ValueError Empty or invalid channel, message larger than `qrpush.max_payload`, unencodable value.
     * @throws \TypeError A message of a type that cannot be published.
     * @throws \QrPush\ConnectionException Redis cannot be reached, or the connection was lost.
     * @throws \QrPush\TimeoutException Redis did not answer within `qrpush.connect_timeout` + `qrpush.timeout`.
     * @throws \QrPush\ServerException Redis answered with an error (NOAUTH, WRONGPASS, NOPERM, ...).
     * @see \QrPush\Client::publish()
     * @example QrPush::publish('qr-login-events', ['sessionId' => $sid, 'status' => 'confirmed']);
     */
    public static function publish(string $channel, mixed $message): int {}

    /**
     * Publishes many messages in one round trip (pipelined PUBLISH commands).
     *
     * Every pair is validated and encoded before anything is sent: one bad pair means nothing is published.
     *
     * @param array $messages A list of [string $channel, mixed $message] pairs.
     * @return array<int, int> The receiver count of each message, in input order.
     * @throws \ValueError|\TypeError|\QrPush\Exception As publish(); a ServerException names the failing index.
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
     *     endpoint: string, pid: int}
     *     `last_error` and `endpoint` never contain a password.
     * @example var_dump(QrPush::stats()['published']);
     */
    public static function stats(): array {}
}

namespace QrPush;

/**
 * A client for one Redis endpoint, for apps that talk to more than one Redis or need other options than
 * php.ini's. Clients with the same endpoint and credentials share one connection pool per process.
 */
final class Client
{
    /**
     * Validates the configuration; connects lazily, on the first call that needs Redis.
     *
     * @param string|null $url `redis://[user[:password]@]host[:port][/db]` or `unix:///path/redis.sock`
     *     (Unix only); null means `qrpush.url`.
     * @param array $options Keys are the php.ini directive names without `qrpush.`: `connect_timeout`,
     *     `timeout`, `pool_size`, `channel_prefix`, `max_payload`. Unset keys come from php.ini.
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
}

/** Root of every exception QrPush throws for a Redis problem. Invalid arguments are \ValueError/\TypeError. */
class Exception extends \RuntimeException
{
}

/** Redis cannot be reached (refused, unresolvable, unix socket missing) or the connection was lost. */
class ConnectionException extends Exception
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
