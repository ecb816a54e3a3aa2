<?php
// QrPush\Client made per request (it shares the worker's pool: same endpoint, same connection), TCP.
// The baseline of the TLS comparison: qrpush_client_tls.php differs only in the URL.
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
bench_qrpush_client(false)->publish(BENCH_CHANNEL, $msg);
echo 'ok';
