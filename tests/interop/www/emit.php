<?php

/**
 * Emits with QrPush\SocketIo what the POSTed JSON describes:
 *   {"url": a qrpush.url for a client of its own (default: the default client), "options": {...}
 *    (the constructor's), "namespace": "/admin", "to": [...], "except": [...],
 *    "flags": [["volatile", true], ["compress", false]] (applied in order), "event": "e",
 *    "args": NAME (a list of PHP values from ../socketio/args.php) or "values": [...] (the arguments
 *    themselves, as JSON)}
 * Answers {"receivers": int, "args": the arguments as JSON}: what a Node.js client should receive,
 * and what the test hands the real @socket.io/redis-emitter to compare bytes.
 */

declare(strict_types=1);

header('Content-Type: application/json');
$spec = json_decode((string) file_get_contents('php://input'), true, 16, JSON_THROW_ON_ERROR);
$args = $spec['values'] ?? (require __DIR__ . '/../socketio/args.php')[$spec['args']];
$client = isset($spec['url']) ? new QrPush\Client($spec['url']) : null;
$io = new QrPush\SocketIo($client, $spec['options'] ?? []);
if (isset($spec['namespace'])) {
    $io = $io->of($spec['namespace']);
}
if (isset($spec['to'])) {
    $io = $io->to($spec['to']);
}
if (isset($spec['except'])) {
    $io = $io->except($spec['except']);
}
foreach ($spec['flags'] ?? [] as [$flag, $value]) {
    $io = $flag === 'volatile' ? $io->volatile() : $io->compress($value);
}
$receivers = $io->emit($spec['event'], ...$args);
echo json_encode(
    ['receivers' => $receivers, 'args' => json_encode($args, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION)],
    JSON_THROW_ON_ERROR,
);
