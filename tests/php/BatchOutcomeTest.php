<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\PartialBatchException;
use QrPush\ReplicaException;
use QrPush\ServerException;

/**
 * What PHP sees of a batch Redis partly published and of a server that is not the primary: the
 * per-message outcome (`PartialBatchException::getResults()/getFailures()`, one refused message
 * rolls nothing back, nothing is re-sent, the stats count each message), the `ReplicaException`
 * class and code, and the memory a huge batch leaves behind in the process (outside
 * memory_limit: it must be given back).
 */
final class BatchOutcomeTest extends TestCase
{
    public function testAPartlyPublishedBatchSaysWhatHappenedToEachMessage(): void
    {
        $server = $this->redis();
        self::assertSame('OK', $server->command(
            'ACL', 'SETUSER', 'app', 'on', '>app-pw-77', 'resetchannels', '&ok:*', '-@all', '+publish', '+ping', '+role', '+wait',
        ));
        $ok1 = $this->subscribe($server, 'ok:1');
        $ok2 = $this->subscribe($server, 'ok:2');
        $client = self::client($server, [], $server->url('app-pw-77', 'app'));
        try {
            $client->publishMany([['ok:1', 'a'], ['secret', ['b' => 1]], ['ok:2', 'c'], ['secret', 'd']]);
            self::fail('a batch with refused messages must throw');
        } catch (PartialBatchException $e) {
            self::assertInstanceOf(\QrPush\Exception::class, $e);
            self::assertSame(6, $e->getCode());
            self::assertStringStartsWith('2 of 4 messages were published, 2 were not or may not have been; the first: NOPERM', $e->getMessage());
            self::assertSame([0 => 1, 2 => 1], $e->getResults());
            $failures = $e->getFailures();
            self::assertSame([1, 3], array_keys($failures));
            foreach ($failures as $index => $failure) {
                self::assertInstanceOf(ServerException::class, $failure);
                self::assertSame(3, $failure->getCode());
                self::assertStringStartsWith('NOPERM', $failure->getMessage());
                self::assertStringEndsWith("(PUBLISH message #{$index})", $failure->getMessage());
            }
            // The arrays are the caller's copies.
            $copy = $e->getResults();
            $copy[9] = 9;
            self::assertSame([0 => 1, 2 => 1], $e->getResults());
        }
        self::assertSame(['a'], $ok1->messages(1));
        self::assertSame(['c'], $ok2->messages(1));
        $ok1->assertNothingMore();
        $ok2->assertNothingMore();
        $stats = $client->stats();
        self::assertSame(2, $stats['published']);
        self::assertSame(2, $stats['failed']);
    }

    public function testTheClassesAreDeclaredAsTheStubSays(): void
    {
        $partial = new \ReflectionClass(PartialBatchException::class);
        self::assertSame(\QrPush\Exception::class, $partial->getParentClass()->getName());
        $replica = new \ReflectionClass(ReplicaException::class);
        self::assertSame(\QrPush\ConnectionException::class, $replica->getParentClass()->getName());
        // Constructible from PHP like every QrPush exception, with empty outcomes.
        $e = new PartialBatchException('made by hand', 6);
        self::assertSame([], $e->getResults());
        self::assertSame([], $e->getFailures());
    }

    public function testAReplicaIsRefusedWithAReplicaException(): void
    {
        $primary = $this->redis();
        $replica = $this->redis();
        $primary->command('CONFIG', 'SET', 'repl-diskless-sync-delay', '0');
        self::assertSame('OK', $replica->command('REPLICAOF', '127.0.0.1', (string) $primary->port()));
        $sub = $this->subscribe($replica, 'news');
        $client = self::client($replica);
        try {
            $client->publish('news', 'lost on a replica');
            self::fail('publishing through a replica must throw');
        } catch (ReplicaException $e) {
            self::assertSame(5, $e->getCode());
            self::assertStringStartsWith("Redis at 127.0.0.1:{$replica->port()} is not the primary: it is a replica of 127.0.0.1:{$primary->port()}", $e->getMessage());
        }
        $sub->assertNothingMore();
    }

    /**
     * One publishMany of 200 messages of 1 MB each: the extension's buffers grow for it, and must
     * shrink after it (they are outside memory_limit: a worker would keep them for its life).
     */
    public function testAHugeBatchLeavesNoMemoryBehind(): void
    {
        $server = $this->redis();
        $result = PhpProcess::code(['qrpush.url' => $server->url(), 'qrpush.max_batch_payload' => (string) (256 << 20)], <<<'PHP'
            function rssKb(): int {
                preg_match('/^VmRSS:\s+(\d+) kB/m', file_get_contents('/proc/self/status'), $m);
                return (int) $m[1];
            }
            $payload = str_repeat('x', 1 << 20);
            $batch = array_fill(0, 200, ['big', $payload]);
            QrPush::publish('big', 'warm');
            $before = rssKb();
            $counts = QrPush::publishMany($batch);
            $after = rssKb();
            QrPush::publish('big', 'small');
            echo json_encode(['before' => $before, 'after' => $after, 'sent' => count($counts), 'stats' => QrPush::stats()['published']]);
            PHP);
        self::assertSame(0, $result->exitCode, $result->describe());
        $data = json_decode($result->stdout, true);
        self::assertSame(200, $data['sent']);
        self::assertSame(202, $data['stats']);
        $grown = ($data['after'] - $data['before']) / 1024;
        self::assertLessThan(16, $grown, sprintf('RSS grew by %.1f MiB over a 200 MiB batch and stayed', $grown));
    }

    public function testABatchOverMaxBatchPayloadIsAValueErrorAndSendsNothing(): void
    {
        $server = $this->redis();
        $sub = $this->subscribe($server, 'c');
        $client = self::client($server, ['max_batch_payload' => 1000]);
        try {
            $client->publishMany([['c', str_repeat('a', 600)], ['c', ['text' => str_repeat('b', 600)]]]);
            self::fail('a batch over max_batch_payload must be refused');
        } catch (\ValueError $e) {
            self::assertSame(
                'QrPush\Client::publishMany(): Argument #1 ($messages) message #1: message makes the batch\'s messages add up to more than qrpush.max_batch_payload (1000 bytes)',
                $e->getMessage(),
            );
        }
        $sub->assertNothingMore();
        self::assertSame(0, $client->stats()['connections_created']);
    }
}
