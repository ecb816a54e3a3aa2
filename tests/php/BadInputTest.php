<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * The bad-input matrix: wrong types, sizes and encodings, malformed URLs, options and php.ini
 * values, a 100k-pair batch with one bad pair, 600 levels of nesting, channels with CR/LF or NUL,
 * an object whose jsonSerialize() throws, and servers that answer an error, garbage, random bytes,
 * nothing at all, or hang up.
 *
 * Each case runs in its own child php (a crash there cannot take PHPUnit down, and is reported as
 * one) and must end in the exception class given, with a message containing the fragment given.
 * A subscriber on the real Redis (PSUBSCRIBE *) sees every message published during the matrix:
 * it must see none but the control case's (no partial publishes of rejected calls). The matrix is
 * printed as a table on stderr.
 */
final class BadInputTest extends TestCase
{
    /** Child php processes run at most this long (a hang is a failure, not a stuck suite). */
    private const CHILD_TIMEOUT = 30.0;

    /** Fake Redis servers, by mode: port. */
    private array $fakes = [];
    /** @var list<int> */
    private array $fakePids = [];
    private string $dir;

    protected function tearDown(): void
    {
        foreach ($this->fakePids as $pid) {
            Processes::stop($pid, Processes::SIGKILL);
        }
        $this->fakePids = [];
        if (isset($this->dir)) {
            Processes::removeDir($this->dir);
        }
        parent::tearDown();
    }

    public function testEveryBadInputIsATypedErrorWithoutACrashOrAPublish(): void
    {
        $server = $this->redis();
        $subscriber = $this->subscribe($server, '*', pattern: true);
        $this->dir = Processes::tempDir('bad-input');
        foreach (['garbage', 'negbulk', 'random', 'error', 'error_handshake', 'hangup', 'silent'] as $mode) {
            $this->fakes[$mode] = $this->startFake($mode);
        }

        $rows = [];
        $failures = [];
        foreach (self::cases() as $name => $case) {
            $case += ['ini' => [], 'prelude' => '', 'server' => null, 'stderr' => null, 'code' => null];
            $url = $case['server'] === null ? $server->url() : 'redis://127.0.0.1:' . $this->fakes[$case['server']];
            $result = $this->runCase($server->url(), $url, $case);
            $row = self::judge($name, $case, $result);
            $rows[] = $row;
            if ($row['verdict'] !== 'ok') {
                $failures[] = "{$name}: {$row['verdict']}";
            }
        }

        // The control case proves the subscriber sees what is published; nothing else arrived.
        $received = $subscriber->receive(1, 5.0);
        self::assertSame('bad-input:control', $received[0]['channel']);
        $late = $subscriber->drain();
        $subscriber->assertNothingMore(0.3, 'after the bad-input matrix,');

        self::printTable($rows, 1 + \count($late));
        self::assertSame([], $failures, implode("\n", $failures));
        self::assertSame([], $late, 'partial publishes of rejected calls');
        self::assertGreaterThanOrEqual(20, \count($rows) - 1, 'at least 20 bad inputs');
    }

    /**
     * Every case: PHP code (the body of a function that may use $client(options, url), $url,
     * $fakeUrl) and the exception it must end in.
     *
     * @return iterable<string, array<string, mixed>>
     */
    private static function cases(): iterable
    {
        // --- types ---
        yield 'message: int' => ['run' => '$client()->publish("c", 42);', 'class' => \TypeError::class, 'fragment' => 'Argument #2 ($message) must be of type string|array|object, int given'];
        yield 'message: null' => ['run' => '$client()->publish("c", null);', 'class' => \TypeError::class, 'fragment' => 'null given'];
        yield 'message: float' => ['run' => '$client()->publish("c", 1.5);', 'class' => \TypeError::class, 'fragment' => 'float given'];
        yield 'message: closure' => ['run' => '$client()->publish("c", fn () => 1);', 'class' => \TypeError::class, 'fragment' => 'contains an object of class Closure'];
        yield 'message: resource inside' => ['run' => '$client()->publish("c", ["f" => fopen("php://memory", "r")]);', 'class' => \TypeError::class, 'fragment' => 'contains a resource'];
        yield 'message: other object' => ['run' => '$client()->publish("c", [new ArrayObject([1])]);', 'class' => \TypeError::class, 'fragment' => 'contains an object of class ArrayObject'];
        yield 'channel: array (strict_types)' => ['run' => '$client()->publish(["c"], "m");', 'class' => \TypeError::class, 'fragment' => 'Invalid value given for argument `channel`', 'prelude' => 'declare(strict_types=1);'];
        // --- channels ---
        yield 'channel: empty' => ['run' => '$client()->publish("", "m");', 'class' => \ValueError::class, 'fragment' => 'Argument #1 ($channel) must not be empty'];
        yield 'channel: CR/LF (RESP injection)' => ['run' => '$client()->publish("c\r\nPUBLISH evil x", "m");', 'class' => \ValueError::class, 'fragment' => 'control characters (byte 0x0d at offset 1)'];
        yield 'channel: NUL' => ['run' => '$client()->publish("c\0d", "m");', 'class' => \ValueError::class, 'fragment' => 'control characters (byte 0x00 at offset 1)'];
        yield 'channel: 1025 bytes' => ['run' => '$client()->publish(str_repeat("c", 1025), "m");', 'class' => \ValueError::class, 'fragment' => 'must be at most 1024 bytes, got 1025'];
        // --- encodings ---
        yield 'message: invalid UTF-8 value' => ['run' => '$client()->publish("c", ["v" => "ok", "w" => "\xff\xfe"]);', 'class' => \ValueError::class, 'fragment' => 'contains malformed UTF-8 (at byte 0)'];
        yield 'message: invalid UTF-8 key' => ['run' => '$client()->publish("c", ["\xc3\x28" => 1]);', 'class' => \ValueError::class, 'fragment' => 'malformed UTF-8'];
        yield 'message: UTF-16 surrogate (CESU-8)' => ['run' => '$client()->publish("c", ["\xed\xa0\x80"]);', 'class' => \ValueError::class, 'fragment' => 'malformed UTF-8'];
        yield 'message: NAN' => ['run' => '$client()->publish("c", ["x" => NAN]);', 'class' => \ValueError::class, 'fragment' => 'NAN or INF'];
        yield 'message: -INF deep inside' => ['run' => '$client()->publish("c", [[[["x" => -INF]]]]);', 'class' => \ValueError::class, 'fragment' => 'NAN or INF'];
        // --- sizes and shapes ---
        yield 'message: 1 byte over max_payload' => ['run' => '$client(["max_payload" => 1024])->publish("c", str_repeat("x", 1025));', 'class' => \ValueError::class, 'fragment' => 'is 1025 bytes, more than qrpush.max_payload (1024 bytes)'];
        yield 'message: JSON of 200k ints over 1 MiB' => ['run' => '$client()->publish("c", range(1, 200000));', 'class' => \ValueError::class, 'fragment' => 'more than qrpush.max_payload (1048576 bytes)'];
        yield 'message: 600 levels of nesting' => ['run' => '$v = "leaf"; for ($i = 0; $i < 600; $i++) { $v = [$v]; } $client()->publish("c", $v);', 'class' => \ValueError::class, 'fragment' => 'is nested deeper than 512 levels'];
        yield 'message: 600 levels of stdClass' => ['run' => '$v = new stdClass; for ($i = 0; $i < 600; $i++) { $o = new stdClass; $o->c = $v; $v = $o; } $client()->publish("c", $v);', 'class' => \ValueError::class, 'fragment' => 'nested deeper than 512 levels'];
        yield 'message: recursive object' => ['run' => '$o = new stdClass; $o->self = $o; $client()->publish("c", $o);', 'class' => \ValueError::class, 'fragment' => 'recursive reference'];
        yield 'message: recursive array reference' => ['run' => '$a = ["x" => 1]; $a["me"] = &$a; $client()->publish("c", $a);', 'class' => \ValueError::class, 'fragment' => 'contains a recursive reference'];
        yield 'message: jsonSerialize() throws' => [
            'prelude' => 'final class Boom implements JsonSerializable { public function jsonSerialize(): mixed { throw new DomainException("boom from jsonSerialize"); } }',
            'run' => '$client()->publish("c", ["ok" => 1, "bad" => new Boom()]);',
            // Like json_encode(): the object's own exception reaches the caller, unchanged.
            'class' => \DomainException::class,
            'fragment' => 'boom from jsonSerialize',
        ];
        yield 'message: jsonSerialize() returns NAN' => [
            'prelude' => 'final class Nan implements JsonSerializable { public function jsonSerialize(): mixed { return NAN; } }',
            'run' => '$client()->publish("c", new Nan());',
            'class' => \ValueError::class,
            'fragment' => 'NAN or INF',
        ];
        // --- batches: everything is validated before anything is sent ---
        yield 'batch: not a pair' => ['run' => '$client()->publishMany([["c", "ok"], ["c"]]);', 'class' => \ValueError::class, 'fragment' => 'message #1 must be a [string $channel, $message] pair'];
        yield 'batch: int channel' => ['run' => '$client()->publishMany([["c", "ok"], [7, "m"]]);', 'class' => \TypeError::class, 'fragment' => 'message #1: channel must be of type string, int given'];
        yield 'batch: 100k pairs, the last channel has LF' => ['run' => '$b = []; for ($i = 0; $i < 99999; $i++) { $b[] = ["c", "m$i"]; } $b[] = ["c\n", "last"]; $client()->publishMany($b);', 'class' => \ValueError::class, 'fragment' => 'message #99999: channel must not contain control characters'];
        yield 'batch: 100k pairs, #50000 invalid UTF-8' => ['run' => '$b = []; for ($i = 0; $i < 100000; $i++) { $b[] = ["c", ["n" => $i]]; } $b[50000][1]["s"] = "\xc0"; $client()->publishMany($b);', 'class' => \ValueError::class, 'fragment' => 'message #50000: message contains malformed UTF-8'];
        // --- URLs (the password must never be echoed) ---
        yield 'URL: port 99999' => ['run' => '$client([], "redis://app:s3cretpw@127.0.0.1:99999");', 'class' => \ValueError::class, 'fragment' => 'Argument #1 ($url)', 'secret' => 's3cretpw'];
        yield 'URL: raw "/" in the password' => ['run' => '$client([], "redis://app:12/s3cretpw@127.0.0.1/0");', 'class' => \ValueError::class, 'fragment' => 'percent-encode', 'secret' => 's3cretpw'];
        yield 'URL: raw "#" in the password' => ['run' => '$client([], "redis://:pa#s3cretpw@127.0.0.1");', 'class' => \ValueError::class, 'fragment' => 'the Redis URL is not valid (empty host)', 'secret' => 's3cretpw'];
        yield 'URL: raw "#" in the password, host after it' => ['run' => '$client([], "redis://:@pa#s3cretpw@127.0.0.1");', 'class' => \ValueError::class, 'fragment' => 'percent-encode', 'secret' => 's3cretpw'];
        yield 'URL: not UTF-8' => ['run' => '$client([], "redis://\xff\xfe:1");', 'class' => \ValueError::class, 'fragment' => 'the Redis URL is not valid'];
        yield 'URL: NUL in the host' => ['run' => '$client([], "redis://127.0.0.1\0.evil:6379");', 'class' => \ValueError::class, 'fragment' => 'the Redis URL is not valid'];
        yield 'URL: unknown scheme' => ['run' => '$client([], "memcached://127.0.0.1");', 'class' => \ValueError::class, 'fragment' => "unsupported URL scheme 'memcached://'"];
        // --- options ---
        yield 'option: unknown key' => ['run' => '$client(["colour" => "red"]);', 'class' => \ValueError::class, 'fragment' => "unknown option 'colour'"];
        yield 'option: timeout "abc"' => ['run' => '$client(["timeout" => "abc"]);', 'class' => \ValueError::class, 'fragment' => "timeout: expected seconds greater than 0"];
        yield 'option: timeout 1e-12 (sub-nanosecond)' => ['run' => '$client(["timeout" => 1e-12]);', 'class' => \ValueError::class, 'fragment' => "timeout: expected seconds greater than 0"];
        yield 'option: pool_size 0' => ['run' => '$client(["pool_size" => 0]);', 'class' => \ValueError::class, 'fragment' => 'pool_size: expected a whole number from 1 to 1024'];
        yield 'option: array value' => ['run' => '$client(["timeout" => [1]]);', 'class' => \TypeError::class, 'fragment' => "option 'timeout' must be of type string|int|float, array given"];
        yield 'option: value not UTF-8' => ['run' => '$client(["channel_prefix" => "\xff"]);', 'class' => \ValueError::class, 'fragment' => "option 'channel_prefix' must be valid UTF-8"];
        yield 'option: channel_prefix with CR' => ['run' => '$client(["channel_prefix" => "a\rb"]);', 'class' => \ValueError::class, 'fragment' => 'channel_prefix: must not contain control characters'];
        // --- php.ini: a warning at startup, the default in effect, nothing published ---
        yield 'ini: qrpush.pool_size=abc' => ['ini' => ['qrpush.pool_size' => 'abc'], 'run' => 'return QrPush::stats()["pool_size"];', 'class' => null, 'returns' => 8, 'stderr' => "qrpush.pool_size: expected a whole number from 1 to 1024, got 'abc'; using the default '8'"];
        yield 'ini: qrpush.timeout=-5' => ['ini' => ['qrpush.timeout' => '-5'], 'run' => 'return ini_get("qrpush.timeout");', 'class' => null, 'returns' => '-5', 'stderr' => "qrpush.timeout: expected seconds greater than 0"];
        yield 'ini: qrpush.url=garbage with a password' => ['ini' => ['qrpush.url' => 'redis://:s3cretpw@127.0.0.1:0'], 'run' => 'return QrPush::stats()["endpoint"];', 'class' => null, 'returns' => 'redis://127.0.0.1:6379/0', 'stderr' => "qrpush.url: the Redis URL has port 0; using the default 'redis://127.0.0.1:6379'", 'secret' => 's3cretpw'];
        // --- login input ---
        yield 'login: browser IP of 65 bytes' => ['run' => 'QrPush\Login::start(str_repeat("1", 65), "ua");', 'class' => \ValueError::class, 'fragment' => 'Argument #1 ($browserIp)'];
        yield 'login: user id not UTF-8' => ['run' => 'QrPush\Login::scan("x.y", "\xff", "phone");', 'class' => \ValueError::class, 'fragment' => 'Argument #2 ($userId) must be valid UTF-8'];
        yield 'login: forged QR text' => ['run' => 'QrPush\Login::scan("forged\r\n*1\r\n$4\r\nPING", "alice", "phone");', 'class' => \QrPush\LoginNotFoundException::class, 'fragment' => ''];
        // --- hostile servers ---
        yield 'server: +garbage to everything' => ['server' => 'garbage', 'run' => '$client()->publish("c", "m");', 'class' => \QrPush\Exception::class, 'fragment' => 'unexpected reply to PUBLISH: simple-string("garbage")', 'code' => 4];
        yield 'server: $-5 (negative bulk length)' => ['server' => 'negbulk', 'run' => '$client()->publish("c", "m");', 'class' => \QrPush\Exception::class, 'fragment' => 'unexpected reply to PUBLISH: nil', 'code' => 4];
        yield 'server: random bytes' => ['server' => 'random', 'run' => '$client()->publish("c", "m");', 'class' => 'QrPush\Exception|QrPush\ConnectionException|QrPush\TimeoutException|QrPush\ServerException', 'fragment' => 'Redis at 127.0.0.1:'];
        yield 'server: random bytes to a batch' => ['server' => 'random', 'run' => '$client()->publishMany([["c", "m"], ["c", "n"]]);', 'class' => 'QrPush\Exception|QrPush\ConnectionException|QrPush\TimeoutException|QrPush\ServerException', 'fragment' => ''];
        yield 'server: -ERR to PUBLISH' => ['server' => 'error', 'run' => '$client()->publish("c", "m");', 'class' => \QrPush\ServerException::class, 'fragment' => 'ERR fake failure (PUBLISH)', 'code' => 3];
        yield 'server: -ERR to the handshake' => ['server' => 'error_handshake', 'run' => '$client()->publish("c", "m");', 'class' => \QrPush\ServerException::class, 'fragment' => 'ERR fake failure (CLIENT SETNAME to 127.0.0.1:'];
        yield 'server: hangs up at once' => ['server' => 'hangup', 'run' => '$client()->publish("c", "m");', 'class' => \QrPush\ConnectionException::class, 'fragment' => 'Redis at 127.0.0.1:', 'code' => 1];
        yield 'server: never answers' => ['server' => 'silent', 'run' => '$client()->publish("c", "m");', 'class' => \QrPush\TimeoutException::class, 'fragment' => 'did not complete the login in time', 'code' => 2];
        // --- control: a valid publish, which the subscriber must see (exactly once) ---
        yield 'control: a valid publish' => ['run' => 'return $client()->publish("bad-input:control", "ok");', 'class' => null, 'returns' => 1, 'control' => true];
    }

    /** @param array<string, mixed> $case */
    private function runCase(string $redisUrl, string $url, array $case): ProcessResult
    {
        $ini = $case['ini'] + ['qrpush.url' => $redisUrl, 'qrpush.connect_timeout' => '0.5', 'qrpush.timeout' => '0.5'];
        $urlExport = var_export($url, true);
        $code = <<<PHP
            {$case['prelude']}
            \$url = {$urlExport};
            \$client = static fn (array \$options = [], ?string \$u = null): QrPush\\Client
                => new QrPush\\Client(\$u ?? \$url, \$options + ['connect_timeout' => 0.5, 'timeout' => 0.5]);
            \$result = [];
            try {
                \$result['returned'] = (static function () use (\$client, \$url) {
                    {$case['run']}
                })();
            } catch (Throwable \$e) {
                \$previous = \$e->getPrevious();
                \$result += [
                    'class' => \$e::class,
                    'message' => \$e->getMessage(),
                    'code' => \$e->getCode(),
                    'previous' => \$previous === null ? null : [\$previous::class, \$previous->getMessage()],
                ];
            }
            \$result['published'] = (new QrPush\\Client(\$url))->stats()['published'];
            echo json_encode(\$result, JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR);
            PHP;
        return PhpProcess::code($ini, $code, self::CHILD_TIMEOUT);
    }

    /**
     * @param array<string, mixed> $case
     * @return array{case: string, got: string, verdict: string}
     */
    private static function judge(string $name, array $case, ProcessResult $result): array
    {
        $out = json_decode($result->stdout, true);
        $got = \is_array($out) ? ($out['class'] ?? 'returned ' . json_encode($out['returned'] ?? null)) : 'no result';
        $verdict = 'ok';
        $message = \is_array($out) ? (string) ($out['message'] ?? '') : '';
        if ($result->exitCode !== 0 || !\is_array($out)) {
            $verdict = "CRASH or no result (exit {$result->exitCode}): " . substr($result->stdout . ' ' . $result->stderr, 0, 400);
        } elseif ($case['class'] === null) {
            if (isset($out['class'])) {
                $verdict = "expected a value, got {$out['class']}: {$message}";
            } elseif (($out['returned'] ?? null) !== $case['returns']) {
                $verdict = 'returned ' . json_encode($out['returned'] ?? null) . ', expected ' . json_encode($case['returns']);
            }
        } elseif (!\in_array($out['class'] ?? null, explode('|', $case['class']), true)) {
            $verdict = "expected {$case['class']}, got {$got}: {$message}";
        } elseif ($case['fragment'] !== '' && !str_contains($message, $case['fragment'])) {
            $verdict = "message lacks '{$case['fragment']}': {$message}";
        } elseif ($case['code'] !== null && ($out['code'] ?? null) !== $case['code']) {
            $verdict = "code " . json_encode($out['code'] ?? null) . ", expected {$case['code']}";
        } elseif (isset($case['previous']) && ($out['previous'] ?? null) !== $case['previous']) {
            $verdict = 'previous exception ' . json_encode($out['previous'] ?? null) . ', expected ' . json_encode($case['previous']);
        }
        if ($verdict === 'ok' && $case['stderr'] !== null && !str_contains($result->stderr, $case['stderr'])) {
            $verdict = "stderr lacks '{$case['stderr']}': " . substr($result->stderr, 0, 300);
        }
        if ($verdict === 'ok' && isset($case['secret']) && str_contains($result->stdout . $result->stderr, $case['secret'])) {
            $verdict = 'the password appears in the output';
        }
        if ($verdict === 'ok' && \is_array($out) && empty($case['control']) && $case['server'] === null && ($out['published'] ?? 0) !== 0) {
            $verdict = "published {$out['published']} message(s)";
        }
        $shown = \is_array($out) && isset($out['class'])
            ? $out['class'] . ': ' . $message
            : $got;
        return ['case' => $name, 'got' => $shown, 'verdict' => $verdict];
    }

    /** @param list<array{case: string, got: string, verdict: string}> $rows */
    private static function printTable(array $rows, int $received): void
    {
        $width = max(array_map(static fn (array $r): int => mb_strlen($r['case']), $rows));
        $lines = [sprintf('%-' . $width . 's | %-4s | %s', 'bad input', 'ok?', 'outcome (class: message)')];
        $lines[] = str_repeat('-', $width) . '-+------+-' . str_repeat('-', 60);
        foreach ($rows as $r) {
            $outcome = mb_strimwidth(preg_replace('/[\x00-\x1f]/', '?', $r['got']), 0, 150, '...');
            $lines[] = sprintf('%-' . $width . 's | %-4s | %s', $r['case'], $r['verdict'] === 'ok' ? 'ok' : 'FAIL', $outcome);
        }
        $ok = \count(array_filter($rows, static fn (array $r): bool => $r['verdict'] === 'ok'));
        $lines[] = sprintf(
            '%d cases (%d bad inputs + 1 control), %d as expected, %d crashes, messages seen by the subscriber: %d (the control only: %s)',
            \count($rows),
            \count($rows) - 1,
            $ok,
            \count(array_filter($rows, static fn (array $r): bool => str_starts_with($r['verdict'], 'CRASH'))),
            $received,
            $received === 1 ? 'yes' : 'NO',
        );
        fwrite(STDERR, "\n[" . (PHP_ZTS ? 'ZTS' : 'NTS') . "] bad-input matrix\n" . implode("\n", $lines) . "\n");
    }

    /** A fake Redis in a child php: answers per `$mode`, see fakeServerCode(). Returns its port. */
    private function startFake(string $mode): int
    {
        $script = "{$this->dir}/fake-{$mode}.php";
        file_put_contents($script, self::fakeServerCode());
        for ($attempt = 1; ; $attempt++) {
            $port = Processes::freePort();
            $log = "{$this->dir}/fake-{$mode}.log";
            [, $pid] = Processes::start([PhpProcess::binary(), '-n', $script, (string) $port, $mode], $log, "fake redis ({$mode})");
            $this->fakePids[] = $pid;
            $up = Processes::waitFor(static function () use ($port): bool {
                $s = @stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $errstr, 0.2);
                if ($s === false) {
                    return false;
                }
                fclose($s);
                return true;
            }, 5.0, 0.02);
            if ($up) {
                return $port;
            }
            Processes::stop($pid, Processes::SIGKILL);
            if ($attempt >= 3) {
                throw new \RuntimeException("the fake server ({$mode}) did not start: " . @file_get_contents($log));
            }
        }
    }

    /**
     * The fake server: accepts connections for at most 120 s, counts complete RESP commands on
     * each and answers each one by mode: garbage (+garbage), negbulk (+OK to the handshake's three
     * commands, then $-5), random (random bytes), error (+OK to the handshake, then -ERR),
     * error_handshake (-ERR),
     * hangup (closes at once), silent (reads, never answers).
     */
    private static function fakeServerCode(): string
    {
        return <<<'PHP'
            <?php
            [$port, $mode] = [(int) $argv[1], $argv[2]];
            $server = stream_socket_server("tcp://127.0.0.1:{$port}", $errno, $errstr) ?: exit(1);
            $clients = [];
            $deadline = microtime(true) + 120;
            $commands = static function (string $buf): int {
                $at = 0; $count = 0; $len = strlen($buf);
                while ($at < $len) {
                    $eol = strpos($buf, "\r\n", $at);
                    if ($eol === false) { break; }
                    $n = (int) substr($buf, $at + 1, $eol - $at - 1);
                    $next = $eol + 2;
                    for ($i = 0; $i < $n; $i++) {
                        $e = strpos($buf, "\r\n", $next);
                        if ($e === false) { return $count; }
                        $size = (int) substr($buf, $next + 1, $e - $next - 1);
                        $next = $e + 2 + $size + 2;
                        if ($next > $len) { return $count; }
                    }
                    $at = $next;
                    $count++;
                }
                return $count;
            };
            while (microtime(true) < $deadline) {
                $read = [$server];
                foreach ($clients as $c) { $read[] = $c['s']; }
                $w = $e = null;
                if (@stream_select($read, $w, $e, 0, 200000) < 1) { continue; }
                foreach ($read as $s) {
                    if ($s === $server) {
                        $new = @stream_socket_accept($server, 0);
                        if ($new === false) { continue; }
                        if ($mode === 'hangup') { fclose($new); continue; }
                        $clients[(int) $new] = ['s' => $new, 'buf' => '', 'answered' => 0];
                        continue;
                    }
                    $id = (int) $s;
                    $chunk = fread($s, 65536);
                    if ($chunk === '' || $chunk === false) { fclose($s); unset($clients[$id]); continue; }
                    $clients[$id]['buf'] .= $chunk;
                    $done = $commands($clients[$id]['buf']);
                    while ($clients[$id]['answered'] < $done) {
                        // The handshake: CLIENT SETNAME, ROLE and WAIT (an +OK to ROLE and WAIT is no
                        // role information: the connection is used without the primary check).
                        $first = $clients[$id]['answered'] < 3;
                        $clients[$id]['answered']++;
                        $reply = match ($mode) {
                            'garbage' => "+garbage\r\n",
                            'negbulk' => $first ? "+OK\r\n" : "\$-5\r\n",
                            // Never a well-formed integer reply: that would be a success.
                            'random' => $first ? "+OK\r\n" : ltrim(random_bytes(48), ':'),
                            'error' => $first ? "+OK\r\n" : "-ERR fake failure\r\n",
                            'error_handshake' => "-ERR fake failure\r\n",
                            default => '',
                        };
                        if ($reply !== '') { @fwrite($s, $reply); }
                    }
                }
            }
            PHP;
    }
}
