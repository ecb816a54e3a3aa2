<?php

declare(strict_types=1);

/*
 * End-to-end check of a freshly built php_qrpush.dll on a Windows runner, independent of the
 * PHPUnit suite: the extension is loaded in the expected flavour, a raw RESP subscriber on the
 * runner's Redis (Memurai) receives exactly what QrPush publishes, ping works, an unreachable
 * endpoint fails with QrPush\ConnectionException within its bound, and unix:// URLs are refused
 * (Windows builds have TCP only).
 *
 *   php -n -d extension=C:\path\php_qrpush.dll .github/scripts/windows-smoke.php redis://127.0.0.1:6379 ts|nts
 */

$url = $argv[1] ?? 'redis://127.0.0.1:6379';
$flavour = $argv[2] ?? '';
$checks = 0;

function fail(string $why): never
{
    fwrite(STDERR, "windows-smoke: FAILED: {$why}\n");
    exit(1);
}

function check(bool $ok, string $what): void
{
    global $checks;
    if (!$ok) {
        fail($what);
    }
    $checks++;
    echo "ok {$checks} - {$what}\n";
}

/** One RESP command. */
function resp(string ...$args): string
{
    $out = '*' . count($args) . "\r\n";
    foreach ($args as $arg) {
        $out .= '$' . strlen($arg) . "\r\n" . $arg . "\r\n";
    }
    return $out;
}

/** Reads one RESP reply (enough of RESP2 for Pub/Sub). */
function read_reply($socket): mixed
{
    $line = fgets($socket);
    if ($line === false) {
        fail('no reply from Redis (timed out or closed)');
    }
    $line = substr($line, 0, -2);
    $payload = substr($line, 1);
    switch ($line[0]) {
        case '+':
            return $payload;
        case '-':
            fail("Redis error: {$payload}");
        case ':':
            return (int) $payload;
        case '$':
            if ((int) $payload < 0) {
                return null;
            }
            $data = '';
            $want = (int) $payload + 2;
            while (strlen($data) < $want) {
                $chunk = fread($socket, $want - strlen($data));
                if ($chunk === false || $chunk === '') {
                    fail('short bulk reply');
                }
                $data .= $chunk;
            }
            return substr($data, 0, -2);
        case '*':
            $items = [];
            for ($i = 0, $n = (int) $payload; $i < $n; $i++) {
                $items[] = read_reply($socket);
            }
            return $items;
    }
    fail("unexpected RESP line: {$line}");
}

check(extension_loaded('qrpush'), 'the qrpush extension is loaded');
if ($flavour !== '') {
    check((bool) PHP_ZTS === ($flavour === 'ts'), "this PHP is " . ($flavour === 'ts' ? 'thread-safe' : 'non-thread-safe') . ' as expected');
}
echo '# PHP ', PHP_VERSION, ' ', PHP_ZTS ? 'TS' : 'NTS', ', ', PHP_OS_FAMILY, ', qrpush ', phpversion('qrpush'), "\n";

$parts = parse_url($url);
$host = $parts['host'] ?? '127.0.0.1';
$port = $parts['port'] ?? 6379;
$subscriber = @stream_socket_client("tcp://{$host}:{$port}", $errno, $errstr, 5.0);
if ($subscriber === false) {
    fail("cannot connect a subscriber to {$host}:{$port}: {$errstr}");
}
stream_set_timeout($subscriber, 5);
$channel = 'qrpush-windows-smoke-' . bin2hex(random_bytes(4));
fwrite($subscriber, resp('SUBSCRIBE', $channel));
check(read_reply($subscriber) === ['subscribe', $channel, 1], "subscribed to {$channel}");

$client = new QrPush\Client($url, ['timeout' => 2.0, 'connect_timeout' => 2.0]);
$ping = $client->ping();
check(is_float($ping) && $ping > 0.0 && $ping < 2.0, sprintf('ping() answered in %.6f s', $ping));

$receivers = $client->publish($channel, ['sessionId' => 'abc', 'status' => 'confirmed', 'n' => 1.0, 'ü' => "\u{1F600}"]);
check($receivers === 1, "publish() of an array reached 1 receiver (got {$receivers})");
$message = read_reply($subscriber);
$expected = json_encode(['sessionId' => 'abc', 'status' => 'confirmed', 'n' => 1.0, 'ü' => "\u{1F600}"],
    JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION);
check($message === ['message', $channel, $expected], 'the subscriber got the JSON byte for byte: ' . $expected);

$binary = "bytes\0\r\n\xff as they are";
check($client->publish($channel, $binary) === 1, 'publish() of a binary string reached 1 receiver');
check(read_reply($subscriber) === ['message', $channel, $binary], 'the subscriber got the string byte for byte');

$counts = $client->publishMany([[$channel, 'one'], [$channel, 'two']]);
check($counts === [1, 1], 'publishMany() returned one count per message');
check(read_reply($subscriber)[2] === 'one' && read_reply($subscriber)[2] === 'two', 'publishMany() delivered in order');

$start = microtime(true);
try {
    (new QrPush\Client('redis://127.0.0.1:1', ['connect_timeout' => 0.5, 'timeout' => 0.5]))->publish($channel, 'x');
    fail('publishing to 127.0.0.1:1 did not throw');
} catch (QrPush\ConnectionException | QrPush\TimeoutException $e) {
    $took = microtime(true) - $start;
    check($took < 3.0, sprintf('an unreachable endpoint threw %s within %.2f s: %s', $e::class, $took, $e->getMessage()));
}

// Windows builds refuse unix:// when the URL is parsed (the constructor); elsewhere a relative
// socket path is refused at the same place, which is what this checks off Windows.
$unixUrl = PHP_OS_FAMILY === 'Windows' ? 'unix:///tmp/redis.sock' : 'unix://relative';
try {
    new QrPush\Client($unixUrl);
    fail("{$unixUrl} was accepted");
} catch (\ValueError $e) {
    check(true, "{$unixUrl} is refused when the client is made: " . $e->getMessage());
}

echo "windows-smoke: {$checks} passed, 0 failed\n";
