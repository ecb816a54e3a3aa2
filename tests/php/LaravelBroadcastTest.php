<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

enum LaravelBroadcastTestStatus: string
{
    case Shipped = 'shipped/ok';
}

/**
 * QrPush::broadcast() and QrPush\Client::broadcast() publish what Laravel's RedisBroadcaster
 * publishes: the bytes of the fixture written from Laravel's source (tests/interop/laravel/
 * broadcast-fixture.php), json_encode()'s default spelling for any payload, the socket id in
 * `data` too, one PUBLISH per prefixed channel; bad input publishes nothing.
 */
final class LaravelBroadcastTest extends TestCase
{
    private const FIXTURE = __DIR__ . '/../interop/laravel/broadcast-fixture.php';

    /** @return array<string, array{array<string, mixed>}> */
    public static function fixtureCases(): array
    {
        $cases = [];
        foreach (require self::FIXTURE as $name => $case) {
            $cases[$name] = [$case];
        }
        return $cases;
    }

    /** @param array<string, mixed> $case */
    #[DataProvider('fixtureCases')]
    public function testPublishesLaravelsOwnBytes(array $case): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, '*', pattern: true);
        $client = self::client($server, ['channel_prefix' => $case['prefix']]);

        $receivers = $client->broadcast($case['channels'], $case['event'], $case['data'], $case['socket']);

        self::assertSame(\count($case['published']), $receivers);
        $expected = [];
        foreach ($case['published'] as $channel => $message) {
            $expected[] = ['channel' => (string) $channel, 'payload' => $message];
        }
        self::assertSame($expected, $subscriber->receive(\count($expected)));
        $subscriber->assertNothingMore(0.05);
    }

    public function testTheFacadeUsesTheDirectivesPrefix(): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, '*', pattern: true);
        $case = (require self::FIXTURE)['private'];
        $code = sprintf(
            'echo json_encode(QrPush::broadcast(%s, %s, %s, %s));',
            var_export($case['channels'][0], true),
            var_export($case['event'], true),
            var_export($case['data'], true),
            var_export($case['socket'], true),
        );
        $result = PhpProcess::code(['qrpush.url' => $server->url(), 'qrpush.channel_prefix' => $case['prefix']], $code);
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertSame('1', $result->stdout, $result->describe());
        $message = $subscriber->receive(1)[0];
        self::assertSame(array_key_first($case['published']), $message['channel']);
        self::assertSame(reset($case['published']), $message['payload']);
    }

    /** @return iterable<string, array{array<mixed>, ?string}> */
    public static function payloads(): iterable
    {
        yield 'empty' => [[], null];
        yield 'list' => [['a', 'b'], 'sock.1'];
        yield 'sparse integer keys' => [[5 => 'x', 9 => 'y', 'k' => 'v', 2 => 'z'], null];
        yield 'socket key first' => [['socket' => 'old', 'a' => 1], 'new'];
        yield 'socket key kept when null' => [['a' => 1, 'socket' => 'old'], null];
        yield 'floats' => [['f' => [0.0, -0.0, 1.0, 1.5, 100.0, 1e15, 1e16, 1e21, 1.0E+25, 2.5e-5, 0.1, 1 / 3, -1e-7, PHP_FLOAT_EPSILON, PHP_FLOAT_MAX]], 'x'];
        yield 'integers' => [['i' => [0, -1, PHP_INT_MAX, PHP_INT_MIN]], null];
        yield 'text' => [['s' => "/ \\ \" ' < > & \x00 \x01 \x1f \x7f \t\n\r é € 👋 \u{2028}\u{2029} \u{FFFF}"], null];
        yield 'keys' => [['ü/key' => ['nested/ü' => true], '' => null], null];
        yield 'objects' => [
            [
                'std' => (object) ['a/b' => 1.0, 'list' => []],
                'enum' => LaravelBroadcastTestStatus::Shipped,
                'json' => new class implements \JsonSerializable {
                    public function jsonSerialize(): mixed
                    {
                        return ['via' => 'jsonSerialize', 'x' => 2.0];
                    }
                },
                'emptyObject' => new \stdClass(),
            ],
            '12.34',
        ];
    }

    /**
     * Any payload is spelled as Laravel's json_encode() spells it: the reference here is PHP's
     * own json_encode() with Laravel's arguments.
     *
     * @param array<mixed> $data
     */
    #[DataProvider('payloads')]
    public function testAnyPayloadIsSpelledAsJsonEncodeWithoutFlags(array $data, ?string $socket): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, 'events');
        $payload = array_merge($data, ['socket' => $socket]);
        $laravel = json_encode(['event' => 'E/é', 'data' => $payload, 'socket' => $socket], JSON_THROW_ON_ERROR);

        self::assertSame(1, self::client($server)->broadcast('events', 'E/é', $data, $socket));

        self::assertSame([$laravel], $subscriber->messages(1));
    }

    public function testNoChannelPublishesNothingAndReturnsZero(): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, '*', pattern: true);
        self::assertSame(0, self::client($server)->broadcast([], 'E', ['x' => 1]));
        // Laravel returns before encoding anything: an unencodable payload is not even looked at.
        self::assertSame(0, self::client($server)->broadcast([], 'E', ['x' => NAN]));
        $subscriber->assertNothingMore();
    }

    public function testChannelsMayBeAnyListAndRepeat(): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, '*', pattern: true);
        self::assertSame(3, self::client($server)->broadcast(['x' => 'a', 7 => 'b', 'c' => 'a'], 'E'));
        self::assertSame(['a', 'b', 'a'], array_column($subscriber->receive(3), 'channel'));
    }

    public function testBadInputIsRefusedNamingItAndPublishesNothing(): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, '*', pattern: true);
        $client = self::client($server, ['max_payload' => 64]);
        $f = 'QrPush\Client::broadcast(): ';
        $cases = [
            [\TypeError::class, fn () => $client->broadcast(42, 'E'), $f . 'Argument #1 ($channels) must be of type string|array, int given'],
            [\TypeError::class, fn () => $client->broadcast(['a', ['b']], 'E'), $f . 'Argument #1 ($channels) channel #1 must be of type string, array given'],
            [\ValueError::class, fn () => $client->broadcast(['a', ''], 'E'), $f . 'Argument #1 ($channels) channel #1 must not be empty'],
            [\ValueError::class, fn () => $client->broadcast("a\r\nb", 'E'), $f . 'Argument #1 ($channels) must not contain control characters (byte 0x0d at offset 1)'],
            [\ValueError::class, fn () => $client->broadcast('a', "\xc3"), $f . 'Argument #2 ($event) must be valid UTF-8 (malformed at byte 0)'],
            [\ValueError::class, fn () => $client->broadcast('a', 'E', ['x' => "\xff"]), $f . 'Argument #3 ($data) contains malformed UTF-8 (at byte 0), which JSON cannot represent'],
            [\ValueError::class, fn () => $client->broadcast('a', 'E', ['x' => INF]), $f . 'Argument #3 ($data) contains NAN or INF, which JSON cannot represent'],
            [\TypeError::class, fn () => $client->broadcast('a', 'E', ['x' => fopen('php://memory', 'r')]), $f . 'Argument #3 ($data) contains a resource, which cannot be encoded as JSON'],
            [\ValueError::class, fn () => $client->broadcast('a', 'E', [], "\xff"), $f . 'Argument #4 ($socket) must be valid UTF-8 (malformed at byte 0)'],
            [\ValueError::class, fn () => $client->broadcast('a', 'E', ['x' => str_repeat('y', 64)]), $f . 'Argument #3 ($data) is more than qrpush.max_payload (64 bytes) once encoded as JSON'],
            [\ValueError::class, fn () => $client->broadcast('a', 'E', ['x' => str_repeat('y', 30)]), $f . 'Argument #3 ($data) makes a message of 87 bytes, more than qrpush.max_payload (64 bytes)'],
        ];
        foreach ($cases as [$class, $call, $message]) {
            $e = self::assertThrowsExactly($class, $call);
            self::assertSame($message, $e->getMessage());
        }
        $subscriber->assertNothingMore();
    }

    public function testUserCodeThatDropsThePayloadDuringEncodingChangesNothing(): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, 'events');
        $holder = new \stdClass();
        $holder->data = ['first' => str_repeat('a', 64), 'json' => null, 'last' => str_repeat('z', 64)];
        $holder->data['json'] = new class ($holder) implements \JsonSerializable {
            public function __construct(private \stdClass $holder)
            {
            }

            public function jsonSerialize(): mixed
            {
                // The caller's array goes away while it is being encoded.
                $this->holder->data = null;
                gc_collect_cycles();
                return 'replaced';
            }
        };
        $expected = json_encode(['event' => 'E', 'data' => ['first' => str_repeat('a', 64), 'json' => 'replaced', 'last' => str_repeat('z', 64), 'socket' => null], 'socket' => null]);

        self::client($server)->broadcast('events', 'E', $holder->data);

        self::assertSame([$expected], $subscriber->messages(1));
    }
}
