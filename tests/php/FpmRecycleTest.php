<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * php-fpm recycling its workers under load (`pm.max_requests = 5`: every worker exits after five
 * requests and the master forks a new one) while requests also fork children with pcntl_fork()
 * that publish on their own: no socket is ever shared between two processes.
 *
 * Proven server-side, not by trusting the extension: Redis's MONITOR shows, for every command,
 * the client address it came in on. Each connection names itself `qrpush-<pid>` (CLIENT SETNAME)
 * when it opens, and each message carries the pid of the process that published it, so every
 * PUBLISH must arrive on a connection named after its own publisher: a child writing on its
 * parent's socket (or a new worker inheriting one) would show up as a PUBLISH with another pid
 * than the connection's name. CLIENT LIST, sampled between rounds, must never show one connection
 * id under two names. And every message is delivered exactly once.
 *
 * php-fpm 8.4 NTS from Debian has no pcntl (Debian builds it for the CLI only): there the forks
 * are skipped and only the recycling is tested; ForkTest covers fork() under the NTS CLI.
 * Linux only: Windows PHP has no php-fpm.
 */
#[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
final class FpmRecycleTest extends TestCase
{
    private const WORKERS = 4;
    private const ROUNDS = 30;
    private const CONCURRENT = 8;
    private const PER_REQUEST = 3;

    private ?Fpm $fpm = null;

    protected function tearDown(): void
    {
        $this->fpm?->stop();
        $this->fpm = null;
        parent::tearDown();
    }

    public function testRecycledWorkersAndForkedChildrenNeverShareAConnection(): void
    {
        $server = $this->redis();
        $monitor = $server->connect();
        $monitor->send('MONITOR');
        self::assertSame('OK', $monitor->read(5.0, true));
        $channel = self::channel('recycle');
        $subscriber = $this->subscribe($server, $channel);
        $this->fpm = new Fpm($server->url(), self::WORKERS, [], false, ['pm.max_requests' => '5']);
        $canFork = self::workerHasPcntl();

        $expected = [];
        $requestsByPid = [];
        $children = [];
        $errors = [];
        $namesById = [];
        $clientListSamples = 0;
        $req = 0;
        for ($round = 0; $round < self::ROUNDS; $round++) {
            $batch = [];
            for ($k = 0; $k < self::CONCURRENT; $k++) {
                $query = ['channel' => $channel, 'req' => 'r' . ++$req, 'n' => self::PER_REQUEST];
                if ($canFork && $k % 2 === 0) {
                    $query['fork'] = 1;
                }
                $batch[] = ['recycle.php', $query];
            }
            foreach ($this->fpm->requests($batch, 30.0) as $body) {
                $response = Fpm::decode($body);
                $requestsByPid[$response['pid']] = ($requestsByPid[$response['pid']] ?? 0) + 1;
                array_push($expected, ...$response['published']);
                array_push($errors, ...$response['errors']);
                if (isset($response['child'])) {
                    $children[$response['child']['pid']] = $response['child'];
                    if ($response['child']['exit'] === 0) {
                        $expected[] = $response['child']['message'];
                    } else {
                        $errors[] = "child {$response['child']['pid']} exited with {$response['child']['exit']}";
                    }
                }
            }
            // Server-side: a connection id keeps the one name it was given.
            foreach ($server->qrpushClients() as $row) {
                $namesById[$row['id']][$row['name']] = true;
            }
            $clientListSamples++;
        }
        $this->fpm->stop();

        // Every message exactly once.
        $received = $subscriber->messages(\count($expected), 15.0);
        $subscriber->assertNothingMore(0.3);
        $sortedExpected = $expected;
        $sortedReceived = $received;
        sort($sortedExpected);
        sort($sortedReceived);
        self::assertSame([], $errors, 'requests that failed to publish');
        self::assertSame($sortedExpected, $sortedReceived, 'every confirmed message delivered exactly once');
        self::assertSame(\count($received), \count(array_unique($received)), 'no duplicates');

        // Recycling happened: many workers, none serving more than pm.max_requests.
        $requests = self::ROUNDS * self::CONCURRENT;
        self::assertSame($requests, array_sum($requestsByPid));
        self::assertLessThanOrEqual(5, max($requestsByPid), 'pm.max_requests = 5 is honoured');
        self::assertGreaterThanOrEqual(intdiv($requests, 5), \count($requestsByPid), 'workers were recycled');

        // CLIENT LIST: never two names on one connection id.
        $renamed = array_filter($namesById, static fn (array $names): bool => \count($names) > 1);
        self::assertSame([], $renamed, 'connection ids seen under two names');

        // MONITOR: every PUBLISH came in on a connection named after its publisher.
        $publishers = array_fill_keys(array_keys($requestsByPid), 'worker') + array_fill_keys(array_keys($children), 'child');
        $audit = $this->audit($monitor, $channel, $publishers);
        $monitor->close();
        self::assertSame([], $audit['foreign'], 'PUBLISHes on a connection named after another process');
        self::assertSame([], $audit['unnamed'], 'PUBLISHes on a connection that never named itself');
        self::assertSame([], $audit['strangers'], 'connections named after a process that is neither a worker nor a child');
        self::assertSame(\count($expected), $audit['publishes'], 'MONITOR saw every PUBLISH once');
        self::assertSame([], array_filter($audit['connectionsPerPid'], static fn (int $n): bool => $n > 1), 'a process opened more than one connection');

        fwrite(STDERR, sprintf(
            "\n[%s] php-fpm recycling: %d requests, %d worker pids (pm.max_requests=5, %d workers), %d forked children (%s), "
            . "%d messages confirmed = %d received, %d connections named by %d processes, 0 shared, %d CLIENT LIST samples\n",
            PHP_ZTS ? 'ZTS' : 'NTS',
            $requests,
            \count($requestsByPid),
            self::WORKERS,
            \count($children),
            $canFork ? 'pcntl in php-fpm' : 'no pcntl in this php-fpm: forks skipped',
            \count($expected),
            \count($received),
            $audit['connections'],
            \count($audit['connectionsPerPid']),
            $clientListSamples,
        ));
    }

    private static function workerHasPcntl(): bool
    {
        return str_contains(PhpProcess::exec([Fpm::binary(), '-n', '-m'], 10.0)->stdout, "\npcntl\n");
    }

    /**
     * Reads MONITOR's log of the run: per client address, the name it gave itself and every
     * PUBLISH to `$channel`, whose payload starts with the publisher's pid.
     *
     * @param array<int, string> $publishers pid => worker|child
     * @return array{publishes: int, connections: int, foreign: list<string>, unnamed: list<string>, strangers: list<string>, connectionsPerPid: array<int, int>}
     */
    private function audit(RespConnection $monitor, string $channel, array $publishers): array
    {
        $nameOf = [];
        $result = ['publishes' => 0, 'connections' => 0, 'foreign' => [], 'unnamed' => [], 'strangers' => [], 'connectionsPerPid' => []];
        while (($line = $monitor->read(1.0)) !== null) {
            // 1700000000.123456 [0 127.0.0.1:54321] "PUBLISH" "channel" "1234:r7:0"
            if (!\is_string($line) || !preg_match('/^[\d.]+ \[\d+ ([^\]]+)\] (.*)$/', $line, $m)) {
                continue;
            }
            $address = $m[1];
            preg_match_all('/"((?:[^"\\\\]|\\\\.)*)"/', $m[2], $args);
            $args = $args[1];
            $command = strtoupper($args[0] ?? '');
            if ($command === 'CLIENT' && strtoupper($args[1] ?? '') === 'SETNAME' && str_starts_with($args[2] ?? '', 'qrpush-')) {
                // A new connection (the address may be a reused port of an old one).
                $pid = (int) substr($args[2], \strlen('qrpush-'));
                $nameOf[$address] = $pid;
                $result['connections']++;
                $result['connectionsPerPid'][$pid] = ($result['connectionsPerPid'][$pid] ?? 0) + 1;
                if (!isset($publishers[$pid])) {
                    $result['strangers'][] = "{$address} named qrpush-{$pid}";
                }
            } elseif ($command === 'PUBLISH' && ($args[1] ?? '') === $channel) {
                $result['publishes']++;
                $publisher = (int) explode(':', $args[2] ?? '')[0];
                if (!isset($nameOf[$address])) {
                    $result['unnamed'][] = "{$args[2]} on {$address}";
                } elseif ($nameOf[$address] !== $publisher) {
                    $result['foreign'][] = "{$args[2]} (pid {$publisher}) on {$address}, the connection of qrpush-{$nameOf[$address]}";
                }
            }
        }
        return $result;
    }
}
