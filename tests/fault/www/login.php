<?php

declare(strict_types=1);

/*
 * The topology fault table's login endpoint under php-fpm: one whole QR login per request, as the
 * browser and the phone would drive it through the site (start, scan, approve, status with the
 * browser secret, redeem), on the pool's default client (qrpush.* directives). The scanning user is
 * new for every flow (the per-user scan limit is not what is tested). Answers one JSON line:
 *   {"id":..., "ok":1, "us":<µs>, "t0":..., "t1":...}                       every step done, redeemed
 *   {"id":..., "ok":0, "step":"scan", "e":"QrPush\\ConnectionException", "m":"...", ...}
 * A step that throws ends the flow (nothing is retried: a step that may have run would be refused
 * the second time, which is the login's own rule, not the topology's).
 *
 * ?id=<id>
 */

header('Content-Type: application/json');
$id = (string) ($_GET['id'] ?? '');
$r = ['id' => $id];
$t0 = microtime(true);
$h0 = hrtime(true);
$step = 'start';
try {
    $login = QrPush\Login::start('198.51.100.7', 'FaultSuite/1.0');
    $step = 'scan';
    QrPush\Login::scan($login['qr'], "fault-user-{$id}", 'FaultPhone/1.0');
    $step = 'approve';
    $approved = QrPush\Login::approve($login['id'], "fault-user-{$id}", 'Fault');
    $step = 'status';
    $status = QrPush\Login::status($login['id'], $login['browser_secret']);
    $step = 'redeem';
    $user = QrPush\Login::redeem($login['id'], $status['ticket'], $login['browser_secret'], $approved['confirmation_code']);
    $r['ok'] = $user === "fault-user-{$id}" ? 1 : 0;
    if ($r['ok'] === 0) {
        $r['step'] = 'redeem';
        $r['e'] = 'wrong user';
        $r['m'] = 'redeem() returned ' . $user;
    }
} catch (Throwable $e) {
    $r['ok'] = 0;
    $r['step'] = $step;
    $r['e'] = get_class($e);
    $r['m'] = substr($e->getMessage(), 0, 300);
}
$r['us'] = intdiv(hrtime(true) - $h0, 1000);
$r['t0'] = $t0;
$r['t1'] = microtime(true);
$r['pid'] = getmypid();
echo json_encode($r);
