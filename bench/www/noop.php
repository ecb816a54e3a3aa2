<?php
// Baseline: the same bootstrap as every other endpoint, no publish.
require __DIR__ . '/../php/common.php';
$msg = bench_payload(100);
echo 'ok';
