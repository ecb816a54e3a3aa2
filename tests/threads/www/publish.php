<?php
// Apache (event MPM, ZTS mod_php) endpoint of tests/threads/run: publishes a unique id with the
// static facade and says which process and thread served it (response headers, logged by Apache).
$id = bin2hex(random_bytes(8));
$thread = basename((string) @readlink('/proc/thread-self')); // "<tid>" of /proc/<pid>/task/<tid>
try {
    $receivers = QrPush::publish($_GET['channel'] ?? 'threads:load', $id);
} catch (Throwable $e) {
    http_response_code(500);
    echo get_class($e), ': ', $e->getMessage(), "\n";
    return;
}
if ($receivers !== 1) {
    http_response_code(500);
    echo "published to {$receivers} subscribers instead of 1\n";
    return;
}
$stats = QrPush::stats();
header("X-Qrpush-Id: {$id}");
header("X-Qrpush-Thread: {$thread}");
header("X-Qrpush-In-Use: {$stats['pool_in_use']}");
header("X-Qrpush-Created: {$stats['connections_created']}");
echo "ok {$id}\n";
