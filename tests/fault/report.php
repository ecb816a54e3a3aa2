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

/** Seconds after the fault, or "-". */
function fmtSeconds(?float $t, string $prefix = ''): string
{
    return $t === null ? '-' : (is_finite($t) ? sprintf('%s%.3f s', $prefix, $t) : 'never');
}

/**
 * The gateway column (gateway.php): "+X s (resent/moved)" — the last resent status after the fault's
 * start, of the browsers whose channel moved to another node ("not needed" when none did) — then
 * the events of the step taken after the fault that reached their browser, of those expected.
 */
function fmtGateway(?array $g): string
{
    if ($g === null) {
        return '-';
    }
    $status = $g['moved'] === 0 ? 'not needed'
        : sprintf('%s (%d/%d)', $g['status_after'] === null ? 'never' : sprintf('+%.2f s', $g['status_after']), $g['resent'], $g['moved']);
    return sprintf('%s, events %d/%d', $status, $g['events'], $g['expected'])
        . ($g['event_after'] === null ? '' : sprintf(' (%.3f s)', $g['event_after']));
}

/**
 * The columns of the fault table: the single-Redis suite's, or the topology suite's (the
 * publish-unavailability window, confirmed calls with 0 receivers, untyped exceptions).
 *
 * @param list<array<string, mixed>> $rows
 * @return array{0: list<string>, 1: list<list<string>>, 2: list<int>} head, lines, left-aligned columns
 */
function tableCells(array $rows, bool $topology): array
{
    if ($topology) {
        $head = ['scenario', 'req', 'ok (heard)', 'ok, 0 recv (other node)', 'failed (typed)', 'untyped', 'recv', 'dup', 'lost', 'excused', 'failing from -> to', 'first ok after', 'settled', 'max call (net)', 'over', 'logins ok / failed (typed)', 'gateway: status resent after (browsers), events after fault'];
        $lines = [];
        foreach ($rows as $r) {
            $lines[] = [
                $r['scenario'],
                (string) $r['requests'],
                sprintf('%d (%d)', $r['confirmed'], $r['heard']),
                sprintf('%d (%d%s)', $r['zero_receivers'], $r['stale_node'], $r['stale_until'] === null ? '' : sprintf(', to %+.1f s', $r['stale_until'])),
                fmtExceptions($r['exceptions']),
                (string) $r['untyped'],
                (string) $r['received'],
                (string) $r['duplicates'],
                (string) $r['lost'],
                (string) $r['excused'],
                $r['fail_from'] === null ? 'none' : sprintf('%+.3f -> %+.3f s', $r['fail_from'], $r['fail_to']),
                fmtSeconds($r['recovery']),
                fmtSeconds($r['settled']),
                sprintf('%.3f (%.3f) s', $r['max_call'], $r['max_net']),
                (string) $r['over'],
                $r['logins'] === null ? '-' : sprintf('%d / %s', $r['logins']['complete'], fmtExceptions($r['logins']['failed']))
                    . ($r['logins']['untyped'] + $r['logins']['fcgiFailures'] > 0 ? " ({$r['logins']['untyped']} untyped, {$r['logins']['fcgiFailures']} unanswered)" : ''),
                fmtGateway($r['gateway'] ?? null),
            ];
        }
        return [$head, $lines, [0, 4, 15, 16]];
    }
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
            fmtSeconds($r['recovery']),
            fmtSeconds($r['tail']),
        ];
    }
    return [$head, $lines, [0, 3]];
}

/** @param list<Outcome> $outcomes */
function printTable(string $flavour, Settings $s, array $outcomes, bool $topology = false): void
{
    $rows = array_map(fn (Outcome $o): array => $o->row, $outcomes);
    [$head, $lines, $left] = tableCells($rows, $topology);
    $widths = array_map('strlen', $head);
    foreach ($lines as $l) {
        foreach ($l as $i => $cell) {
            $widths[$i] = max($widths[$i], mb_strlen($cell));
        }
    }
    $fmt = static function (array $cells) use ($widths, $left): string {
        $out = [];
        foreach ($cells as $i => $cell) {
            $out[] = in_array($i, $left, true) ? str_pad($cell, $widths[$i]) : str_pad($cell, $widths[$i], ' ', STR_PAD_LEFT);
        }
        return '| ' . implode(' | ', $out) . ' |';
    };
    printf(
        "\nQrPush %s, PHP 8.4 %s, php-fpm %d workers, %d concurrent requests, connect_timeout %.2f s + timeout %.2f s = bound %.2f s, breaker_cooldown default (0.5 s)%s\n",
        $topology ? 'topology fault table (Sentinel: 1 primary + 1 replica + 3 Sentinels; Cluster: 3 primaries + 3 replicas, sharded publishing)' : 'fault suite',
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
        foreach (array_keys($r['logins']['failed'] ?? []) as $class) {
            $m = (string) ($o->samples["login {$class}"] ?? '');
            $notes[] = "login flow, {$class}: " . (strlen($m) > 150 ? substr($m, 0, 147) . '...' : $m);
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

function printTopologyRules(Settings $s): void
{
    $bound = sprintf('%.2f s', $s->bound());
    $slack = sprintf('%.0f ms', $s->slack * 1000);
    echo <<<TXT
        How to read it:
          ok (heard) QrPush::publish() returned; (heard): with >= 1 receiver. The counting subscriber follows the
                     topology as an application must: on Sentinel it SUBSCRIBEs on the primary the Sentinels name
                     (asked every 50 ms; when they name another one it UNSUBSCRIBEs, reads up to the confirmation,
                     and moves); on Cluster it SSUBSCRIBEs on the owner of the channel's slot and moves when that
                     node lets the slot go (its sunsubscribe push), answers MOVED, or dies. "recv" therefore means
                     received by a subscriber of the new topology.
          ok, 0 recv confirmed calls that returned 0 receivers: not silent, the caller sees the 0, but not heard by
                     the new topology. (other node): of those, calls made while the subscriber was subscribed on
                     the node the topology names: they ran on another node (the old primary still accepting
                     PUBLISH after the subscriber left it), and until when after the fault's start; the rest ran
                     while the subscriber was moving. The subscriber notices a move a few ms after the node
                     acted, so a call or two at that very moment can count as "other node" too.
          failed     calls that threw, by QrPush exception class; untyped: anything else (target 0).
          lost       silent losses: heard, never received by the subscriber, and not excused (target 0). Heard
                     calls that returned from 50 ms before a kill -9 to 50 ms after the process was gone are
                     "excused": Redis handed the message to a subscriber connection that died with it.
          dup        messages received more than once (target 0): nothing that may have run is re-sent.
          failing from -> to  the publish-unavailability window: from the fault's start to the start of the first
                     and to the end of the last call that threw (worst cycle); "none": no call failed.
          first ok after  from the end of the fault (the kill, SENTINEL FAILOVER's reply, the last SETSLOT NODE)
                     to the first confirmed call that started after it (target < 10 s for the failovers and the
                     migration, < 1 s for a Sentinel down).
          settled    from the fault's start until every node agreed on the new topology again (Sentinels name
                     one primary that says ROLE master and the others replicate from; every Cluster node says
                     cluster_state:ok and names one live owner of the slot).
          over       calls whose net time exceeds the bound ({$bound}) + {$slack} (target 0).
          logins     whole QR login flows (start, scan, approve, status, redeem) run through php-fpm beside the
                     load, one at a time, at most 40 a second: completed / ended by a typed exception, by class
                     (target: no untyped one, every request answered, at least one completed).
          gateway    one qrpush-gateway on the same topology and channel mode as php-fpm, with one browser
                     (WebSocket) per login started through php-fpm: 3 on Sentinel, one per primary on Cluster
                     (the load's channel shares the first login's slot, so the fault's node or slot carries
                     one). Status resent: for the browsers whose login channel is served by another node after
                     the fault, when the gateway's resent status (saying the login's current state) reached
                     the last of them, from the fault's start, and how many got it; "not needed": no channel
                     moved (the gateway stays subscribed). Events: then each login is scanned (after the
                     second fault: approved) through php-fpm, and each browser must receive that event
                     (in parentheses: the slowest, from the request's start). Targets: every moved browser's
                     status within 15 s of the fault's start, every event within 15 s of its request, no
                     socket closed.
          Also a target: no exception at all, publishing or logging in, while one Sentinel is down.

        TXT;
}
