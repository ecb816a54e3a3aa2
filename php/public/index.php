<?php

declare(strict_types=1);

/*
 * QrPush QR-login demo: the front controller (no framework). Every request comes here (see
 * php/nginx.conf.template). The login state lives in Redis, managed by the extension's
 * QrPush\Login; this file only maps HTTP to it.
 *
 *   GET  /                     login page: shows the QR code, follows the login over the WebSocket
 *                              gateway (/ws/, polling only while it is unreachable), shows who approved,
 *                              asks for the phone's code, redeems
 *   GET  /phone                the phone app's stand-in (user "demo"): paste/scan, see the browser, decide,
 *                              show the confirmation code
 *   POST /api/login/start      browser: new login; the browser secret goes into an HttpOnly cookie,
 *                              the gateway token (when qrpush.gateway_secret is set) to the page
 *   GET  /api/login/status     browser: ?id=...; with its cookie an approved login returns a ticket
 *                              and the approver's display name
 *   POST /api/login/scan       phone: {"qr": ...} -> which browser asks (IP, user agent, time)
 *   POST /api/login/approve    phone: {"id": ...} -> the confirmation code to show
 *   POST /api/login/reject     phone: {"id": ...}
 *   POST /api/login/redeem     browser: {"id": ..., "ticket": ..., "code": ...} + cookie -> a fresh session
 *   POST /api/login/cancel     browser: {"id": ...} + cookie
 *   GET  /api/me               who is logged in here;  POST /api/logout
 *   GET  /notifications        the phone user's notifications, pushed over the gateway (general channel
 *                              notifications#<user>, durable: missed ones are replayed after a reconnect)
 *   GET  /api/notifications/token   a subscription token for that channel (QrPush::subscriptionToken)
 *   POST /api/notifications/send    {"text": ...} -> QrPush::publishDurable to that channel
 *
 * POST bodies must be JSON (Content-Type: application/json): a cross-site HTML form cannot send
 * that, and every cookie is SameSite=Strict, so no endpoint can be driven by another site.
 */

require __DIR__ . '/../src/QrCode.php';
require __DIR__ . '/../src/DemoSession.php';

use QrDemo\DemoSession;
use QrDemo\QrCode;

const SECRET_COOKIE_PREFIX = 'qrl_';

/** The phone app's logged-in user. A real app has its own auth; the demo trusts a cookie. */
function phone_user(): string
{
    $user = $_COOKIE['demo_user'] ?? 'demo';
    return \is_string($user) && preg_match('/^[a-z][a-z0-9_-]{0,31}$/D', $user) ? $user : 'demo';
}

/**
 * How the browser names the phone's user before it redeems ("continue as ...?"). Shown to whoever
 * sits at the browser, who may be someone else: a display name, never an email address.
 */
function phone_display_name(): string
{
    return ucfirst(phone_user());
}

/** The browser secret of login `$id`, from its own cookie (one cookie per login: tabs do not clash). */
function browser_secret(string $id): string
{
    $value = $_COOKIE[SECRET_COOKIE_PREFIX . $id] ?? '';
    return \is_string($value) ? $value : '';
}

function secret_cookie(string $id, string $value, int $maxAge): void
{
    // The id is base64url: always a valid cookie name. Path: only the login API ever sees it.
    setcookie(SECRET_COOKIE_PREFIX . $id, $value, [
        'expires' => $maxAge > 0 ? time() + $maxAge : 1,
        'path' => '/api/login/',
        'httponly' => true,
        'samesite' => 'Strict',
    ]);
}

/** @return array<string, mixed> */
function json_body(): array
{
    $type = strtolower(trim(explode(';', $_SERVER['CONTENT_TYPE'] ?? '')[0]));
    if ($type !== 'application/json') {
        respond(415, ['error' => 'UnsupportedMediaType', 'message' => 'POST a JSON body (Content-Type: application/json)']);
    }
    $body = json_decode((string) file_get_contents('php://input'), true, 4);
    if (!\is_array($body)) {
        respond(400, ['error' => 'BadRequest', 'message' => 'the body must be a JSON object']);
    }
    return $body;
}

function field(array $body, string $name): string
{
    $value = $body[$name] ?? null;
    if (!\is_string($value) || $value === '' || \strlen($value) > 1024) {
        respond(400, ['error' => 'BadRequest', 'message' => "\"{$name}\" must be a non-empty string"]);
    }
    return $value;
}

function respond(int $status, array $data): never
{
    http_response_code($status);
    header('Content-Type: application/json');
    header('Cache-Control: no-store');
    echo json_encode($data, JSON_UNESCAPED_SLASHES);
    exit;
}

/** A login exception as an HTTP answer; the message never holds a secret (the extension sees to it). */
function refused(\Throwable $e): never
{
    $status = match (true) {
        $e instanceof QrPush\LoginNotFoundException => 404,
        $e instanceof QrPush\LoginExpiredException => 410,
        $e instanceof QrPush\LoginStateException, $e instanceof QrPush\LoginTicketUsedException => 409,
        $e instanceof QrPush\LoginRateLimitedException => 429,
        $e instanceof QrPush\LoginException => 403, // wrong user, secret, ticket or confirmation code
        $e instanceof \ValueError => 400,
        default => 503, // Redis unreachable or too slow: try again
    };
    $class = substr(strrchr('\\' . $e::class, '\\'), 1);
    respond($status, ['error' => $class, 'code' => $e->getCode(), 'message' => $e->getMessage()]);
}

/** The HTML pages: inline script allowed by nonce only; never framed (QRLJacking by framing). */
function page(string $view): never
{
    $nonce = base64_encode(random_bytes(16));
    header('Content-Type: text/html; charset=utf-8');
    header('Cache-Control: no-store');
    header("Content-Security-Policy: default-src 'none'; script-src 'nonce-{$nonce}'; style-src 'nonce-{$nonce}'; "
        . "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    header('X-Frame-Options: DENY');
    header('Referrer-Policy: no-referrer');
    require __DIR__ . "/../views/{$view}.php";
    exit;
}

$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';

try {
    switch ("{$method} {$path}") {
        case 'GET /':
            page('login');

        case 'GET /phone':
            page('phone');

        case 'POST /api/login/start':
            json_body();
            $login = QrPush\Login::start($_SERVER['REMOTE_ADDR'] ?? '', $_SERVER['HTTP_USER_AGENT'] ?? '');
            $lifetime = (int) ceil(((float) ini_get('qrpush.login_pending_ttl')) + ((float) ini_get('qrpush.login_approved_ttl')));
            secret_cookie($login['id'], $login['browser_secret'], max(60, $lifetime));
            unset($login['browser_secret']); // the page's script never sees it
            if (($login['gateway_token'] ?? null) === null) {
                unset($login['gateway_token']); // no gateway configured: the page polls
            }
            $login['qr_svg'] = QrCode::encode($login['qr'])->svg();
            respond(201, $login);

        case 'GET /api/login/status':
            $id = (string) ($_GET['id'] ?? '');
            $secret = browser_secret($id);
            respond(200, QrPush\Login::status($id, $secret === '' ? null : $secret));

        case 'POST /api/login/scan':
            $body = json_body();
            $info = QrPush\Login::scan(trim(field($body, 'qr')), phone_user(), $_SERVER['HTTP_USER_AGENT'] ?? '');
            respond(200, $info);

        case 'POST /api/login/approve':
            // The code is for the phone's screen only: its user types it into the browser.
            respond(200, QrPush\Login::approve(field(json_body(), 'id'), phone_user(), phone_display_name()));

        case 'POST /api/login/reject':
            respond(200, QrPush\Login::reject(field(json_body(), 'id'), phone_user()));

        case 'POST /api/login/redeem':
            $body = json_body();
            $id = field($body, 'id');
            $user = QrPush\Login::redeem($id, field($body, 'ticket'), browser_secret($id), field($body, 'code'));
            secret_cookie($id, '', 0);
            DemoSession::start($user); // a fresh session id: whatever id the browser had is dropped
            respond(200, ['user' => $user]);

        case 'POST /api/login/cancel':
            $id = field(json_body(), 'id');
            $status = QrPush\Login::cancel($id, browser_secret($id));
            secret_cookie($id, '', 0);
            respond(200, $status);

        case 'GET /notifications':
            page('notifications');

        case 'GET /api/notifications/token':
            $user = phone_user();
            respond(200, [
                'channel' => "notifications#{$user}",
                'token' => QrPush::subscriptionToken(["notifications#{$user}"], 3600, $user),
            ]);

        case 'POST /api/notifications/send':
            $user = phone_user();
            $at = QrPush::publishDurable("notifications#{$user}", ['text' => field(json_body(), 'text'), 'sent_at' => time()]);
            respond(200, $at);

        case 'GET /api/me':
            respond(200, ['user' => DemoSession::user()]);

        case 'POST /api/logout':
            json_body();
            DemoSession::end();
            respond(200, ['user' => null]);

        default:
            respond(404, ['error' => 'NotFound', 'message' => "no route {$method} {$path}"]);
    }
} catch (QrPush\Exception | \ValueError $e) {
    refused($e);
}
