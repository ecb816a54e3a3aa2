<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;

/**
 * publishDurable()/publishManyDurable() and subscriptionToken() against a real redis-server: the
 * offset returned is the stream entry's id, subscribers get the header line and the exact bytes,
 * the epoch changes when the stream is made again, stream_maxlen trims, bad input publishes and
 * stores nothing; tokens carry the claims the gateway checks, signed with gateway_secret.
 */
final class DurableTest extends TestCase
{
    private const SECRET = 'durable-test-secret-0123456789abcdef';

    private RedisServer $server;
    private Client $client;
    private string $channel;
    private Subscriber $subscriber;
    private RespConnection $redis;

    protected function setUp(): void
    {
        $this->server = $this->redis();
        $this->client = self::client($this->server, ['gateway_secret' => self::SECRET]);
        $this->channel = self::channel('durable');
        $this->subscriber = $this->subscribe($this->server, $this->channel);
        $this->redis = new RespConnection('127.0.0.1', $this->server->port());
    }

    private function stream(string $channel): string
    {
        return "qrpush:stream:{{$channel}}";
    }

    public function testOffsetIsTheStreamEntryAndSubscribersGetTheHeaderAndTheBytes(): void
    {
        $first = $this->client->publishDurable($this->channel, 'hello');
        $second = $this->client->publishDurable($this->channel, ['n' => 2, 'text' => 'Zoë']);
        self::assertSame(['offset', 'epoch', 'receivers'], array_keys($first));
        self::assertSame(1, $first['receivers']);
        self::assertMatchesRegularExpression('/^[1-9]\d*-\d+$/', $first['offset']);
        self::assertMatchesRegularExpression('/^\d{16}$/', $first['epoch']);
        self::assertSame($first['epoch'], $second['epoch']);

        $entries = $this->redis->call('XRANGE', $this->stream($this->channel), '-', '+');
        self::assertSame(
            [[$first['offset'], ['d', 'hello']], [$second['offset'], ['d', '{"n":2,"text":"Zoë"}']]],
            $entries,
        );
        self::assertSame($first['epoch'], $this->redis->call('GET', $this->stream($this->channel) . ':epoch'));
        self::assertSame([
            "qrpush-durable/1 {$first['epoch']} {$first['offset']}\nhello",
            "qrpush-durable/1 {$second['epoch']} {$second['offset']}\n{\"n\":2,\"text\":\"Zoë\"}",
        ], $this->subscriber->messages(2));
        // Offsets grow.
        [$ms1, $seq1] = array_map('intval', explode('-', $first['offset']));
        [$ms2, $seq2] = array_map('intval', explode('-', $second['offset']));
        self::assertTrue($ms2 > $ms1 || ($ms2 === $ms1 && $seq2 > $seq1));
    }

    public function testBinaryMessagesAreStoredByteForByte(): void
    {
        $payload = "a\x00b\r\n\xff" . random_bytes(256);
        $at = $this->client->publishDurable($this->channel, $payload);
        self::assertSame([[$at['offset'], ['d', $payload]]], $this->redis->call('XRANGE', $this->stream($this->channel), '-', '+'));
        self::assertSame(["qrpush-durable/1 {$at['epoch']} {$at['offset']}\n{$payload}"], $this->subscriber->messages(1));
    }

    public function testTheEpochChangesWhenTheStreamIsMadeAgain(): void
    {
        $before = $this->client->publishDurable($this->channel, 'one');
        self::assertSame(1, $this->redis->call('DEL', $this->stream($this->channel)));
        $after = $this->client->publishDurable($this->channel, 'two');
        self::assertNotSame($before['epoch'], $after['epoch']);
        self::assertSame($after['epoch'], $this->client->publishDurable($this->channel, 'three')['epoch']);
        $this->subscriber->messages(3);
    }

    public function testStreamMaxlenTrimsAndTtlExpires(): void
    {
        $client = self::client($this->server, ['stream_maxlen' => 10, 'stream_ttl' => 60]);
        $offsets = [];
        foreach (array_chunk(range(1, 1000), 100) as $chunk) {
            $results = $client->publishManyDurable(array_map(fn (int $i): array => [$this->channel, "m{$i}"], $chunk));
            foreach ($results as $r) {
                $offsets[] = $r['offset'];
            }
        }
        self::assertCount(1000, array_unique($offsets));
        $stream = $this->stream($this->channel);
        $length = $this->redis->call('XLEN', $stream);
        // MAXLEN ~ trims whole nodes of the stream (100 entries by default): about 10 are kept.
        self::assertGreaterThanOrEqual(10, $length);
        self::assertLessThanOrEqual(110, $length);
        $last = $this->redis->call('XREVRANGE', $stream, '+', '-', 'COUNT', 1);
        self::assertSame([[end($offsets), ['d', 'm1000']]], $last);
        $firstKept = $this->redis->call('XRANGE', $stream, '-', '+', 'COUNT', 1)[0][0];
        self::assertSame($offsets[1000 - $length], $firstKept);
        $ttl = $this->redis->call('PTTL', $stream);
        self::assertGreaterThan(50_000, $ttl);
        self::assertLessThanOrEqual(60_000, $ttl);
        self::assertGreaterThan(50_000, $this->redis->call('PTTL', "{$stream}:epoch"));
        self::assertCount(1000, $this->subscriber->messages(1000));
    }

    public function testManyDurableKeepsOrderAcrossChannelsAndPrefix(): void
    {
        $client = self::client($this->server, ['channel_prefix' => 'app:']);
        $other = self::channel('other');
        $prefixed = $this->subscribe($this->server, "app:{$this->channel}");
        $results = $client->publishManyDurable([[$this->channel, 'a'], [$other, ['b' => 1]], [$this->channel, 'c']]);
        self::assertCount(3, $results);
        self::assertSame(1, $results[0]['receivers']);
        self::assertSame(0, $results[1]['receivers']);
        self::assertSame(
            [[$results[0]['offset'], ['d', 'a']], [$results[2]['offset'], ['d', 'c']]],
            $this->redis->call('XRANGE', $this->stream("app:{$this->channel}"), '-', '+'),
        );
        self::assertSame([[$results[1]['offset'], ['d', '{"b":1}']]], $this->redis->call('XRANGE', $this->stream("app:{$other}"), '-', '+'));
        self::assertSame([
            "qrpush-durable/1 {$results[0]['epoch']} {$results[0]['offset']}\na",
            "qrpush-durable/1 {$results[2]['epoch']} {$results[2]['offset']}\nc",
        ], $prefixed->messages(2));
        self::assertSame([], $client->publishManyDurable([]));
    }

    public function testTheScriptIsLoadedAgainAfterScriptFlush(): void
    {
        $this->client->publishDurable($this->channel, 'before');
        self::assertSame('OK', $this->redis->call('SCRIPT', 'FLUSH'));
        $results = $this->client->publishManyDurable([[$this->channel, 'x'], [$this->channel, 'y']]);
        // NOSCRIPT means the script never ran: each message is stored and published exactly once.
        self::assertCount(3, $this->redis->call('XRANGE', $this->stream($this->channel), '-', '+'));
        self::assertSame(['x', 'y'], array_map(
            static fn (string $m): string => substr($m, strpos($m, "\n") + 1),
            array_slice($this->subscriber->messages(3), 1),
        ));
        self::assertNotSame($results[0]['offset'], $results[1]['offset']);
        $this->subscriber->assertNothingMore(0.05);
    }

    public function testBadInputStoresAndPublishesNothing(): void
    {
        self::assertThrowsExactly(\ValueError::class, fn () => $this->client->publishDurable('', 'x'), 'publishDurable(): Argument #1 ($channel) must not be empty');
        self::assertThrowsExactly(\ValueError::class, fn () => $this->client->publishDurable("a\nb", 'x'), 'Argument #1 ($channel)');
        self::assertThrowsExactly(\TypeError::class, fn () => $this->client->publishDurable($this->channel, 42), 'Argument #2 ($message)');
        self::assertThrowsExactly(\ValueError::class, fn () => self::client($this->server, ['max_payload' => 4])->publishDurable($this->channel, '12345'), 'max_payload');
        self::assertThrowsExactly(
            \TypeError::class,
            fn () => $this->client->publishManyDurable([[$this->channel, 'ok'], [$this->channel, 1.5]]),
            'publishManyDurable(): Argument #1 ($messages) message #1: message',
        );
        self::assertThrowsExactly(\ValueError::class, fn () => $this->client->publishManyDurable([[$this->channel, 'ok'], ['x']]), 'message #1');
        self::assertSame(0, $this->redis->call('EXISTS', $this->stream($this->channel)));
        $this->subscriber->assertNothingMore(0.05);
    }

    public function testRedisDownIsAConnectionException(): void
    {
        $server = $this->redis();
        $client = self::client($server);
        $server->kill();
        self::assertThrowsExactly(\QrPush\ConnectionException::class, fn () => $client->publishDurable($this->channel, 'x'));
    }

    public function testSubscriptionTokenCarriesSignedClaims(): void
    {
        $before = (int) (microtime(true) * 1000);
        $token = $this->client->subscriptionToken(['news', 'notifications#42'], 3600, '42');
        $after = (int) (microtime(true) * 1000);
        self::assertMatchesRegularExpression('/^c1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/', $token);
        [, $claims, $keyId, $signature] = explode('.', $token);
        $decode = static fn (string $s): string => base64_decode(strtr($s, '-_', '+/'), true);
        $expectedKeyId = rtrim(strtr(base64_encode(substr(hash('sha256', "qrpush-gateway-key-id\n" . self::SECRET, true), 0, 6)), '+/', '-_'), '=');
        self::assertSame($expectedKeyId, $keyId);
        self::assertSame(
            hash_hmac('sha256', "qrpush-channels-v1\n{$claims}\n{$keyId}", self::SECRET, true),
            $decode($signature),
        );
        $json = json_decode($decode($claims), true, flags: JSON_THROW_ON_ERROR);
        self::assertSame(['news', 'notifications#42'], $json['ch']);
        self::assertSame('42', $json['sub']);
        self::assertGreaterThanOrEqual($before + 3_600_000, $json['exp']);
        self::assertLessThanOrEqual($after + 3_600_000, $json['exp']);

        $anonymous = $this->client->subscriptionToken(['news'], 1);
        self::assertArrayNotHasKey('sub', json_decode($decode(explode('.', $anonymous)[1]), true));
    }

    public function testSubscriptionTokenRefusals(): void
    {
        $c = $this->client;
        $f = 'QrPush\Client::subscriptionToken(): ';
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken([], 60), $f . 'Argument #1 ($channels) must name 1 to 32 channels, got 0');
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(array_map(strval(...), range(1, 33)), 60), 'got 33');
        self::assertThrowsExactly(\TypeError::class, fn () => $c->subscriptionToken(['news', 7], 60), $f . 'Argument #1 ($channels) channel #1 must be of type string, int given');
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['news', 'news'], 60), "channel #1 'news' is named twice");
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(["a\nb"], 60), 'channel #0');
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['notifications#42'], 60, '43'), "is private to the users after its '#', and the token is for user '43'");
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['notifications#42'], 60), 'for no user');
        self::assertSame(1, preg_match('/^c1\./', $c->subscriptionToken(['dialog#42,43'], 60, '43')));
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['qr-login-events'], 60), "QR login's channel");
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['news'], 0), $f . 'Argument #2 ($ttl) must be 1 to 604800 seconds, got 0');
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['news'], -5), 'got -5');
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['news'], 604801), 'got 604801');
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['news'], 60, ''), 'Argument #3 ($user)');
        self::assertThrowsExactly(\ValueError::class, fn () => $c->subscriptionToken(['news'], 60, "\xff"), 'Argument #3 ($user) must be valid UTF-8');
        self::assertThrowsExactly(
            \ValueError::class,
            fn () => self::client($this->server)->subscriptionToken(['news'], 60),
            'gateway_secret',
        );
    }
}
