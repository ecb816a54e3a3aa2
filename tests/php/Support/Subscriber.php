<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Assert;

/**
 * A raw RESP subscriber (SUBSCRIBE, PSUBSCRIBE, or SSUBSCRIBE for sharded Pub/Sub) on its own
 * connection: what a real consumer of QrPush's messages sees, byte for byte. The subscription is
 * confirmed by Redis before the constructor returns, so everything published afterwards reaches it.
 */
final class Subscriber
{
    private RespConnection $connection;

    public function __construct(
        RedisServer $server,
        public readonly string $channel,
        public readonly bool $pattern = false,
        public readonly bool $sharded = false,
    ) {
        $command = $sharded ? 'SSUBSCRIBE' : ($pattern ? 'PSUBSCRIBE' : 'SUBSCRIBE');
        $this->connection = $server->connect();
        $this->connection->send($command, $channel);
        $reply = $this->connection->read(5.0, true);
        $expected = [strtolower($command), $channel, 1];
        if ($reply !== $expected) {
            throw new \RuntimeException("unexpected reply to {$command}: " . var_export($reply, true));
        }
    }

    public function close(): void
    {
        $this->connection->close();
    }

    /**
     * Exactly `$expected` payloads, in the order received; fails (with what did arrive) when they
     * do not all arrive within `$timeout` seconds.
     *
     * @return list<string>
     */
    public function messages(int $expected, float $timeout = 5.0): array
    {
        return array_column($this->receive($expected, $timeout), 'payload');
    }

    /**
     * Like messages(), with the channel each message was published to.
     *
     * @return list<array{channel: string, payload: string}>
     */
    public function receive(int $expected, float $timeout = 5.0): array
    {
        $received = [];
        $deadline = microtime(true) + $timeout;
        while (\count($received) < $expected) {
            $message = $this->next(max(0.0, $deadline - microtime(true)));
            if ($message === null) {
                Assert::fail(sprintf(
                    'expected %d message(s) on %s within %.1f s, received %d: %s',
                    $expected,
                    $this->channel,
                    $timeout,
                    \count($received),
                    self::export($received),
                ));
            }
            $received[] = $message;
        }
        return $received;
    }

    /** Asserts that nothing (more) arrives within `$wait` seconds. */
    public function assertNothingMore(float $wait = 0.2, string $why = ''): void
    {
        $unexpected = [];
        $deadline = microtime(true) + $wait;
        while (($message = $this->next(max(0.0, $deadline - microtime(true)))) !== null) {
            $unexpected[] = $message;
        }
        Assert::assertSame(
            [],
            $unexpected,
            trim("{$why} the subscriber of {$this->channel} received unexpected messages: " . self::export($unexpected)),
        );
    }

    /**
     * Whatever arrived and was not read yet, without waiting.
     *
     * @return list<array{channel: string, payload: string}>
     */
    public function drain(): array
    {
        $drained = [];
        while (($message = $this->next(0.0)) !== null) {
            $drained[] = $message;
        }
        return $drained;
    }

    /** @return array{channel: string, payload: string}|null */
    private function next(float $timeout): ?array
    {
        $reply = $this->connection->read($timeout);
        if ($reply === null) {
            return null;
        }
        if (\is_array($reply) && \in_array($reply[0] ?? null, ['message', 'smessage'], true) && \count($reply) === 3) {
            return ['channel' => $reply[1], 'payload' => $reply[2]];
        }
        if (\is_array($reply) && ($reply[0] ?? null) === 'pmessage' && \count($reply) === 4) {
            return ['channel' => $reply[2], 'payload' => $reply[3]];
        }
        throw new \RuntimeException('unexpected push on a subscriber connection: ' . var_export($reply, true));
    }

    /** @param list<array{channel: string, payload: string}> $messages */
    private static function export(array $messages): string
    {
        return json_encode(
            array_map(static fn (array $m): string => $m['channel'] . ' <- ' . $m['payload'], $messages),
            JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR,
        ) ?: '[?]';
    }
}
