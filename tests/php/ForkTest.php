<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * fork() after a connection exists (CLI workers, queue runners, php-fpm's own model): the child
 * must open its own connection and never write on the parent's socket; the parent keeps using
 * its connection as if nothing happened.
 */
#[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
final class ForkTest extends TestCase
{
    protected function setUp(): void
    {
        foreach (['pcntl_fork', 'pcntl_waitpid', 'pcntl_exec'] as $function) {
            if (!\function_exists($function)) {
                self::markTestSkipped("pcntl is not available in this PHP ({$function})");
            }
        }
    }

    public function testChildOpensItsOwnConnectionAndTheParentKeepsItsOwn(): void
    {
        $server = $this->redis();
        $channel = self::channel('fork');
        $subscriber = $this->subscribe($server, $channel);
        $client = self::client($server);

        self::assertSame(1, $client->publish($channel, 'parent before fork'));
        $parentConnections = $server->qrpushClients(getmypid());
        self::assertCount(1, $parentConnections);
        $parentId = $parentConnections[0]['id'];

        // The child reports over a socket pair and waits for the parent's go before exiting, so
        // that the parent can look at the child's connection while it exists.
        [$parentEnd, $childEnd] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        $pid = pcntl_fork();
        if ($pid === -1) {
            self::fail('fork failed');
        }
        if ($pid === 0) {
            // Child: nothing of PHPUnit may run here (no assertions, no shutdown functions, no
            // destructors stopping the parent's servers): report, then exec away.
            fclose($parentEnd);
            $code = 1;
            try {
                $receivers = $client->publish($channel, 'child');
                $stats = $client->stats();
                fwrite($childEnd, json_encode(['receivers' => $receivers, 'stats' => $stats, 'pid' => getmypid()]) . "\n");
                $code = ($receivers === 1 && $stats['pid'] === getmypid()) ? 0 : 3;
            } catch (\Throwable $e) {
                fwrite($childEnd, json_encode(['error' => $e::class . ': ' . $e->getMessage()]) . "\n");
                $code = 2;
            }
            stream_set_timeout($childEnd, 10);
            fgets($childEnd); // the parent's go
            pcntl_exec('/bin/sh', ['-c', "exit {$code}"]);
            \function_exists('posix_kill') && posix_kill(getmypid(), 9); // only if exec failed
            exit(9);
        }

        fclose($childEnd);
        stream_set_timeout($parentEnd, 10);
        $report = json_decode((string) fgets($parentEnd), true);
        try {
            self::assertIsArray($report, 'the child reported');
            self::assertArrayNotHasKey('error', $report, $report['error'] ?? '');
            self::assertSame(1, $report['receivers']);
            self::assertSame($pid, $report['pid']);
            self::assertSame(1, $report['stats']['connections_created'], 'the child counts only its own connection');
            self::assertSame(1, $report['stats']['published'], 'the child starts with its own counters');

            $childConnections = $server->qrpushClients($pid);
            self::assertCount(1, $childConnections, 'the child has a connection of its own, named qrpush-<child pid>');
            self::assertNotSame($parentId, $childConnections[0]['id']);
            $stillParent = $server->qrpushClients(getmypid());
            self::assertCount(1, $stillParent);
            self::assertSame($parentId, $stillParent[0]['id'], 'the parent connection is untouched');
        } finally {
            fwrite($parentEnd, "go\n");
            $status = 0;
            $waited = Processes::waitFor(static fn (): bool => pcntl_waitpid($pid, $status, WNOHANG) === $pid, 10.0);
            fclose($parentEnd);
        }
        self::assertTrue($waited, 'the child exited');
        self::assertTrue(pcntl_wifexited($status), 'the child exited normally');
        self::assertSame(0, pcntl_wexitstatus($status), 'the child published successfully');

        // The parent goes on with its own connection.
        self::assertSame(1, $client->publish($channel, 'parent after fork'));
        $after = $server->qrpushClients(getmypid());
        self::assertCount(1, $after);
        self::assertSame($parentId, $after[0]['id'], 'the parent still uses its original connection');
        $stats = $client->stats();
        self::assertSame(2, $stats['published']);
        self::assertSame(1, $stats['connections_created']);
        self::assertSame(0, $stats['reconnects']);
        self::assertSame(0, $stats['failed']);

        self::assertSame(['parent before fork', 'child', 'parent after fork'], $subscriber->messages(3));
        $subscriber->assertNothingMore(0.05);
    }

    /**
     * A real CLI worker: the parent publishes, forks, the child publishes and exits through PHP's
     * normal shutdown (exit(), module shutdown, destructors) — which must not close or write on
     * the parent's socket — and the parent publishes again on its original connection.
     */
    public function testChildExitingThroughPhpShutdownLeavesTheParentConnectionAlone(): void
    {
        $server = $this->redis();
        $channel = self::channel('fork-cli');
        $subscriber = $this->subscribe($server, $channel);
        $support = var_export(__DIR__ . '/Support/Resp.php', true);
        $result = PhpProcess::code(['qrpush.url' => $server->url()], <<<PHP
            require {$support};
            \$ids = function (int \$pid): array {
                \$redis = new QrPush\\Tests\\RespConnection('127.0.0.1', {$server->port()});
                preg_match_all('/\\bid=(\\d+) .* name=qrpush-' . \$pid . ' /', (string) \$redis->call('CLIENT', 'LIST'), \$m);
                return \$m[1];
            };
            \$out = ['first' => QrPush::publish('{$channel}', 'parent 1'), 'ids_before' => \$ids(getmypid())];
            \$pid = pcntl_fork();
            if (\$pid === 0) {
                \$n = QrPush::publish('{$channel}', 'child');
                exit(\$n === 1 && QrPush::stats()['connections_created'] === 1 ? 0 : 3);
            }
            pcntl_waitpid(\$pid, \$status);
            \$out['child_exit'] = pcntl_wexitstatus(\$status);
            \$out['child_ids_after_exit'] = \$ids(\$pid);
            \$out['second'] = QrPush::publish('{$channel}', 'parent 2');
            \$out['ids_after'] = \$ids(getmypid());
            \$out['stats'] = QrPush::stats();
            echo json_encode(\$out);
            PHP);
        self::assertSame(0, $result->exitCode, $result->describe());
        $out = json_decode($result->stdout, true);
        self::assertIsArray($out, $result->describe());
        self::assertSame(1, $out['first']);
        self::assertCount(1, $out['ids_before']);
        self::assertSame(0, $out['child_exit'], 'the child published on its own connection');
        self::assertSame(1, $out['second']);
        self::assertSame($out['ids_before'], $out['ids_after'], 'the parent still uses its original connection');
        self::assertSame(0, $out['stats']['reconnects']);
        self::assertSame(1, $out['stats']['connections_created']);
        self::assertSame(2, $out['stats']['published']);
        self::assertSame(['parent 1', 'child', 'parent 2'], $subscriber->messages(3));
        $subscriber->assertNothingMore(0.05);
    }
}
