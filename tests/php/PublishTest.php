<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;
use QrPush\Client;

enum PublishTestUnitEnum
{
    case One;
}

/**
 * QrPush\Client::publish()/publishMany() against a real redis-server, seen by a raw subscriber:
 * exact bytes, receiver counts, the channel prefix, order, and — for every kind of bad input —
 * the right exception with nothing published at all.
 */
final class PublishTest extends TestCase
{
    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION;

    private RedisServer $server;
    private Client $client;
    private string $channel;
    private Subscriber $subscriber;

    protected function setUp(): void
    {
        $this->server = $this->redis();
        $this->client = self::client($this->server);
        $this->channel = self::channel('publish');
        $this->subscriber = $this->subscribe($this->server, $this->channel);
    }

    public function testStringsArePublishedByteForByte(): void
    {
        $payloads = [
            'hello',
            '',
            "\xff",
            "\x00",
            "a\x00b\r\n\$3\r\nfoo\r\n*1\r\n",
            "caf\xc3\xa9 \xf0\x9f\x8e\x89",
            "\xc3\x28 not UTF-8",
            '{"already":"json"}',
            random_bytes(4096),
            str_repeat('0123456789', 50_000),
        ];
        foreach ($payloads as $payload) {
            self::assertSame(1, $this->client->publish($this->channel, $payload));
        }
        self::assertSame($payloads, $this->subscriber->messages(\count($payloads)));
        $this->subscriber->assertNothingMore(0.05);
    }

    public function testArraysAndObjectsAreEncodedAsJson(): void
    {
        $values = [
            ['sessionId' => 'abc', 'status' => 'confirmed'],
            [1, 2, 3],
            [],
            ['url' => 'https://example.com/a/b', 'name' => 'Zoë 🎉', 'ratio' => 1.0],
            (object) ['a' => 1, 'nested' => ['x' => null]],
            new \stdClass(),
        ];
        foreach ($values as $value) {
            self::assertSame(1, $this->client->publish($this->channel, $value));
        }
        self::assertSame(
            array_map(static fn ($v): string => json_encode($v, self::JSON_FLAGS), $values),
            $this->subscriber->messages(\count($values)),
        );
        self::assertSame('{"sessionId":"abc","status":"confirmed"}', json_encode($values[0], self::JSON_FLAGS));
    }

    public function testChannelNamesAreBinarySafeExceptControlCharacters(): void
    {
        foreach (["caf\xc3\xa9:\xf0\x9f\x8e\x89", "raw:\xff\x80", 'spaces are fine', str_repeat('c', 1024), '*', '[a-z]?'] as $name) {
            $subscriber = $this->subscribe($this->server, $name);
            self::assertSame(1, $this->client->publish($name, 'x'), json_encode($name, JSON_INVALID_UTF8_SUBSTITUTE));
            self::assertSame(['x'], $subscriber->messages(1));
        }
        self::assertThrowsExactly(\ValueError::class, fn () => $this->client->publish(str_repeat('c', 1025), 'x'), 'Argument #1 ($channel)');
    }

    public function testReceiverCounts(): void
    {
        self::assertSame(0, $this->client->publish(self::channel('nobody'), 'x'), 'no subscriber');
        self::assertSame(1, $this->client->publish($this->channel, 'one'), 'one subscriber');
        $this->subscribe($this->server, $this->channel);
        $this->subscribe($this->server, 'test:publish:*', pattern: true);
        self::assertSame(3, $this->client->publish($this->channel, 'three'), 'two subscribers and a pattern');
        self::assertSame(['one', 'three'], $this->subscriber->messages(2));
    }

    public function testChannelPrefixIsPrepended(): void
    {
        $all = $this->subscribe($this->server, '*', pattern: true);
        $prefixed = self::client($this->server, ['channel_prefix' => 'app:']);
        $name = self::channel('prefixed');
        $onPrefixed = $this->subscribe($this->server, "app:{$name}");

        self::assertSame(2, $prefixed->publish($name, 'p1'), 'the subscriber of app:<name> and the * pattern');
        self::assertSame([2, 2], $prefixed->publishMany([[$name, 'p2'], [$name, 'p3']]));

        self::assertSame(['p1', 'p2', 'p3'], $onPrefixed->messages(3));
        self::assertSame(
            [['channel' => "app:{$name}", 'payload' => 'p1'], ['channel' => "app:{$name}", 'payload' => 'p2'], ['channel' => "app:{$name}", 'payload' => 'p3']],
            $all->receive(3),
            'the channel Redis saw is exactly prefix + channel',
        );
        $all->assertNothingMore(0.05);
        // A client without the option publishes to the channel as given.
        self::assertSame(2, $this->client->publish($this->channel, 'plain'));
        self::assertSame([['channel' => $this->channel, 'payload' => 'plain']], $all->receive(1));
    }

    public function testPublishManyReturnsCountsInOrderAndDeliversInOrder(): void
    {
        $other = self::channel('other');
        $counts = $this->client->publishMany([
            [$this->channel, 'first'],
            [$other, 'nobody listens'],
            [$this->channel, ['second' => 2]],
            [$this->channel, "th\xffird"],
            [$other, 'again nobody'],
            [$this->channel, (object) []],
        ]);
        self::assertSame([1, 0, 1, 1, 0, 1], $counts);
        self::assertSame(['first', '{"second":2}', "th\xffird", '{}'], $this->subscriber->messages(4));

        $many = [];
        for ($i = 0; $i < 500; $i++) {
            $many[] = [$this->channel, "m{$i}"];
        }
        self::assertSame(array_fill(0, 500, 1), $this->client->publishMany($many));
        self::assertSame(array_column($many, 1), $this->subscriber->messages(500));

        self::assertSame([], $this->client->publishMany([]));
        $this->subscriber->assertNothingMore(0.05);
    }

    public function testPublishManyAcceptsAnyOuterKeysAndReferences(): void
    {
        $message = 'by reference';
        $pair = [$this->channel, &$message];
        self::assertSame([1, 1], $this->client->publishMany(['x' => [$this->channel, 'keyed'], 7 => $pair]));
        self::assertSame(['keyed', 'by reference'], $this->subscriber->messages(2));
    }

    #[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
    public function testUnixSocketEndpoint(): void
    {
        $server = $this->redis(unixSocket: true);
        $channel = self::channel('unix');
        $subscriber = $this->subscribe($server, $channel);
        $client = new Client('unix://' . $server->unixSocket(), ['connect_timeout' => 1, 'timeout' => 1]);
        self::assertSame(1, $client->publish($channel, 'over a unix socket'));
        self::assertSame([1, 1], $client->publishMany([[$channel, ['a' => 1]], [$channel, 'b']]));
        self::assertSame(['over a unix socket', '{"a":1}', 'b'], $subscriber->messages(3));
        [$connection] = $server->qrpushClients(getmypid());
        // Redis shows a Unix client's address as "<path>:0", cut short for long paths (a fixed buffer).
        $addr = preg_replace('/:0$/', '', $connection['addr']);
        self::assertGreaterThan(20, \strlen($addr), $connection['addr']);
        self::assertStringStartsWith($addr, $server->unixSocket(), 'Redis sees a Unix socket client');
    }

    public function testJsonSerializableExceptionPropagatesItself(): void
    {
        $thrown = new \LogicException('thrown by jsonSerialize');
        $object = new class ($thrown) implements \JsonSerializable {
            public function __construct(private \LogicException $e)
            {
            }

            public function jsonSerialize(): mixed
            {
                throw $this->e;
            }
        };
        foreach ([
            'top level' => fn () => $this->client->publish($this->channel, $object),
            'nested' => fn () => $this->client->publish($this->channel, ['ok' => 1, 'bad' => [$object]]),
            'last pair of publishMany' => fn () => $this->client->publishMany([[$this->channel, 'a'], [$this->channel, $object]]),
        ] as $case => $call) {
            try {
                $call();
                self::fail("{$case}: nothing thrown");
            } catch (\Throwable $e) {
                self::assertSame($thrown, $e, "{$case}: the exception thrown by jsonSerialize() itself reaches the caller, got " . $e::class . ': ' . $e->getMessage());
            }
            $this->assertNothingPublished($case);
        }
    }

    /**
     * A value whose JSON is far larger than max_payload is refused as soon as the output passes the
     * limit, not once it is all encoded: 2 million ints (15 MB of JSON) with the default 1 MiB
     * limit raise the process's peak memory by about the limit, not by the whole encoding.
     */
    #[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
    public function testOversizedJsonStopsAtMaxPayload(): void
    {
        $ints = range(1, 2_000_000);
        $status = static function (): array {
            preg_match_all('/^(VmHWM|VmRSS):\s+(\d+) kB/m', (string) file_get_contents('/proc/self/status'), $m);
            return array_combine($m[1], array_map('intval', $m[2]));
        };
        // Resets the peak (VmHWM) to the current RSS.
        file_put_contents('/proc/self/clear_refs', '5');
        $before = $status();
        try {
            $this->client->publish($this->channel, $ints);
            self::fail('nothing thrown');
        } catch (\ValueError $e) {
            self::assertStringContainsString('more than qrpush.max_payload (1048576 bytes)', $e->getMessage());
        }
        $peak = $status()['VmHWM'] - $before['VmRSS'];
        self::assertLessThan(6 * 1024, $peak, "the encoding raised the peak RSS by {$peak} kB");
        $this->subscriber->assertNothingMore(0.05);
    }

    /**
     * @return iterable<string, array{\Closure(Client, string, RedisServer): mixed, class-string<\Throwable>, string}>
     */
    public static function badInputs(): iterable
    {
        yield 'empty channel' => [static fn (Client $c, string $ch) => $c->publish('', 'x'), \ValueError::class, 'Argument #1 ($channel)'];
        yield 'channel with LF' => [static fn (Client $c, string $ch) => $c->publish("{$ch}\nPUBLISH x y", 'x'), \ValueError::class, 'Argument #1 ($channel)'];
        yield 'channel with CR' => [static fn (Client $c, string $ch) => $c->publish("{$ch}\r", 'x'), \ValueError::class, 'Argument #1 ($channel)'];
        yield 'channel with NUL' => [static fn (Client $c, string $ch) => $c->publish("{$ch}\0", 'x'), \ValueError::class, 'Argument #1 ($channel)'];
        yield 'channel with DEL' => [static fn (Client $c, string $ch) => $c->publish("{$ch}\x7f", 'x'), \ValueError::class, 'Argument #1 ($channel)'];
        yield 'int message' => [static fn (Client $c, string $ch) => $c->publish($ch, 42), \TypeError::class, 'Argument #2 ($message)'];
        yield 'float message' => [static fn (Client $c, string $ch) => $c->publish($ch, 1.5), \TypeError::class, 'Argument #2 ($message)'];
        yield 'bool message' => [static fn (Client $c, string $ch) => $c->publish($ch, true), \TypeError::class, 'Argument #2 ($message)'];
        yield 'null message' => [static fn (Client $c, string $ch) => $c->publish($ch, null), \TypeError::class, 'Argument #2 ($message)'];
        yield 'closure message' => [static fn (Client $c, string $ch) => $c->publish($ch, static fn () => 1), \TypeError::class, 'Argument #2 ($message)'];
        yield 'closure in an array' => [static fn (Client $c, string $ch) => $c->publish($ch, ['f' => static fn () => 1]), \TypeError::class, 'Argument #2 ($message)'];
        yield 'resource message' => [static fn (Client $c, string $ch) => $c->publish($ch, fopen('php://memory', 'r')), \TypeError::class, 'Argument #2 ($message)'];
        yield 'resource in an array' => [static fn (Client $c, string $ch) => $c->publish($ch, [fopen('php://memory', 'r')]), \TypeError::class, 'Argument #2 ($message)'];
        yield 'other object' => [static fn (Client $c, string $ch) => $c->publish($ch, new \ArrayObject([1])), \TypeError::class, 'Argument #2 ($message)'];
        yield 'other object in an array' => [static fn (Client $c, string $ch) => $c->publish($ch, ['d' => new \DateTimeImmutable()]), \TypeError::class, 'Argument #2 ($message)'];
        yield 'unit enum' => [static fn (Client $c, string $ch) => $c->publish($ch, PublishTestUnitEnum::One), \TypeError::class, 'Argument #2 ($message)'];
        yield 'NAN message' => [static fn (Client $c, string $ch) => $c->publish($ch, NAN), \TypeError::class, 'Argument #2 ($message)'];
        yield 'INF message' => [static fn (Client $c, string $ch) => $c->publish($ch, INF), \TypeError::class, 'Argument #2 ($message)'];
        yield 'NAN in an array' => [static fn (Client $c, string $ch) => $c->publish($ch, ['v' => NAN]), \ValueError::class, 'Argument #2 ($message)'];
        yield 'INF in an array' => [static fn (Client $c, string $ch) => $c->publish($ch, [1, [INF]]), \ValueError::class, 'Argument #2 ($message)'];
        yield '-INF in an object' => [static fn (Client $c, string $ch) => $c->publish($ch, (object) ['v' => -INF]), \ValueError::class, 'Argument #2 ($message)'];
        yield 'invalid UTF-8 value in an array' => [static fn (Client $c, string $ch) => $c->publish($ch, ['name' => "caf\xe9"]), \ValueError::class, 'Argument #2 ($message)'];
        yield 'invalid UTF-8 key in an array' => [static fn (Client $c, string $ch) => $c->publish($ch, ["\xff" => 1]), \ValueError::class, 'Argument #2 ($message)'];
        yield 'truncated UTF-8 in an object' => [static fn (Client $c, string $ch) => $c->publish($ch, (object) ['a' => "\xf0\x9f\x8e"]), \ValueError::class, 'Argument #2 ($message)'];
        yield 'recursive array via reference' => [static function (Client $c, string $ch) {
            $a = ['x' => 1];
            $a['self'] = &$a;
            return $c->publish($ch, $a);
        }, \ValueError::class, 'Argument #2 ($message)'];
        yield 'recursive object' => [static function (Client $c, string $ch) {
            $o = new \stdClass();
            $o->list = [1, $o];
            return $c->publish($ch, $o);
        }, \ValueError::class, 'Argument #2 ($message)'];
        yield 'nested deeper than json_encode allows' => [static function (Client $c, string $ch) {
            $v = [];
            for ($i = 0; $i < 513; $i++) {
                $v = [$v];
            }
            return $c->publish($ch, $v);
        }, \ValueError::class, 'Argument #2 ($message)'];
        yield 'string larger than max_payload' => [
            static fn (Client $c, string $ch, RedisServer $s) => self::client($s, ['max_payload' => 16])->publish($ch, str_repeat('x', 17)),
            \ValueError::class,
            'max_payload',
        ];
        yield 'JSON larger than max_payload' => [
            static fn (Client $c, string $ch, RedisServer $s) => self::client($s, ['max_payload' => 16])->publish($ch, ['k' => str_repeat('x', 9)]),
            \ValueError::class,
            'max_payload',
        ];
        yield 'publishMany: last pair has no message' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], [$ch, 'b'], [$ch]]), \ValueError::class, 'message #2'];
        yield 'publishMany: last element is not a pair' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], 'not a pair']), \ValueError::class, 'message #1'];
        yield 'publishMany: last pair has three elements' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], [$ch, 'b', 'c']]), \ValueError::class, 'message #1'];
        yield 'publishMany: last pair is keyed by name' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], ['channel' => $ch, 'message' => 'b']]), \ValueError::class, 'message #1'];
        yield 'publishMany: last channel is an int' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], [5, 'b']]), \TypeError::class, 'message #1'];
        yield 'publishMany: last channel is empty' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], ['', 'b']]), \ValueError::class, 'message #1'];
        yield 'publishMany: last channel has LF' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], ["{$ch}\n", 'b']]), \ValueError::class, 'message #1'];
        yield 'publishMany: last message is an int' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], [$ch, 5]]), \TypeError::class, 'message #1'];
        yield 'publishMany: last message has NAN' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], [$ch, [NAN]]]), \ValueError::class, 'message #1'];
        yield 'publishMany: last message has invalid UTF-8' => [static fn (Client $c, string $ch) => $c->publishMany([[$ch, 'a'], [$ch, ["\xff"]]]), \ValueError::class, 'message #1'];
        yield 'publishMany: last message too large' => [
            static fn (Client $c, string $ch, RedisServer $s) => self::client($s, ['max_payload' => 16])->publishMany([[$ch, 'a'], [$ch, str_repeat('x', 17)]]),
            \ValueError::class,
            'max_payload',
        ];
        yield 'publishMany: not an array' => [static fn (Client $c, string $ch) => $c->publishMany('x'), \TypeError::class, ''];
    }

    /** @param \Closure(Client, string, RedisServer): mixed $call */
    #[DataProvider('badInputs')]
    public function testBadInputIsRejectedAndNothingIsPublished(\Closure $call, string $exception, string $messageContains): void
    {
        self::assertThrowsExactly($exception, fn () => $call($this->client, $this->channel, $this->server), $messageContains);
        $this->assertNothingPublished();
    }

    /**
     * Nothing arrived, proven two ways: a short wait, then a marker published on the same pooled
     * connection, which Redis delivers after anything that connection sent before it.
     */
    private function assertNothingPublished(string $case = ''): void
    {
        $this->subscriber->assertNothingMore(0.05, $case);
        $marker = 'marker-' . bin2hex(random_bytes(4));
        self::assertSame(1, $this->client->publish($this->channel, $marker));
        self::assertSame([$marker], $this->subscriber->messages(1), "{$case}: only the marker published after the rejected call arrives");
    }
}
