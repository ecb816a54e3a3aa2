<?php
// phpredis pconnect, then auth() on every request: what most applications write.
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
$r = new Redis();
$r->pconnect(bench_host(), bench_port(), BENCH_TIMEOUT, 'bench-auth', 0, BENCH_TIMEOUT);
$r->auth(bench_pass());
if ($r->publish(BENCH_CHANNEL, $msg) === false) {
    throw new RuntimeException('publish failed: ' . $r->getLastError());
}
echo 'ok';
