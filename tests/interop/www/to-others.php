<?php

/**
 * What `broadcast(new OrderUpdated($order))->toOthers()` publishes from a request whose
 * X-Socket-ID header is `socket`: event OrderUpdated on private-orders.7 with that socket id.
 *   GET /to-others.php?socket=ID   → {"receivers": int}
 */

declare(strict_types=1);

header('Content-Type: application/json');
$client = new QrPush\Client(null, ['channel_prefix' => 'laravel_database_']);
$receivers = $client->broadcast('private-orders.7', 'OrderUpdated', ['id' => 7, 'status' => 'paid'], (string) ($_GET['socket'] ?? ''));
echo json_encode(['receivers' => $receivers], JSON_THROW_ON_ERROR);
