<?php
// tests/threads/run checks that it tests what it means to: ZTS PHP as an Apache module.
header('Content-Type: application/json');
echo json_encode([
    'sapi' => PHP_SAPI,
    'zts' => PHP_ZTS,
    'version' => PHP_VERSION,
    'qrpush' => phpversion('qrpush'),
    'pid' => getmypid(),
    'pool_size' => extension_loaded('qrpush') ? QrPush::stats()['pool_size'] : null,
]);
