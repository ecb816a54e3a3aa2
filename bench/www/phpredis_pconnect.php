<?php
// phpredis pconnect with the password in the connect options (AUTH is part of phpredis's own
// liveness check of the pooled connection: AUTH + ECHO in one round trip per request).
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
$r = bench_phpredis_pconnect();
if ($r->publish(BENCH_CHANNEL, $msg) === false) {
    throw new RuntimeException('publish failed: ' . $r->getLastError());
}
echo 'ok';
