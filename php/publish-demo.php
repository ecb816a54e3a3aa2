<?php

declare(strict_types=1);

/*
 * The small publish demo (`bash scripts/demo publish`): what a controller does with QrPush, in a
 * CLI script. scripts/demo runs it with the extension loaded and qrpush.url pointing at a private
 * redis-server, while `redis-cli SUBSCRIBE qr-login-events` shows what arrives.
 */

$sid = bin2hex(random_bytes(8));
$n = QrPush::publish('qr-login-events', ['sessionId' => $sid, 'status' => 'confirmed', 'user' => 'demo']);
echo "PHP published {\"sessionId\":\"{$sid}\",...} to qr-login-events: {$n} subscriber(s) received it\n";

$counts = QrPush::publishMany([
    ['qr-login-events', 'plain text, byte for byte'],
    ['qr-login-events', ['n' => 1.0, 'path' => '/ü/']],
]);
echo 'publishMany (one round trip): receivers ', json_encode($counts), "\n";

printf("ping: %.1f µs\n", QrPush::ping() * 1e6);

$s = QrPush::stats();
echo "stats: published={$s['published']} connections_created={$s['connections_created']} p50={$s['latency_us']['p50']}µs\n";
