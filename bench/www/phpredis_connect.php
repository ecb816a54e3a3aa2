<?php
// phpredis without pooling: connect, auth, publish, close on every request.
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
$r = new Redis();
$r->connect(bench_host(), bench_port(), BENCH_TIMEOUT, null, 0, BENCH_TIMEOUT);
$r->auth(bench_pass());
if ($r->publish(BENCH_CHANNEL, $msg) === false) {
    throw new RuntimeException('publish failed: ' . $r->getLastError());
}
$r->close();
echo 'ok';
