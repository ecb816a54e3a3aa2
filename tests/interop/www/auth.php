<?php

/**
 * Laravel's /broadcasting/auth, as far as Laravel Echo Server needs it: the echo server POSTs
 * `channel_name` with the client's headers; 200 lets the socket join, anything else refuses it.
 * Here the user is whoever sends `Authorization: Bearer good`, allowed on `private-orders.*`
 * (what a channel route `Broadcast::channel('orders.{id}', ...)` would decide). A private channel's
 * answer is `true` (Laravel's validAuthenticationResponse() for a boolean result).
 */

declare(strict_types=1);

$channel = (string) ($_POST['channel_name'] ?? '');
$user = ($_SERVER['HTTP_AUTHORIZATION'] ?? '') === 'Bearer good';
if ($user && str_starts_with($channel, 'private-orders.')) {
    header('Content-Type: application/json');
    echo json_encode(true);
    return;
}
http_response_code(403);
echo 'Forbidden';
