<?php
// predis with a persistent stream (it still sends AUTH on every new Client).
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
bench_predis()->publish(BENCH_CHANNEL, $msg);
echo 'ok';
