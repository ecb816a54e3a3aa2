<?php
// phpredis at its fastest: pooled connection, password at connect time, and the per-request ECHO
// liveness check switched off (redis.pconnect.echo_check_liveness=0, for this request only: a
// connection the server closed while idle then fails the request instead of being replaced).
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
ini_set('redis.pconnect.echo_check_liveness', '0');
$r = new Redis();
$r->pconnect(bench_host(), bench_port(), BENCH_TIMEOUT, 'bench-nocheck', 0, BENCH_TIMEOUT, ['auth' => [bench_pass()]]);
if ($r->publish(BENCH_CHANNEL, $msg) === false) {
    throw new RuntimeException('publish failed: ' . $r->getLastError());
}
echo 'ok';
