<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * The static facade `QrPush::*` over the default client configured by the qrpush.* directives.
 * Directives are fixed when a process starts, so every test runs a child `php` with its own -d
 * settings and reads back what the child reports (as JSON) and what Redis saw.
 */
final class FacadeTest extends TestCase
{
    private RedisServer $server;

    protected function setUp(): void
    {
        $this->server = $this->redis();
    }

    /**
     * Runs `$code` in a child php whose default client points at this test's Redis; the code can
     * call $mine() (how many connections of this process Redis sees) and must print JSON.
     *
     * @param array<string, string> $ini
     * @return array<string, mixed>
     */
    private function child(string $code, array $ini = []): array
    {
        $support = var_export(__DIR__ . '/Support/Resp.php', true);
        $prelude = "require {$support};\n" . <<<PHP
            // The number of this process's connections Redis sees (CLIENT LIST, names qrpush-<pid>).
            \$mine = function (): int {
                static \$redis;
                \$redis ??= new QrPush\\Tests\\RespConnection('127.0.0.1', {$this->server->port()});
                \$rows = explode("\\n", (string) \$redis->call('CLIENT', 'LIST'));
                return count(array_filter(\$rows, fn (\$l) => str_contains(\$l, ' name=qrpush-' . getmypid() . ' ')));
            };

            PHP;
        $result = PhpProcess::code(
            $ini + ['qrpush.url' => $this->server->url(), 'qrpush.connect_timeout' => '1', 'qrpush.timeout' => '1'],
            $prelude . $code,
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertSame('', $result->stderr, $result->describe());
        $data = json_decode($result->stdout, true);
        self::assertIsArray($data, $result->describe());
        return $data;
    }

    public function testPublishPublishManyPingAndStats(): void
    {
        $channel = self::channel('facade');
        $subscriber = $this->subscribe($this->server, $channel);
        $data = $this->child(<<<PHP
            \$out = ['before' => \$mine(), 'stats_before' => QrPush::stats()];
            \$out['publish'] = QrPush::publish('{$channel}', 'hello');
            \$out['publishMany'] = QrPush::publishMany([['{$channel}', ['n' => 1]], ['{$channel}:nobody', 'x'], ['{$channel}', 'bye']]);
            \$out['ping'] = QrPush::ping();
            \$out['after'] = \$mine();
            \$out['stats'] = QrPush::stats();
            \$out['pid'] = getmypid();
            echo json_encode(\$out);
            PHP);

        self::assertSame(0, $data['before'], 'no connection before the first call');
        self::assertSame(0, $data['stats_before']['connections_created']);
        self::assertSame(1, $data['publish']);
        self::assertSame([1, 0, 1], $data['publishMany']);
        self::assertIsFloat($data['ping']);
        self::assertGreaterThan(0.0, $data['ping']);
        self::assertLessThan(1.0, $data['ping']);
        self::assertSame(1, $data['after'], 'one connection, named qrpush-<pid>, reused by every call');
        self::assertSame(['hello', '{"n":1}', 'bye'], $subscriber->messages(3));

        $stats = $data['stats'];
        self::assertSame(4, $stats['published']);
        self::assertSame(0, $stats['failed']);
        self::assertSame(1, $stats['connections_created']);
        self::assertSame(8, $stats['pool_size']);
        self::assertSame(1, $stats['pool_idle']);
        self::assertSame(0, $stats['pool_in_use']);
        self::assertNull($stats['last_error']);
        self::assertSame($data['pid'], $stats['pid']);
        self::assertSame("redis://127.0.0.1:{$this->server->port()}/0", $stats['endpoint']);
        self::assertSame(3, $stats['latency_us']['count']);
    }

    public function testDirectivesConfigureTheDefaultClient(): void
    {
        $prefixed = $this->subscribe($this->server, 'tenant7:events');
        $data = $this->child(<<<'PHP'
            $out = ['receivers' => QrPush::publish('events', 'prefixed')];
            try {
                QrPush::publish('events', str_repeat('x', 33));
            } catch (ValueError $e) {
                $out['too_large'] = $e->getMessage();
            }
            $out['stats'] = QrPush::stats();
            $out['ini_set'] = ini_set('qrpush.channel_prefix', 'other:');
            $out['prefix_after_ini_set'] = ini_get('qrpush.channel_prefix');
            echo json_encode($out);
            PHP, ['qrpush.channel_prefix' => 'tenant7:', 'qrpush.max_payload' => '32', 'qrpush.pool_size' => '2']);

        self::assertSame(1, $data['receivers']);
        self::assertSame(['prefixed'], $prefixed->messages(1));
        self::assertStringContainsString('QrPush::publish(): Argument #2 ($message)', $data['too_large']);
        self::assertStringContainsString('max_payload', $data['too_large']);
        self::assertSame(2, $data['stats']['pool_size']);
        self::assertFalse($data['ini_set'], 'qrpush.* directives cannot be changed with ini_set()');
        self::assertSame('tenant7:', $data['prefix_after_ini_set']);
        $prefixed->assertNothingMore(0.05);
    }

    public function testFacadeErrorsNameTheFacadeMethod(): void
    {
        $data = $this->child(<<<'PHP'
            $out = [];
            foreach ([
                'channel' => fn () => QrPush::publish('', 'x'),
                'message' => fn () => QrPush::publish('c', 1),
                'many' => fn () => QrPush::publishMany([['c', 'x'], ['c']]),
            ] as $case => $call) {
                try {
                    $call();
                    $out[$case] = 'nothing thrown';
                } catch (Throwable $e) {
                    $out[$case] = get_class($e) . ': ' . $e->getMessage();
                }
            }
            $out['stats'] = QrPush::stats();
            echo json_encode($out);
            PHP);
        self::assertStringStartsWith('ValueError: QrPush::publish(): Argument #1 ($channel)', $data['channel']);
        self::assertStringStartsWith('TypeError: QrPush::publish(): Argument #2 ($message)', $data['message']);
        self::assertStringStartsWith('ValueError: QrPush::publishMany(): Argument #1 ($messages) message #1', $data['many']);
        self::assertSame(0, $data['stats']['connections_created'], 'rejected arguments never connect');
    }

    public function testUnreachableRedisThroughTheFacade(): void
    {
        $port = $this->server->port();
        $this->server->stop();
        $data = $this->child(<<<'PHP'
            $start = hrtime(true);
            try {
                QrPush::publish('c', 'x');
                $out = ['thrown' => null];
            } catch (Throwable $e) {
                $out = ['thrown' => get_class($e), 'message' => $e->getMessage()];
            }
            $out['elapsed'] = (hrtime(true) - $start) / 1e9;
            $out['stats'] = QrPush::stats();
            echo json_encode($out);
            PHP, ['qrpush.connect_timeout' => '0.5', 'qrpush.timeout' => '0.5']);
        self::assertSame('QrPush\ConnectionException', $data['thrown']);
        self::assertStringContainsString("127.0.0.1:{$port}", $data['message']);
        self::assertLessThan(1.5, $data['elapsed']);
        self::assertSame(1, $data['stats']['failed']);
        self::assertSame($data['message'], $data['stats']['last_error']);
    }
}
