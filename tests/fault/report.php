<?php

declare(strict_types=1);

/*
 * The fault suite's table (see suite.php): one row per scenario, notes, and how to read it.
 */

function fmtExceptions(array $e): string
{
    if ($e === []) {
        return '-';
    }
    $parts = [];
    foreach ($e as $class => $n) {
        $parts[] = "{$class} {$n}";
    }
    return implode(', ', $parts);
}

/** @param list<Outcome> $outcomes */
function printTable(string $flavour, Settings $s, array $outcomes): void
{
    $rows = array_map(fn (Outcome $o): array => $o->row, $outcomes);
    $head = ['scenario', 'req', 'confirmed (heard)', 'exceptions', 'recv', 'dup', 'lost', 'excused', 'exc+recv', 'max call (net) / e2e', 'over', 'recovery', 'tail'];
    $lines = [];
    foreach ($rows as $r) {
        $lines[] = [
            $r['scenario'],
            (string) $r['requests'] . ($r['publishes'] !== $r['requests'] ? "+{$r['forks']}f" : ''),
            sprintf('%d (%d)', $r['confirmed'], $r['heard']),
            fmtExceptions($r['exceptions']),
            (string) $r['received'],
            (string) $r['duplicates'],
            (string) $r['lost'],
            (string) $r['excused'],
            (string) $r['exc_received'],
            sprintf('%.3f (%.3f) / %.3f s', $r['max_call'], $r['max_net'], $r['max_e2e']),
            (string) $r['over'],
            $r['recovery'] === null ? '-' : (is_finite($r['recovery']) ? sprintf('%.3f s', $r['recovery']) : 'never'),
            $r['tail'] === null ? '-' : sprintf('%.3f s', $r['tail']),
        ];
    }
    $widths = array_map('strlen', $head);
    foreach ($lines as $l) {
        foreach ($l as $i => $cell) {
            $widths[$i] = max($widths[$i], mb_strlen($cell));
        }
    }
    $fmt = static function (array $cells) use ($widths): string {
        $out = [];
        foreach ($cells as $i => $cell) {
            $out[] = $i === 0 || $i === 3 ? str_pad($cell, $widths[$i]) : str_pad($cell, $widths[$i], ' ', STR_PAD_LEFT);
        }
        return '| ' . implode(' | ', $out) . ' |';
    };
    printf(
        "\nQrPush fault suite, PHP 8.4 %s, php-fpm %d workers, %d concurrent requests, connect_timeout %.2f s + timeout %.2f s = bound %.2f s, breaker_cooldown default (0.5 s)%s\n",
        strtoupper($flavour),
        $s->workers,
        $s->concurrency,
        $s->connectTimeout,
        $s->timeout,
        $s->bound(),
        $s->cycles > 1 ? ", every fault {$s->cycles} times" : '',
    );
    echo $fmt($head), "\n";
    echo '|' . implode('|', array_map(fn (int $w): string => str_repeat('-', $w + 2), $widths)) . "|\n";
    foreach ($lines as $l) {
        echo $fmt($l), "\n";
    }
    echo "Notes:\n";
    foreach ($outcomes as $o) {
        $r = $o->row;
        $notes = [];
        if ($r['cuts'] > 0) {
            $notes[] = "subscriber's connection cut {$r['cuts']}x by the fault";
        }
        if ($r['forks'] > 0) {
            $notes[] = "{$r['forks']} forked children published, {$r['shared']} held a Redis socket with another process; "
                . "{$r['worker_pids']} worker pids served (recycled)";
        }
        if ($r['over_raw'] > $r['over']) {
            $notes[] = sprintf(
                '%d call(s) over the bound in wall time, within it once the time spent waiting for a CPU is taken out (up to %.3f s of run-queue wait)',
                $r['over_raw'] - $r['over'],
                $r['max_cpu_wait'],
            );
        }
        if ($r['stale'] > 0) {
            $notes[] = "{$r['stale']} Redis connection(s) of a process that is gone";
        }
        foreach (array_keys($r['exceptions']) as $class) {
            $m = (string) ($o->samples[$class] ?? '');
            $notes[] = "{$class}: " . (strlen($m) > 150 ? substr($m, 0, 147) . '...' : $m);
        }
        if ($notes !== []) {
            echo "  {$r['scenario']}: ", implode("\n    ", $notes), "\n";
        }
    }
}

function printRules(Settings $s): void
{
    $bound = sprintf('%.2f s', $s->bound());
    $slack = sprintf('%.0f ms', $s->slack * 1000);
    echo <<<TXT
        How to read it:
          confirmed  QrPush::publish() returned (Redis executed the PUBLISH); (heard): it returned >= 1 receiver,
                     i.e. Redis handed the message to the suite's subscriber, the only one on the channel.
          lost       silent losses: heard, never received, and not excused. Pub/Sub is at-most-once: a message
                     Redis handed to a subscriber connection is gone if that connection dies before Redis wrote
                     it out. Only kill -9 and stop cut the subscriber (it is a Pub/Sub client: CLIENT KILL TYPE
                     normal, the idle timeout, maxclients and the proxy never touch it); heard publishes that
                     returned from 50 ms before the signal to 50 ms after Redis was gone are "excused", not lost.
                     A confirmed publish with 0 receivers (subscriber reconnecting) is not silent: the caller
                     sees the 0. In the REPLICAOF scenario the subscriber listens on the replica that gets
                     promoted, so every confirmed publish counts as heard; publishes that returned while the
                     old primary was being demoted are excused (asynchronous replication may lose them).
          exc+recv   calls that threw although Redis ran the PUBLISH (its reply was late): the exception says the
                     outcome is unknown; QrPush never re-sends after a byte may have left, so no duplicate.
          max call   the longest QrPush::publish() in a worker, wall time; (net): without the time the worker
                     waited for a CPU (run queue, /proc/self/schedstat: a busy machine, not the client); e2e:
                     the longest FastCGI request as the load generator saw it. over: calls whose net time
                     exceeds the bound ({$bound}) + {$slack} timer slack (the notes count wall-time ones).
          recovery   from the end of the fault to the first confirmed publish that started after it (worst of
                     all cycles); tail: to the last exception after it (a worker's breaker still open).
          Targets: 0 dup, 0 lost, 0 over, recovery < 1 s; and no exception at all in baseline, idle timeout,
          a NAT that forgot idle flows, short delay and recycling + fork, where nothing is broken from the
          client's point of view.

        TXT;
}
