<?php

/**
 * Publishes one case of the Laravel fixture with QrPush\Client::broadcast() (the default client's
 * Redis, the case's prefix as channel_prefix) and answers what Redis should now carry.
 *   GET /broadcast.php?case=NAME   → {"receivers": int, "published": {channel: message}}
 */

declare(strict_types=1);

header('Content-Type: application/json');
$cases = require __DIR__ . '/../laravel/broadcast-fixture.php';
$case = $cases[$_GET['case'] ?? ''] ?? null;
if ($case === null) {
    http_response_code(404);
    exit(json_encode(['error' => 'no such case']));
}
$client = new QrPush\Client(null, ['channel_prefix' => $case['prefix']]);
$receivers = $client->broadcast($case['channels'], $case['event'], $case['data'], $case['socket']);
echo json_encode(['receivers' => $receivers, 'published' => $case['published']], JSON_THROW_ON_ERROR);
