<?php

declare(strict_types=1);

/*
 * The fault-injection suite for one flavour (see tests/fault/run, which runs it for NTS and ZTS):
 * publishers under load — php-fpm workers publishing through the static facade, driven by a FastCGI
 * load generator, one unique id per message — and a subscriber counting every id, while one fault
 * per scenario is injected into Redis or into the TCP path. One table row per scenario; exit status
 * 1 when a target is missed.
 *
 *   php suite.php --flavour nts|zts --ext <libqrpush.so> --fpm <php-fpm> [--soak] [--topology --gateway <qrpush-gateway>] [--only a,b] [--rules] [--json out]
 *
 * --topology: the topology fault table instead (topology.php): Sentinel and Cluster faults, the
 * counting subscriber following the topology, and the given gateway with browsers waiting on
 * logins (gateway.php, browsers.php).
 *
 * The parts: scenarios.php (settings and the faults), stack.php (one scenario's processes, end to
 * end), analysis.php (figures and targets), report.php (the table); the processes they start are
 * loadgen.php, subscriber.php, proxy.php, www/publish.php under php-fpm, and redis-server. They are
 * started by the PHP tests' harness (tests/php/Support: Processes, RedisServer, Fpm).
 */

require __DIR__ . '/../php/Support/Processes.php';
require __DIR__ . '/../php/Support/Resp.php';
require __DIR__ . '/../php/Support/RedisServer.php';
require __DIR__ . '/../php/Support/PhpProcess.php';
require __DIR__ . '/../php/Support/Fpm.php';
require __DIR__ . '/../php/Support/RedisSentinel.php';
require __DIR__ . '/../php/Support/RedisCluster.php';
require __DIR__ . '/scenarios.php';
require __DIR__ . '/topology.php';
require __DIR__ . '/gateway.php';
require __DIR__ . '/stack.php';
require __DIR__ . '/analysis.php';
require __DIR__ . '/report.php';

const PHP_CLI = PHP_BINARY;

$opts = getopt('', ['flavour:', 'ext:', 'fpm:', 'gateway:', 'soak', 'topology', 'only:', 'json:', 'rules']);
$topology = isset($opts['topology']);
$flavour = $opts['flavour'] ?? 'nts';
$ext = $opts['ext'] ?? '';
$fpmBinary = $opts['fpm'] ?? '';
$soak = isset($opts['soak']);
$only = isset($opts['only']) ? explode(',', $opts['only']) : null;
$gateway = $opts['gateway'] ?? null;
if (!is_file($ext) || !is_executable($fpmBinary) || ($topology && ($gateway === null || !is_executable($gateway)))) {
    fwrite(STDERR, "usage: php suite.php --flavour nts|zts --ext <libqrpush.so> --fpm <php-fpm> [--soak] [--topology --gateway <qrpush-gateway>] [--only a,b] [--json out]\n");
    exit(2);
}

// connect_timeout and timeout are 0.25 s rather than the 1 s defaults so that every fault outlasts
// several bounds within a short run; breaker_cooldown keeps its default (0.5 s). A path that never
// delivers what it accepted (the blackhole) can delay recovery by up to connect_timeout (a trial in
// flight) + breaker_cooldown: the recovery target < 1 s needs that sum below 1 s.
$settings = $soak
    ? new Settings(workers: 8, concurrency: 8, rate: 0, connectTimeout: 0.25, timeout: 0.25,
        before: 2.0, after: 3.0, hold: 3.0, cycles: 4, slack: 0.05)
    : new Settings(workers: 4, concurrency: 4, rate: 0, connectTimeout: 0.25, timeout: 0.25,
        before: 0.4, after: 0.8, hold: 1.0, cycles: 1, slack: 0.05);
if ($topology) {
    // A failover settles in seconds, not in tens of milliseconds: longer load around each fault.
    // Two workers more than the publishing load's concurrency: one for the login flows beside it,
    // one for the gateway's logins (a load generator's kept-alive FastCGI connection holds its worker).
    $settings = $soak
        ? new Settings(workers: 10, concurrency: 8, rate: 0, connectTimeout: 0.25, timeout: 0.25,
            before: 1.0, after: 1.5, hold: 2.0, cycles: 3, slack: 0.05)
        : new Settings(workers: 6, concurrency: 4, rate: 0, connectTimeout: 0.25, timeout: 0.25,
            before: 0.5, after: 1.0, hold: 1.0, cycles: 1, slack: 0.05);
}

$outcomes = [];
$missed = [];
$t0 = microtime(true);
foreach ($topology ? topologyScenarios($settings) : scenarios($settings) as $sc) {
    if ($only !== null && !in_array($sc->name, $only, true) && !array_filter($only, fn ($o) => str_contains($sc->name, $o))) {
        continue;
    }
    $t = microtime(true);
    try {
        $o = runScenario($sc, $settings, $flavour, $ext, $fpmBinary, $gateway);
        $outcomes[] = $o;
        $missed = array_merge($missed, $o->missed);
        fprintf(STDERR, "  %-32s %5.1f s  %s\n", $sc->name, microtime(true) - $t, $o->missed === [] ? 'ok' : 'MISSED');
        if (getenv('QRPUSH_FAULT_VERBOSE') !== false) {
            fwrite(STDERR, '    ' . json_encode($o->row) . "\n    " . json_encode($o->samples) . "\n");
        }
    } catch (Throwable $e) {
        $missed[] = "{$sc->name}: the scenario could not run: " . $e->getMessage();
        fprintf(STDERR, "  %-32s %5.1f s  ERROR %s\n", $sc->name, microtime(true) - $t, $e->getMessage());
    }
}
printTable($flavour, $settings, $outcomes, $topology);
if (isset($opts['rules'])) {
    $topology ? printTopologyRules($settings) : printRules($settings);
}
if (isset($opts['json'])) {
    $rows = array_map(fn (Outcome $o): array => $o->row, $outcomes);
    file_put_contents($opts['json'], json_encode(['flavour' => $flavour, 'rows' => $rows, 'missed' => $missed], JSON_PRETTY_PRINT));
}
printf("%s: %d scenarios in %.1f s\n", strtoupper($flavour), count($outcomes), microtime(true) - $t0);
if ($missed !== []) {
    echo "\nTARGETS MISSED (" . strtoupper($flavour) . "):\n";
    foreach ($missed as $m) {
        echo "  - {$m}\n";
    }
    exit(1);
}
exit(0);
