<?php
// php-fpm endpoint of tests/leaks/run: publishes `n` messages (strings and JSON, plus a batch
// every 1000) and answers with this worker's resident set size after them.
header('Content-Type: application/json');
$n = (int) ($_GET['n'] ?? 100000);
$channel = 'rss:' . getmypid();
for ($i = 0; $i < $n; $i++) {
    if ($i % 1000 === 999) {
        QrPush::publishMany([[$channel, "b{$i}"], [$channel, ['b' => $i]]]);
        $i++;
        continue;
    }
    QrPush::publish($channel, $i % 2 ? "message {$i}" : ['i' => $i, 'f' => $i / 7, 's' => 'é']);
}
preg_match('/^VmRSS:\s+(\d+) kB/m', (string) file_get_contents('/proc/self/status'), $m);
$stats = QrPush::stats();
echo json_encode(['pid' => getmypid(), 'rss_kb' => (int) $m[1], 'published' => $stats['published'],
    'connections_created' => $stats['connections_created'], 'failed' => $stats['failed'],
    'memory_usage' => memory_get_usage(true)]);
