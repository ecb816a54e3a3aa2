<?php

declare(strict_types=1);

/*
 * The Linux side of QRPUSH_TEST_SERVERS (tests/php/Support/ExternalServers.php): starts, signals and
 * stops redis-server for a PHPUnit run whose PHP cannot (Windows php.exe under Wine, or a host PHP
 * without the chroot's redis-server). Listens on a free loopback port, writes "tcp://127.0.0.1:PORT"
 * to PORT_FILE, answers one JSON line per connection, and exits on {"op":"quit"}, on SIGTERM/SIGINT,
 * or after IDLE_SECONDS without a request; every server it started is killed when it exits.
 *
 *   php tests/php/server-control.php PORT_FILE [IDLE_SECONDS=600]
 */

require __DIR__ . '/Support/Processes.php';

use QrPush\Tests\Processes;

[$portFile, $idle] = [$argv[1] ?? '', (float) ($argv[2] ?? 600)];
if ($portFile === '') {
    fwrite(STDERR, "usage: php server-control.php PORT_FILE [IDLE_SECONDS]\n");
    exit(2);
}

/** A client's path as this side sees it: Wine maps drive Z: to /, so Z:\a\b is /a/b. */
function linux_path(string $arg): string
{
    if (preg_match('/^[A-Za-z]:[\\\\\/]/', $arg) !== 1) {
        return $arg;
    }
    if (strtoupper($arg[0]) !== 'Z') {
        throw new RuntimeException("{$arg} is not on Wine's drive Z: (the Linux root), so this side cannot see it; point TEMP at a Z:\\ path");
    }
    return str_replace('\\', '/', substr($arg, 2));
}

/** @param array<string, mixed> $request */
function handle(array $request): array
{
    $pid = (int) ($request['pid'] ?? 0);
    switch ($request['op'] ?? '') {
        case 'start':
            $command = array_map('linux_path', $request['command']);
            $command[0] = getenv('REDIS_SERVER') ?: 'redis-server';
            [, $pid] = Processes::start($command, linux_path($request['log']), (string) $request['what']);
            return ['pid' => $pid];
        case 'running':
            return ['running' => Processes::isRunning($pid)];
        case 'signal':
            Processes::signal($pid, (int) $request['signal']);
            return ['ok' => true];
        case 'stop':
            Processes::stop($pid, (int) $request['signal'], (float) $request['grace']);
            return ['ok' => true];
        case 'quit':
            return ['ok' => true];
    }
    throw new RuntimeException('unknown op ' . var_export($request['op'] ?? null, true));
}

$server = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
if ($server === false) {
    fwrite(STDERR, "server-control: cannot listen on loopback: {$errstr}\n");
    exit(1);
}
$address = 'tcp://' . stream_socket_get_name($server, false);
$stopping = false;
if (function_exists('pcntl_async_signals')) {
    pcntl_async_signals(true);
    foreach ([SIGTERM, SIGINT] as $signal) {
        pcntl_signal($signal, static function () use (&$stopping): void {
            $stopping = true;
        });
    }
}
file_put_contents("{$portFile}.part", $address . "\n");
rename("{$portFile}.part", $portFile);
fwrite(STDERR, "server-control: listening on {$address} (pid " . getmypid() . ")\n");

$lastRequest = microtime(true);
while (!$stopping && microtime(true) - $lastRequest < $idle) {
    $client = @stream_socket_accept($server, 1.0);
    if ($client === false) {
        continue;
    }
    $lastRequest = microtime(true);
    stream_set_timeout($client, 10);
    $line = fgets($client);
    $request = is_string($line) ? json_decode($line, true) : null;
    try {
        $reply = is_array($request) ? handle($request) : ['error' => 'not a JSON object: ' . var_export($line, true)];
    } catch (Throwable $e) {
        $reply = ['error' => $e->getMessage()];
    }
    fwrite($client, json_encode($reply) . "\n");
    fclose($client);
    if (($request['op'] ?? '') === 'quit') {
        break;
    }
}
fwrite(STDERR, 'server-control: ' . ($stopping ? 'signalled' : (microtime(true) - $lastRequest >= $idle ? "idle for {$idle} s" : 'asked to quit')) . "; stopping the servers it started\n");
Processes::killLeftovers();
