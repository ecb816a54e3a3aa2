<?php
// QrPush\Client made per request over rediss:// (TLS 1.3, rustls) to the same Redis's TLS port: the
// worker keeps its TLS session in the pool, so the handshake is paid once per worker.
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
bench_qrpush_client(true)->publish(BENCH_CHANNEL, $msg);
echo 'ok';
