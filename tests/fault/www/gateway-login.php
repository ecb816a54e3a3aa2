<?php

declare(strict_types=1);

/*
 * The topology fault table's logins for the gateway's browsers (tests/fault/gateway.php), one step
 * per request through the pool's default client, as the site would run them:
 *   ?op=start                  QrPush\Login::start(): {"id", "qr", "token" (gateway_token), "channel"}
 *   ?op=scan&qr=..&user=..     QrPush\Login::scan()
 *   ?op=approve&id=..&user=..  QrPush\Login::approve()
 * Answers {"ok":1, ...} or {"ok":0, "e": <class>, "m": <message>}.
 */

header('Content-Type: application/json');
try {
    $r = ['ok' => 1];
    switch ($_GET['op'] ?? '') {
        case 'start':
            $login = QrPush\Login::start('198.51.100.8', 'FaultBrowser/1.0');
            $r += ['id' => $login['id'], 'qr' => $login['qr'], 'token' => $login['gateway_token']];
            // The per-login channel, as the extension and the gateway name it.
            $r['channel'] = ini_get('qrpush.channel_prefix') . ini_get('qrpush.login_channel') . ':' . $login['id'];
            break;
        case 'scan':
            QrPush\Login::scan((string) $_GET['qr'], (string) $_GET['user'], 'FaultPhone/1.0');
            break;
        case 'approve':
            QrPush\Login::approve((string) $_GET['id'], (string) $_GET['user'], 'Fault');
            break;
        default:
            throw new InvalidArgumentException('op must be start, scan or approve');
    }
} catch (Throwable $e) {
    $r = ['ok' => 0, 'e' => get_class($e), 'm' => substr($e->getMessage(), 0, 300)];
}
$r['t'] = microtime(true);
echo json_encode($r);
