<?php
// Memory curve: ?c=qrpush|phpredis&n=N publishes N messages in this worker, then reports its memory.
require __DIR__ . '/../php/common.php';
$n = (int) ($_GET['n'] ?? 0);
$msg = bench_payload(100);
switch ($_GET['c'] ?? '') {
    case 'qrpush':
        for ($i = 0; $i < $n; $i++) QrPush::publish(BENCH_CHANNEL, $msg);
        break;
    case 'phpredis':
        $r = bench_phpredis_pconnect();
        for ($i = 0; $i < $n; $i++) $r->publish(BENCH_CHANNEL, $msg);
        break;
    default:
        throw new InvalidArgumentException('c must be qrpush or phpredis');
}
header('Content-Type: application/json');
echo json_encode(['pid' => getmypid()] + bench_self_memory());
