<?php
// QrPush: the static facade over the worker's pooled connection (qrpush.url holds the password, so
// AUTH happens once per connection).
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
QrPush::publish(BENCH_CHANNEL, $msg);
echo 'ok';
