<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * User code runs in the middle of an encoding (jsonSerialize()), and it can free what the call is
 * using: the strings of an earlier publishMany pair (through PHP references, or the reference a
 * by-reference foreach leaves), the array being encoded, or the object whose jsonSerialize() is
 * running (unset($parent->child)). The extension must hold what it uses, as json_encode does.
 *
 * Each scenario of fixtures/user-code-frees.php runs in a child php and must publish exactly the
 * values as they were when the call started (PHP's allocator gives freed memory to the next
 * allocation of its size, so a call that read freed memory published the new bytes); on NTS all
 * of them also run in one child under valgrind (USE_ZEND_ALLOC=0, so every allocation is its
 * own), which must report no error at all.
 */
#[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
final class UserCodeDuringEncodingTest extends TestCase
{
    private const NAME = 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn';
    private const AFTER = 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz';

    /** @return iterable<string, array{string, list<array{channel: string, payload: string}>}> */
    public static function scenarios(): iterable
    {
        $side = '{"side_effect":"ran"}';
        yield 'publishMany pair of references, reassigned by a later pair' => ['pair-references', [
            ['channel' => 'p:' . str_repeat('c', 40), 'payload' => str_repeat('m', 100)],
            ['channel' => 'p:second', 'payload' => $side],
        ]];
        yield 'publishMany pair left as a reference by foreach, reassigned by its own message' => ['foreach-reference', [
            ['channel' => 'p:first', 'payload' => str_repeat('f', 100)],
            ['channel' => 'p:last' . str_repeat('l', 30), 'payload' => $side],
        ]];
        yield 'array behind a reference, reassigned while it is encoded' => ['array-behind-reference', [
            ['channel' => 'p:array', 'payload' => '[{"first":' . $side . ',"second":"' . str_repeat('s', 100) . '","third":["' . str_repeat('t', 50) . '"]}]'],
        ]];
        yield 'jsonSerialize() unsets the dynamic property holding $this' => ['unset-dynamic-property', [
            ['channel' => 'p:dynamic', 'payload' => '{"child":{"name":"' . self::NAME . '","after":"' . self::AFTER . '"},"tail":"' . str_repeat('t', 20) . '"}'],
        ]];
        yield 'jsonSerialize() clears the declared property holding $this' => ['unset-declared-property', [
            ['channel' => 'p:declared', 'payload' => '{"child":{"name":"' . self::NAME . '","after":"' . self::AFTER . '"},"tail":"tail"}'],
        ]];
    }

    /** @param list<array{channel: string, payload: string}> $expected */
    #[\PHPUnit\Framework\Attributes\DataProvider('scenarios')]
    public function testPublishesTheValuesAsTheyWereWhenTheCallStarted(string $scenario, array $expected): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, 'p:*', pattern: true);
        $result = PhpProcess::run(['qrpush.url' => $server->url()], [Fpm::FIXTURES . '/user-code-frees.php', 'p:', $scenario]);
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertSame(json_encode(array_fill(0, \count($expected), 1)), trim($result->stdout), $result->describe());
        self::assertSame($expected, $subscriber->receive(\count($expected)));
        $subscriber->assertNothingMore(0.05);
    }

    /**
     * Every scenario in one child under valgrind: no invalid read or write, no error of any kind
     * (the NTS CLI only: the fast case; the ZTS build runs the same Rust code).
     */
    public function testValgrindSeesNoInvalidAccess(): void
    {
        if (getenv('QRPUSH_FLAVOUR') === 'zts') {
            self::markTestSkipped('valgrind runs the NTS CLI');
        }
        $valgrind = trim((string) shell_exec('command -v valgrind'));
        self::assertNotSame('', $valgrind, 'valgrind is part of the test toolchain (scripts/provision)');
        $scenarios = iterator_to_array(self::scenarios());
        $server = $this->redis();
        $subscriber = $this->subscribe($server, 'p:*', pattern: true);
        $dir = Processes::tempDir('valgrind');
        try {
            $log = "{$dir}/valgrind.log";
            $result = PhpProcess::exec(
                [$valgrind, '--tool=memcheck', '--leak-check=no', '--error-exitcode=99', "--log-file={$log}",
                    PhpProcess::binary(), '-n', '-d', 'extension=' . PhpProcess::extension(), '-d', "qrpush.url={$server->url()}",
                    Fpm::FIXTURES . '/user-code-frees.php', 'p:', ...array_column($scenarios, 0)],
                180.0,
                ['USE_ZEND_ALLOC' => '0', 'PATH' => (string) getenv('PATH')],
            );
            $report = (string) @file_get_contents($log);
            self::assertStringContainsString('ERROR SUMMARY: 0 errors', $report, "valgrind found errors:\n{$report}\n" . $result->describe());
            self::assertSame(0, $result->exitCode, $result->describe());
        } finally {
            Processes::removeDir($dir);
        }
        $expected = array_merge(...array_column($scenarios, 1));
        self::assertSame($expected, $subscriber->receive(\count($expected)));
        $subscriber->assertNothingMore(0.05);
    }

    /**
     * A fatal error inside jsonSerialize() (memory_limit, E_USER_ERROR) ends the request with a
     * longjmp that skips the call's frames: what they own must still be released, or a long-lived
     * worker grows with every such request. 120 fatal requests (each after 256 KB to 768 KB of
     * encoded JSON) in one php-fpm worker: its RSS stays flat, and it still publishes afterwards.
     */
    public function testFatalErrorsInJsonSerializeLeaveAWorkerFlat(): void
    {
        $server = $this->redis();
        $fpm = $this->fpm($server, workers: 1, ini: ['memory_limit' => '64M']);
        $rss = [];
        $pid = null;
        for ($i = 0; $i < 140; $i++) {
            $query = ['kind' => $i % 2 ? 'memory' : 'user_error', 'mode' => intdiv($i, 2) % 2 ? 'many' : 'publish'];
            $body = $fpm->request('fatal-in-json-serialize.php', $query);
            self::assertStringContainsString('Fatal error', $body, "request {$i}");
            self::assertStringNotContainsString('not reached', $body, "request {$i}");
            $tail = Fpm::decode(substr($body, strrpos($body, "\n") + 1));
            $pid ??= $tail['pid'];
            self::assertSame($pid, $tail['pid'], 'the same worker served every request');
            $rss[$i] = $tail['rss_kb'];
        }
        // The first 20 requests warm the allocators up (PHP keeps the chunks memory_limit reached).
        $growth = $rss[139] - $rss[19];
        self::assertLessThan(4096, $growth, 'RSS of the worker after request 20, 40, ... 140 (kB): '
            . implode(', ', array_map(static fn (int $i): int => $rss[$i], range(19, 139, 20))));

        $channel = self::channel('after-fatal');
        $subscriber = $this->subscribe($server, $channel);
        $response = $fpm->requestJson('publish.php', ['channel' => $channel, 'message' => 'still works']);
        self::assertSame($pid, $response['pid']);
        self::assertSame(1, $response['receivers'] ?? $response);
        self::assertSame(['still works'], $subscriber->messages(1));
    }
}
