<?php
// ext-zmq: a persistent PUSH socket per worker, to the PULL drainer (no reply, no delivery check).
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
bench_zmq_push()->send($msg);
echo 'ok';
