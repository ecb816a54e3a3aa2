<?php
// Cold worker: the first publish of a fresh PHP process (object setup, connect, AUTH when a
// password is set, PUBLISH), then a second one on the warm connection. One contender per process;
// bench/run starts many processes and reports the medians.
//   php cold.php CONTENDER       (BENCH_REDIS_PORT / BENCH_REDIS_PASS; an empty password = no AUTH)
// QrPush takes its endpoint from -d qrpush.url=... (set by bench/run to match); BENCH_LABEL names a
// variant (QrPush over rediss://).
declare(strict_types=1);
require __DIR__ . '/common.php';

$who = $argv[1] ?? '';
$pass = (string) getenv('BENCH_REDIS_PASS');
$ch = BENCH_CHANNEL;
$msg = bench_payload(100);

$t0 = hrtime(true);
switch ($who) {
    case 'qrpush':
        QrPush::publish($ch, $msg);
        $t1 = hrtime(true);
        QrPush::publish($ch, $msg);
        break;
    case 'phpredis':
        // What a php-fpm worker does on its first request with pconnect (no pooled connection yet).
        $r = new Redis();
        $opts = $pass === '' ? [] : ['auth' => [$pass]];
        $r->pconnect(bench_host(), bench_port(), BENCH_TIMEOUT, 'bench', 0, BENCH_TIMEOUT, $opts);
        if ($r->publish($ch, $msg) === false) throw new RuntimeException('publish failed');
        $t1 = hrtime(true);
        $r->publish($ch, $msg);
        break;
    case 'predis':
        require_once '/usr/share/php/Predis/autoload.php';
        $params = ['host' => bench_host(), 'port' => bench_port(), 'persistent' => true,
            'timeout' => BENCH_TIMEOUT, 'read_write_timeout' => BENCH_TIMEOUT];
        if ($pass !== '') $params['password'] = $pass;
        $c = new Predis\Client($params);
        $c->publish($ch, $msg);
        $t1 = hrtime(true);
        $c->publish($ch, $msg);
        break;
    default:
        fwrite(STDERR, "cold.php: unknown contender '{$who}'\n");
        exit(1);
}
$t2 = hrtime(true);
echo json_encode(['contender' => getenv('BENCH_LABEL') ?: $who, 'first_us' => ($t1 - $t0) / 1e3, 'second_us' => ($t2 - $t1) / 1e3]), "\n";
