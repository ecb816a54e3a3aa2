<?php

declare(strict_types=1);

/*
 * The fault suite's analysis (see suite.php): what the load generator recorded and what the
 * subscriber received, turned into one table row per scenario and the targets it missed
 * (0 duplicates, 0 silent losses, 0 calls over the bound, recovery < 1 s, ...).
 */

/** One scenario's figures (`row`), the targets it missed, and one example of each kind of event. */
final class Outcome
{
    public array $row = [];
    /** @var list<string> */
    public array $missed = [];
    public array $samples = [];
}

/** What the load generator recorded: one line per FastCGI request (results.log). */
final class Load
{
    public int $requests = 0;
    /** @var list<array<string, mixed>> every publish, forked children's included */
    public array $publishes = [];
    /** requests without a proper answer, and forks that failed */
    public int $fcgiFailures = 0;
    /** the longest request as the load generator saw it, seconds */
    public float $maxE2e = 0.0;
    public int $forks = 0;
    /** @var array<int, true> the php-fpm worker pids that answered */
    public array $workerPids = [];
    /** forked children that held a Redis socket of another process */
    public int $shared = 0;
    /** forked children whose stats were their parent's */
    public int $wrongPid = 0;
}

/** What the subscriber received (subscriber.log): how often each id arrived, and connection cuts. */
final class Received
{
    /**
     * @param array<string, int> $counts id => times received (the end marker excluded)
     * @param list<array{0: float, 1: float}> $subscribed when the subscriber was subscribed (from
     *     Redis's confirmation to the cut or its leaving)
     */
    public function __construct(public readonly array $counts, public readonly int $cuts, public readonly array $subscribed = [])
    {
    }

    /** Whether the subscriber was subscribed during the whole of [$from, $to]. */
    public function subscribedThrough(float $from, float $to): bool
    {
        foreach ($this->subscribed as [$s, $e]) {
            if ($from >= $s && $to <= $e) {
                return true;
            }
        }
        return false;
    }
}

/** The publishes, judged one by one against what was received. */
final class Tally
{
    public int $confirmed = 0;
    public int $heard = 0;
    public int $lost = 0;
    public int $excused = 0;
    /** confirmed calls that returned 0 receivers (the caller sees the 0) */
    public int $zeroReceivers = 0;
    /**
     * of those, calls made while the subscriber was subscribed on the node it follows: they ran on
     * another node (an old primary, a replica, a slot's former owner), not on the topology's current one
     */
    public int $staleNode = 0;
    /** @var list<float> when each of those returned */
    public array $staleTimes = [];
    /** calls that threw something other than a QrPush exception */
    public int $untyped = 0;
    /** calls that threw although the subscriber received their message */
    public int $exceptionButReceived = 0;
    /** calls over the bound once the time spent waiting for a CPU is taken out */
    public int $over = 0;
    /** calls over the bound in wall time */
    public int $overWall = 0;
    public float $maxCall = 0.0;
    public float $maxNet = 0.0;
    public float $maxCpuWait = 0.0;
    /** @var array<string, int> exception class (short name) => count */
    public array $exceptions = [];
    /** @var array<string, true> every id a publish was attempted for */
    public array $published = [];
}

/**
 * @param list<FaultWindow> $windows
 * @param list<string> $stale Redis connections of processes that are gone
 */
function analyse(Scenario $sc, Settings $s, array $windows, string $resultsFile, string $subLog, array $stale, float $stopAt, ?string $loginResults = null): Outcome
{
    $o = new Outcome();
    $logins = $loginResults === null ? null : readLogins($loginResults, $o);
    $load = readLoad($resultsFile, $o);
    $received = readReceived($subLog);
    $tally = tallyPublishes($load->publishes, $received, cutWindows($windows), $s, $o, $sc->heardThroughReplica);
    [$duplicates, $phantoms] = duplicatesAndPhantoms($received, $tally);
    [$recovery, $tail] = recovery($windows, $load->publishes, $stopAt);
    [$failFrom, $failTo, $settled] = failureWindow($windows, $load->publishes, $stopAt);
    $staleUntil = null;
    foreach ($tally->staleTimes as $t) {
        $starts = array_filter(array_map(fn (FaultWindow $w): float => $w->start, $windows), fn (float $s): bool => $s <= $t);
        if ($starts !== []) {
            $staleUntil = max($staleUntil ?? 0.0, $t - max($starts));
        }
    }

    ksort($tally->exceptions);
    $o->row = [
        'scenario' => $sc->name,
        'requests' => $load->requests,
        'publishes' => count($load->publishes),
        'confirmed' => $tally->confirmed,
        'heard' => $tally->heard,
        'exceptions' => $tally->exceptions,
        'received' => count($received->counts),
        'duplicates' => $duplicates,
        'lost' => $tally->lost,
        'excused' => $tally->excused,
        'exc_received' => $tally->exceptionButReceived,
        'max_call' => $tally->maxCall,
        'max_net' => $tally->maxNet,
        'over_raw' => $tally->overWall,
        'max_cpu_wait' => $tally->maxCpuWait,
        'max_e2e' => $load->maxE2e,
        'over' => $tally->over,
        'recovery' => $recovery,
        'tail' => $tail,
        'fail_from' => $failFrom,
        'fail_to' => $failTo,
        'settled' => $settled,
        'zero_receivers' => $tally->zeroReceivers,
        'stale_node' => $tally->staleNode,
        'stale_until' => $staleUntil,
        'untyped' => $tally->untyped,
        'cuts' => $received->cuts,
        'forks' => $load->forks,
        'worker_pids' => count($load->workerPids),
        'shared' => $load->shared,
        'stale' => count($stale),
        'fcgi_failures' => $load->fcgiFailures,
        'logins' => $logins === null ? null : (array) $logins,
    ];
    judge($sc, $s, $o, $load, $tally, $duplicates, $phantoms, $recovery, $stale);
    if ($logins !== null) {
        judgeLogins($sc, $o, $logins);
    }
    return $o;
}

/** Reads results.log: "F <line>" for a failed request, else "<id> <worker> <sent> <answered> <json>". */
function readLoad(string $resultsFile, Outcome $o): Load
{
    $load = new Load();
    foreach (file($resultsFile, FILE_IGNORE_NEW_LINES) ?: [] as $line) {
        $load->requests++;
        $parts = explode(' ', $line, 5);
        if ($parts[0] === 'F') {
            $load->fcgiFailures++;
            $o->samples['FastCGI'] ??= $line;
            continue;
        }
        $sent = (float) $parts[2];
        $answered = (float) $parts[3];
        $load->maxE2e = max($load->maxE2e, $answered - $sent);
        $publish = json_decode($parts[4], true);
        $load->publishes[] = $publish;
        $load->workerPids[$publish['pid']] = true;
        if (isset($publish['fork_error'])) {
            $load->fcgiFailures++;
            $o->samples['fork'] ??= $publish['fork_error'];
        }
        if (isset($publish['child'])) {
            $load->forks++;
            $child = $publish['child'];
            $load->publishes[] = $child;
            if ($child['shared'] !== [] || $child['sockets'] !== 1) {
                $load->shared++;
                $o->samples['shared socket'] ??= json_encode($child);
            }
            if ($child['qrpush_pid'] !== $child['pid']) {
                $load->wrongPid++;
            }
        }
    }
    return $load;
}

/** The whole login flows run beside the load (www/login.php): how each ended. */
final class Logins
{
    public int $flows = 0;
    public int $complete = 0;
    /** @var array<string, int> exception class (short name) => flows it ended */
    public array $failed = [];
    /** flows ended by something other than a QrPush exception */
    public int $untyped = 0;
    /** requests without a proper answer */
    public int $fcgiFailures = 0;
}

/** Reads logins.log (the login load generator's results.log). */
function readLogins(string $file, Outcome $o): Logins
{
    $l = new Logins();
    foreach (file($file, FILE_IGNORE_NEW_LINES) ?: [] as $line) {
        $l->flows++;
        $parts = explode(' ', $line, 5);
        if ($parts[0] === 'F') {
            $l->fcgiFailures++;
            $o->samples['login FastCGI'] ??= $line;
            continue;
        }
        $flow = json_decode($parts[4], true);
        if ($flow['ok']) {
            $l->complete++;
            continue;
        }
        if (!str_starts_with($flow['e'], 'QrPush\\')) {
            $l->untyped++;
            $o->samples['login untyped'] ??= json_encode($flow);
        }
        $class = preg_replace('/^QrPush\\\\|Exception$/', '', $flow['e']);
        $l->failed[$class] = ($l->failed[$class] ?? 0) + 1;
        $o->samples["login {$class}"] ??= "{$flow['step']}: {$flow['m']}";
    }
    ksort($l->failed);
    return $l;
}

/** The login targets: every flow completes or ends with a typed exception; none at all where nothing may fail. */
function judgeLogins(Scenario $sc, Outcome $o, Logins $l): void
{
    if ($l->untyped > 0) {
        $o->missed[] = "{$sc->name}: {$l->untyped} login flow(s) ended by something other than a QrPush exception, e.g. " . $o->samples['login untyped'];
    }
    if ($l->fcgiFailures > 0) {
        $o->missed[] = "{$sc->name}: {$l->fcgiFailures} login request(s) without a proper answer, e.g. " . $o->samples['login FastCGI'];
    }
    if ($sc->noErrors && $l->failed !== []) {
        $o->missed[] = "{$sc->name}: login flows failed where nothing may fail: " . json_encode($l->failed);
    }
    if ($l->complete === 0) {
        $o->missed[] = "{$sc->name}: no login flow completed";
    }
}

/** Reads subscriber.log: "M <id>" per message, "C ..." per connection cut. */
function readReceived(string $subLog): Received
{
    $counts = [];
    $cuts = 0;
    $subscribed = [];
    $since = null;
    foreach (file($subLog, FILE_IGNORE_NEW_LINES) ?: [] as $line) {
        if (str_starts_with($line, 'M ')) {
            $id = substr($line, 2);
            $counts[$id] = ($counts[$id] ?? 0) + 1;
        } elseif (str_starts_with($line, 'S ')) {
            $since = (float) explode(' ', $line)[1];
        } elseif (str_starts_with($line, 'C ')) {
            $cuts++;
            if ($since !== null) {
                $subscribed[] = [$since, (float) explode(' ', $line)[1]];
                $since = null;
            }
        }
    }
    if ($since !== null) {
        $subscribed[] = [$since, INF];
    }
    unset($counts['__end__']);
    return new Received($counts, $cuts, $subscribed);
}

/**
 * When the fault cut the subscriber's connection, widened by 50 ms each side: a heard publish that
 * returned then may be lost without being silent (Pub/Sub is at-most-once).
 *
 * @param list<FaultWindow> $windows
 * @return \Closure(float): bool
 */
function cutWindows(array $windows): \Closure
{
    $cutWindows = [];
    foreach ($windows as $w) {
        foreach ($w->cuts as [$from, $to]) {
            $cutWindows[] = [$from - 0.05, $to + 0.05];
        }
    }
    return static function (float $t) use ($cutWindows): bool {
        foreach ($cutWindows as [$from, $to]) {
            if ($t >= $from && $t <= $to) {
                return true;
            }
        }
        return false;
    };
}

/**
 * @param list<array<string, mixed>> $publishes
 * @param \Closure(float): bool $inCut
 * @param bool $everyConfirmedHeard the subscriber gets every executed PUBLISH by replication, so
 *     a confirmed publish is heard whatever its receiver count
 */
function tallyPublishes(array $publishes, Received $received, \Closure $inCut, Settings $s, Outcome $o, bool $everyConfirmedHeard = false): Tally
{
    $tally = new Tally();
    foreach ($publishes as $p) {
        $id = (string) $p['id'];
        $tally->published[$id] = true;
        $call = $p['us'] / 1e6;
        $net = max(0, $p['us'] - ($p['rq'] ?? 0)) / 1e6;
        if ($call > $tally->maxCall) {
            $tally->maxCall = $call;
            $o->samples['slowest'] = $p;
        }
        $tally->maxNet = max($tally->maxNet, $net);
        if ($call > $s->bound() + $s->slack) {
            $tally->overWall++;
            $tally->maxCpuWait = max($tally->maxCpuWait, ($p['rq'] ?? 0) / 1e6);
        }
        if ($net > $s->bound() + $s->slack) {
            $tally->over++;
            $o->samples['over the bound'] ??= json_encode($p);
        }
        if ($p['ok']) {
            $tally->confirmed++;
            if ($p['n'] === 0) {
                $tally->zeroReceivers++;
                if ($received->subscribedThrough($p['t0'], $p['t1'])) {
                    $tally->staleNode++;
                    $tally->staleTimes[] = $p['t1'];
                    $o->samples['stale node'] ??= json_encode($p);
                }
            }
            if ($p['n'] >= 1 || $everyConfirmedHeard) {
                $tally->heard++;
                if (!isset($received->counts[$id])) {
                    if ($inCut($p['t1'])) {
                        $tally->excused++;
                    } else {
                        $tally->lost++;
                        $o->samples['silent loss'] ??= json_encode($p);
                    }
                }
            }
        } else {
            if (!str_starts_with($p['e'], 'QrPush\\')) {
                $tally->untyped++;
            }
            $class = preg_replace('/^QrPush\\\\|Exception$/', '', $p['e']);
            $tally->exceptions[$class] = ($tally->exceptions[$class] ?? 0) + 1;
            $o->samples[$class] ??= $p['m'];
            $o->samples["{$class} (record)"] ??= $p;
            if (isset($received->counts[$id])) {
                $tally->exceptionButReceived++;
            }
        }
    }
    return $tally;
}

/** @return array{0: int, 1: int} messages received more than once; ids received that nobody published */
function duplicatesAndPhantoms(Received $received, Tally $tally): array
{
    $duplicates = 0;
    $phantoms = 0;
    foreach ($received->counts as $id => $count) {
        $duplicates += $count - 1;
        if (!isset($tally->published[$id])) {
            $phantoms++;
        }
    }
    return [$duplicates, $phantoms];
}

/**
 * Recovery: from the end of each fault to the first confirmed publish that started after it; tail:
 * to the last failure after it (how long some calls still failed). The worst over all cycles; null
 * without a fault.
 *
 * @param list<FaultWindow> $windows
 * @param list<array<string, mixed>> $publishes
 * @return array{0: float|null, 1: float|null}
 */
function recovery(array $windows, array $publishes, float $stopAt): array
{
    $recovery = $tail = null;
    foreach ($windows as $i => $w) {
        $until = $windows[$i + 1]->start ?? $stopAt;
        $first = null;
        $last = 0.0;
        foreach ($publishes as $p) {
            if ($p['ok'] && $p['t0'] >= $w->end && $p['t1'] <= $until) {
                $first = $first === null ? $p['t1'] : min($first, $p['t1']);
            }
            if (!$p['ok'] && $p['t1'] >= $w->end && $p['t1'] <= $until) {
                $last = max($last, $p['t1'] - $w->end);
            }
        }
        $r = $first === null ? INF : $first - $w->end;
        $recovery = max($recovery ?? 0.0, $r);
        $tail = max($tail ?? 0.0, $last);
    }
    return [$recovery, $tail];
}

/**
 * The publish-unavailability window of a topology fault: from the fault's start to the first and
 * to the last failed call (the earliest start and the latest end of a call that threw), the worst
 * over all cycles; and how long the topology took to settle. Nulls when nothing failed / nothing
 * was waited for.
 *
 * @param list<FaultWindow> $windows
 * @param list<array<string, mixed>> $publishes
 * @return array{0: float|null, 1: float|null, 2: float|null}
 */
function failureWindow(array $windows, array $publishes, float $stopAt): array
{
    $from = $to = $settled = null;
    foreach ($windows as $i => $w) {
        $until = $windows[$i + 1]->start ?? $stopAt;
        foreach ($publishes as $p) {
            if (!$p['ok'] && $p['t1'] >= $w->start && $p['t1'] <= $until) {
                $from = $from === null ? $p['t0'] - $w->start : min($from, $p['t0'] - $w->start);
                $to = max($to ?? 0.0, $p['t1'] - $w->start);
            }
        }
        if ($w->settled !== null) {
            $settled = max($settled ?? 0.0, $w->settled - $w->start);
        }
    }
    return [$from, $to, $settled];
}

/**
 * The targets: adds one line to `$o->missed` per target the scenario missed.
 *
 * @param list<string> $stale
 */
function judge(
    Scenario $sc,
    Settings $s,
    Outcome $o,
    Load $load,
    Tally $tally,
    int $duplicates,
    int $phantoms,
    ?float $recovery,
    array $stale,
): void {
    $miss = function (string $what) use ($o, $sc): void {
        $o->missed[] = "{$sc->name}: {$what}";
    };
    if ($duplicates > 0) {
        $miss("{$duplicates} duplicate(s)");
    }
    if ($tally->lost > 0) {
        $miss("{$tally->lost} silent loss(es), e.g. " . ($o->samples['silent loss'] ?? ''));
    }
    if ($phantoms > 0) {
        $miss("{$phantoms} message(s) received that were never published");
    }
    if ($tally->over > 0) {
        $miss(sprintf('%d call(s) over the bound of %.2f s (+%.0f ms), e.g. %s', $tally->over, $s->bound(), $s->slack * 1000, $o->samples['over the bound'] ?? ''));
    }
    // Strict reading of "every confirmed call reached the new topology": a confirmed call that ran on
    // a node the topology had already left (0 receivers there) counts as a loss. Off by default:
    // the subscriber notices a move a few ms after the node acted, so a call at that very moment
    // can be counted here without having gone anywhere wrong (docs/TOPOLOGY.md).
    if ($sc->topology !== null && getenv('QRPUSH_FAULT_STRICT_TOPOLOGY') === '1' && $tally->staleNode > 0) {
        $miss("{$tally->staleNode} confirmed call(s) ran on a node the topology had left (0 receivers), e.g. " . ($o->samples['stale node'] ?? ''));
    }
    if ($tally->untyped > 0) {
        $miss("{$tally->untyped} call(s) threw something other than a QrPush exception");
    }
    if ($recovery !== null && $recovery >= $sc->recoveryBound) {
        $miss(is_finite($recovery) ? sprintf('recovery took %.3f s', $recovery) : 'no confirmed publish after the fault ended');
    }
    if ($load->fcgiFailures > 0) {
        $miss("{$load->fcgiFailures} request(s) without a proper answer, e.g. " . ($o->samples['FastCGI'] ?? $o->samples['fork'] ?? ''));
    }
    if ($sc->noErrors && $tally->exceptions !== []) {
        $first = array_key_first($tally->exceptions);
        $miss('exceptions where none are expected: ' . json_encode($tally->exceptions) . ', e.g. ' . $o->samples[$first]
            . ' ' . json_encode($o->samples["{$first} (record)"], JSON_UNESCAPED_SLASHES));
    }
    if ($load->shared > 0 || $load->wrongPid > 0) {
        $miss("{$load->shared} forked child(ren) held a socket of their parent ({$load->wrongPid} with the parent's stats)");
    }
    if ($stale !== []) {
        $miss('connections of processes that are gone: ' . implode(', ', $stale));
    }
    if ($sc->fork && $load->forks === 0) {
        $miss('no request forked');
    }
    if ($load->requests < 20) {
        $miss("only {$load->requests} requests: the load generator did not run");
    }
}
