<?php
// The workload tests/leaks/run runs under valgrind (USE_ZEND_ALLOC=0): every path of the
// extension many times — string and JSON publishes, batches, per-instance clients, rejected
// arguments (exceptions), stats, and the full QR login flow with its refusals.
//   php -d extension=... -d qrpush.url=... workload.php PUBLISHES LOGINS
$publishes = (int) ($argv[1] ?? 100000);
$logins = (int) ($argv[2] ?? 200);
$channel = 'leaks:' . getmypid();
$count = 0;

// 1. Single publishes: 60 % strings, 40 % JSON of arrays/objects/floats/Unicode.
$single = intdiv($publishes * 6, 10);
for ($i = 0; $i < $single; $i++) {
    $message = $i % 5 < 3
        ? "message {$i}"
        : ['i' => $i, 'f' => $i / 3, 'u' => "é\u{2028}😀", 'list' => [1, 2.5, null, true], 'o' => (object) ['k' => 'v']];
    QrPush::publish($channel, $message);
    $count++;
}
// 2. Batches of 100 through per-instance clients (created and destroyed as they go).
$client = null;
for ($b = 0; $count < $publishes; $b++) {
    if ($b % 10 === 0) {
        $client = new QrPush\Client(null, ['timeout' => 2, 'channel_prefix' => 'p:']);
    }
    $batch = [];
    for ($k = 0; $k < 100 && $count < $publishes; $k++, $count++) {
        $batch[] = [$channel, $k % 2 ? "batch {$b} {$k}" : ['b' => $b, 'k' => $k]];
    }
    $client->publishMany($batch);
}
// 3. Rejected calls: every one throws, nothing is sent.
$bad = [
    fn () => QrPush::publish('', 'x'),
    fn () => QrPush::publish("a\nb", 'x'),
    fn () => QrPush::publish('c', 42),
    fn () => QrPush::publish('c', ['x' => NAN]),
    fn () => QrPush::publish('c', ["\xff"]),
    fn () => QrPush::publish('c', new ArrayObject()),
    fn () => QrPush::publishMany([['c', 'ok'], ['c']]),
    fn () => new QrPush\Client('redis://u:pw@h:99999'),
    fn () => new QrPush\Client(null, ['nope' => 1]),
    fn () => QrPush\Login::scan('forged.qr', 'alice', 'phone'),
];
$thrown = 0;
for ($i = 0; $i < 1000; $i++) {
    try {
        $bad[$i % count($bad)]();
    } catch (Throwable) {
        $thrown++;
    }
}
// 4. The full login flow, and its refusals.
$redeemed = 0;
for ($i = 0; $i < $logins; $i++) {
    $login = QrPush\Login::start('203.0.113.7', "Mozilla/5.0 run {$i}");
    if ($i % 4 === 3) {
        QrPush\Login::cancel($login['id'], $login['browser_secret']);
        continue;
    }
    QrPush\Login::scan($login['qr'], "user-{$i}", 'phone');
    try {
        QrPush\Login::approve($login['id'], 'someone-else', 'Someone');
    } catch (QrPush\LoginWrongUserException) {
        $thrown++;
    }
    $code = QrPush\Login::approve($login['id'], "user-{$i}", "User {$i}")['confirmation_code'];
    $status = QrPush\Login::status($login['id'], $login['browser_secret']);
    $ticket = $status['ticket'];
    try {
        QrPush\Login::redeem($login['id'], $ticket, 'wrong-secret', $code);
    } catch (QrPush\LoginWrongSecretException) {
        $thrown++;
    }
    try {
        QrPush\Login::redeem($login['id'], $ticket, $login['browser_secret'], $code === '00' ? '01' : '00');
    } catch (QrPush\LoginWrongCodeException) {
        $thrown++;
    }
    $redeemed += QrPush\Login::redeem($login['id'], $ticket, $login['browser_secret'], $code) === "user-{$i}" ? 1 : 0;
    try {
        QrPush\Login::redeem($login['id'], $ticket, $login['browser_secret'], $code);
    } catch (QrPush\LoginException) {
        $thrown++;
    }
}
for ($i = 0; $i < 1000; $i++) {
    QrPush::stats();
}
$stats = QrPush::stats();
echo json_encode(['publishes' => $count, 'thrown' => $thrown, 'logins_redeemed' => $redeemed,
    'published_default_client' => $stats['published'], 'failed' => $stats['failed']]), "\n";
