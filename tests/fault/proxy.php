<?php

declare(strict_types=1);

/*
 * The fault proxy: a loopback TCP proxy between php-fpm and Redis whose path can be switched, at
 * run time, between
 *   pass          forward both ways at once;
 *   delay <ms>    forward every chunk <ms> later, both ways (a round trip costs 2 x <ms>), order kept;
 *   blackhole     accept connections but never forward a byte again: every connection open at the
 *                 switch and every one accepted while it lasts stays open and silent until the
 *                 client closes it (a path that drops packets: nothing is refused, nothing answers).
 *                 Switching back to pass heals only connections accepted afterwards.
 *   forget        the connections open now go silent the same way (no byte forwarded either way, no
 *                 FIN, no RST: a NAT or load balancer that dropped their state while they were
 *                 idle); the path stays in its mode, so new connections pass.
 *   upstream <p>  new connections go to port <p> (a DNS name or virtual IP moved by a failover);
 *                 open ones stay where they are.
 *
 *   php proxy.php <upstream port> <ready file>
 * Listens on two free loopback ports (the proxy and its control port) and writes
 * "<proxy port> <control port>\n" to <ready file>. The control port takes one command per line
 * (pass | delay <ms> | blackhole | forget | upstream <port> | stats) and answers "ok ..." once the
 * switch is in effect.
 * Runs until SIGTERM, or until the suite that started it is gone.
 */

// The harness's reserved-port rule (QRPUSH_RESERVED_PORTS) and Processes::parentPid().
require __DIR__ . '/../php/Support/Processes.php';

use QrPush\Tests\Processes;


if ($argc !== 3) {
    fwrite(STDERR, "usage: php proxy.php <upstream port> <ready file>\n");
    exit(2);
}
$upstreamPort = (int) $argv[1];
$readyFile = $argv[2];

function listenOnFreePort(): array
{
    for ($i = 0; $i < 20; $i++) {
        $server = @stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
        if ($server === false) {
            continue;
        }
        $name = stream_socket_get_name($server, false);
        $port = (int) substr($name, strrpos($name, ':') + 1);
        if (Processes::isReserved($port)) {
            fclose($server);
            continue;
        }
        stream_set_blocking($server, false);
        return [$server, $port];
    }
    fwrite(STDERR, "proxy: cannot listen on a loopback port\n");
    exit(1);
}

[$listener, $proxyPort] = listenOnFreePort();
[$controlListener, $controlPort] = listenOnFreePort();
file_put_contents($readyFile . '.tmp', "{$proxyPort} {$controlPort}\n");
rename($readyFile . '.tmp', $readyFile);

$stop = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop): void {
    $stop = true;
});

/** One proxied connection: the client side, the upstream side, and what is queued each way. */
final class Pair
{
    /** @var list<array{0: float, 1: string}> [release time, bytes] towards upstream */
    public array $up = [];
    /** @var list<array{0: float, 1: string}> towards the client */
    public array $down = [];
    public bool $dead = false;
    public bool $upConnected = false;

    /** @param resource $client @param resource|null $upstream */
    public function __construct(public $client, public $upstream)
    {
    }
}

$mode = 'pass';
$delay = 0.0;
/** @var array<int, Pair> */
$pairs = [];
/** @var array<int, int> upstream socket id => client socket id (the key of $pairs) */
$byUpstream = [];
$controls = [];
$counts = ['accepted' => 0, 'blackholed' => 0, 'forgotten' => 0, 'upstream_failed' => 0];

$closePair = function (int $key) use (&$pairs, &$byUpstream): void {
    $pair = $pairs[$key];
    @fclose($pair->client);
    if ($pair->upstream !== null) {
        unset($byUpstream[(int) $pair->upstream]);
        @fclose($pair->upstream);
    }
    unset($pairs[$key]);
};

/** Writes as much of a queue as is due and accepted; returns false when the socket is broken. */
$flush = function ($socket, array &$queue, float $now): bool {
    while ($queue !== [] && $queue[0][0] <= $now) {
        $written = @fwrite($socket, $queue[0][1]);
        if ($written === false) {
            return false;
        }
        if ($written < strlen($queue[0][1])) {
            $queue[0][1] = substr($queue[0][1], $written);
            return true;
        }
        array_shift($queue);
    }
    return true;
};

$parent = Processes::parentPid();
$nextCheck = 0.0;
$deadline = microtime(true) + 3600; // never outlive a forgotten test run by much
while (!$stop && microtime(true) < $deadline) {
    if (microtime(true) > $nextCheck) {
        if (Processes::parentPid() !== $parent) {
            break; // orphaned: the suite was killed
        }
        $nextCheck = microtime(true) + 1.0;
    }
    $read = [$listener, $controlListener];
    foreach ($controls as $c) {
        $read[] = $c;
    }
    $write = [];
    $wait = 0.05;
    $now = microtime(true);
    foreach ($pairs as $pair) {
        $read[] = $pair->client;
        if ($pair->upstream !== null) {
            $read[] = $pair->upstream;
            if (!$pair->upConnected) {
                $write[] = $pair->upstream;
            }
        }
        foreach ([[$pair->up, $pair->upstream], [$pair->down, $pair->client]] as [$queue, $socket]) {
            if ($queue !== [] && $socket !== null) {
                $due = $queue[0][0] - $now;
                if ($due <= 0) {
                    $write[] = $socket;
                } else {
                    $wait = min($wait, $due);
                }
            }
        }
    }
    $except = null;
    $sec = (int) $wait;
    if (@stream_select($read, $write, $except, $sec, (int) (($wait - $sec) * 1e6)) === false) {
        continue; // interrupted by a signal
    }
    $now = microtime(true);

    foreach ($read as $socket) {
        if ($socket === $listener) {
            while (($client = @stream_socket_accept($listener, 0)) !== false) {
                stream_set_blocking($client, false);
                $counts['accepted']++;
                if ($mode === 'blackhole') {
                    $pair = new Pair($client, null);
                    $pair->dead = true;
                    $counts['blackholed']++;
                } else {
                    $upstream = @stream_socket_client(
                        "tcp://127.0.0.1:{$upstreamPort}",
                        $errno,
                        $errstr,
                        1.0,
                        STREAM_CLIENT_CONNECT | STREAM_CLIENT_ASYNC_CONNECT,
                    );
                    if ($upstream === false) {
                        $counts['upstream_failed']++;
                        fclose($client);
                        continue;
                    }
                    stream_set_blocking($upstream, false);
                    $pair = new Pair($client, $upstream);
                    $byUpstream[(int) $upstream] = (int) $client;
                }
                $pairs[(int) $client] = $pair;
            }
        } elseif ($socket === $controlListener) {
            while (($c = @stream_socket_accept($controlListener, 0)) !== false) {
                $controls[(int) $c] = $c;
            }
        } elseif (isset($controls[(int) $socket])) {
            $line = fgets($socket);
            if ($line === false) {
                fclose($socket);
                unset($controls[(int) $socket]);
                continue;
            }
            $words = preg_split('/\s+/', trim($line));
            switch ($words[0]) {
                case 'pass':
                    $mode = 'pass';
                    $delay = 0.0;
                    break;
                case 'delay':
                    $mode = 'delay';
                    $delay = max(0, (int) ($words[1] ?? 0)) / 1000;
                    break;
                case 'blackhole':
                    $mode = 'blackhole';
                    foreach ($pairs as $pair) {
                        if (!$pair->dead) {
                            $pair->dead = true;
                            $pair->up = $pair->down = [];
                            $counts['blackholed']++;
                        }
                    }
                    break;
                case 'forget':
                    foreach ($pairs as $pair) {
                        if (!$pair->dead) {
                            $pair->dead = true;
                            $pair->up = $pair->down = [];
                            $counts['forgotten']++;
                        }
                    }
                    break;
                case 'upstream':
                    $upstreamPort = max(1, (int) ($words[1] ?? 0));
                    break;
            }
            fwrite($socket, "ok {$mode} " . json_encode($counts + ['open' => count($pairs)]) . "\n");
        }
    }

    foreach ($read as $socket) {
        $key = (int) $socket;
        $fromClient = isset($pairs[$key]);
        if (!$fromClient) {
            $key = $byUpstream[$key] ?? null;
            if ($key === null || !isset($pairs[$key])) {
                continue;
            }
        }
        $pair = $pairs[$key];
        if (!$fromClient && !$pair->upConnected) {
            $pair->upConnected = true;
        }
        $data = @fread($socket, 65536);
        if ($data === false || ($data === '' && feof($socket))) {
            if ($pair->dead && !$fromClient) {
                // Redis closed its side; on a blackholed path the client never learns it.
                unset($byUpstream[(int) $socket]);
                fclose($socket);
                $pair->upstream = null;
                continue;
            }
            $closePair($key);
            continue;
        }
        if ($data === '' || $pair->dead) {
            continue; // a blackholed path swallows everything
        }
        $release = $mode === 'delay' ? $now + $delay : $now;
        if ($fromClient) {
            $pair->up[] = [$release, $data];
        } else {
            $pair->down[] = [$release, $data];
        }
    }

    foreach ($pairs as $key => $pair) {
        if ($pair->dead || $pair->upstream === null) {
            continue;
        }
        if (!$pair->upConnected) {
            if (in_array($pair->upstream, $write, true)) {
                if (@stream_socket_get_name($pair->upstream, true) === false) {
                    $counts['upstream_failed']++;
                    $closePair($key); // refused: the client sees its connection closed
                    continue;
                }
                $pair->upConnected = true;
            } else {
                continue;
            }
        }
        if (!$flush($pair->upstream, $pair->up, $now) || !$flush($pair->client, $pair->down, $now)) {
            $closePair($key);
        }
    }
}
foreach (array_keys($pairs) as $key) {
    $closePair($key);
}
