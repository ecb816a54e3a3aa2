<?php

declare(strict_types=1);

/*
 * The counting subscriber of the fault suite: raw RESP over its own socket (independent of the
 * extension under test), subscribed to one channel, reconnecting whenever its connection is cut.
 * On a Sentinel or a Cluster it follows the topology the way a subscribing application has to:
 *
 *   php subscriber.php <redis port> <channel> <log file>
 *   php subscriber.php sentinel:<port>,<port>...#<service> <channel> <log file>
 *       SUBSCRIBEs on the primary the Sentinels name (the first that answers), asks them again
 *       every 50 ms and moves when they name another one: UNSUBSCRIBE on the old primary, every
 *       message up to its confirmation read, then SUBSCRIBE on the new one.
 *   php subscriber.php cluster:<port>,<port>... <channel> <log file>
 *       SSUBSCRIBEs on the primary owning the channel's slot (CLUSTER SLOTS of the first node that
 *       answers; a MOVED reply is followed), and moves when that node lets the slot go (its
 *       `sunsubscribe` push) or its connection is cut.
 *
 * Appends to <log file> one line per event, all timestamps microtime(true):
 *   S <t> <port>   subscribed (confirmed by Redis): messages published from now on reach it
 *   C <t> <why>    the connection was cut (Redis killed, stopped, ...) or left (the topology moved)
 *   M <payload>    one message (the payloads are the publishers' unique ids)
 * Runs until SIGTERM, or until the suite that started it is gone; one hour at most.
 */

// The harness's Processes::parentPid(): this process ends when the suite that started it is gone.
require __DIR__ . '/../php/Support/Processes.php';

use QrPush\Tests\Processes;

if ($argc !== 4) {
    fwrite(STDERR, "usage: php subscriber.php <redis port>|sentinel:<ports>#<service>|cluster:<ports> <channel> <log file>\n");
    exit(2);
}
[, $target, $channel, $logFile] = $argv;
$log = fopen($logFile, 'a');
$stop = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop): void {
    $stop = true;
});

$out = '';
$lastFlush = microtime(true);
/** Writes what is buffered when forced, when it is large, or every 20 ms. */
$flush = function (bool $force) use (&$out, &$lastFlush, $log): void {
    $now = microtime(true);
    if ($out !== '' && ($force || strlen($out) > 65536 || $now - $lastFlush > 0.02)) {
        fwrite($log, $out);
        fflush($log);
        $out = '';
        $lastFlush = $now;
    }
};
$emit = function (string $line, bool $force = false) use (&$out, $flush): void {
    $out .= $line . "\n";
    $flush($force);
};

/**
 * Parses as many complete RESP replies as the buffer holds, from $pos; returns them (arrays of
 * strings/ints) and leaves $pos after the last complete one.
 */
function parseReplies(string $buf, int &$pos): array
{
    $replies = [];
    $len = strlen($buf);
    while ($pos < $len) {
        $start = $pos;
        $value = parseOne($buf, $pos, $len);
        if ($value === null) {
            $pos = $start;
            break;
        }
        $replies[] = $value[0];
    }
    return $replies;
}

/** @return array{0: mixed}|null */
function parseOne(string $buf, int &$pos, int $len): ?array
{
    $eol = strpos($buf, "\r\n", $pos);
    if ($eol === false) {
        return null;
    }
    $type = $buf[$pos];
    $line = substr($buf, $pos + 1, $eol - $pos - 1);
    $pos = $eol + 2;
    switch ($type) {
        case '+':
        case '-':
            return [$type . $line];
        case ':':
            return [(int) $line];
        case '$':
            $n = (int) $line;
            if ($n < 0) {
                return [null];
            }
            if ($len < $pos + $n + 2) {
                return null;
            }
            $s = substr($buf, $pos, $n);
            $pos += $n + 2;
            return [$s];
        case '*':
            $n = (int) $line;
            $items = [];
            for ($i = 0; $i < $n; $i++) {
                $item = parseOne($buf, $pos, $len);
                if ($item === null) {
                    return null;
                }
                $items[] = $item[0];
            }
            return [$items];
        default:
            throw new UnexpectedValueException(sprintf('unexpected RESP type byte 0x%02x', ord($type)));
    }
}

function resp(string ...$args): string
{
    $out = '*' . count($args) . "\r\n";
    foreach ($args as $a) {
        $out .= '$' . strlen($a) . "\r\n{$a}\r\n";
    }
    return $out;
}

/** One command on a fresh connection; null when the server does not answer within $timeout. */
function call(int $port, float $timeout, string ...$args): mixed
{
    $socket = @stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $errstr, $timeout);
    if ($socket === false) {
        return null;
    }
    stream_set_timeout($socket, 0, (int) ($timeout * 1e6));
    fwrite($socket, resp(...$args));
    $buf = '';
    $deadline = microtime(true) + $timeout;
    $reply = null;
    while (microtime(true) < $deadline) {
        $chunk = fread($socket, 65536);
        if ($chunk === false || ($chunk === '' && feof($socket))) {
            break;
        }
        $buf .= $chunk;
        $pos = 0;
        $replies = parseReplies($buf, $pos);
        if ($replies !== []) {
            $reply = $replies[0];
            break;
        }
    }
    fclose($socket);
    return $reply;
}

/** How this subscriber finds its node and what it says there. */
final class Target
{
    /** @param list<int> $ports Sentinels or Cluster nodes */
    public function __construct(public readonly string $kind, public readonly array $ports, public readonly string $service = '', public ?int $slot = null)
    {
    }

    public static function parse(string $target): self
    {
        if (preg_match('/^sentinel:([\d,]+)#(.+)$/', $target, $m)) {
            return new self('sentinel', array_map('intval', explode(',', $m[1])), $m[2]);
        }
        if (preg_match('/^cluster:([\d,]+)$/', $target, $m)) {
            return new self('cluster', array_map('intval', explode(',', $m[1])));
        }
        return new self('plain', [(int) $target]);
    }

    /** The port to subscribe on now, or null when nobody can say. */
    public function resolve(string $channel, ?int $ask = null): ?int
    {
        if ($this->kind === 'plain') {
            return $this->ports[0];
        }
        $ports = $ask === null ? $this->ports : [$ask, ...$this->ports];
        foreach ($ports as $port) {
            if ($this->kind === 'sentinel') {
                $addr = call($port, 0.2, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', $this->service);
                if (is_array($addr) && count($addr) === 2) {
                    return (int) $addr[1];
                }
                continue;
            }
            $this->slot ??= ($s = call($port, 0.2, 'CLUSTER', 'KEYSLOT', $channel)) !== null && is_int($s) ? $s : null;
            $slots = $this->slot === null ? null : call($port, 0.2, 'CLUSTER', 'SLOTS');
            if (is_array($slots)) {
                foreach ($slots as $range) {
                    if ($this->slot >= $range[0] && $this->slot <= $range[1]) {
                        return (int) $range[2][1];
                    }
                }
            }
        }
        return null;
    }

    public function subscribe(): string
    {
        return $this->kind === 'cluster' ? 'SSUBSCRIBE' : 'SUBSCRIBE';
    }
}

$topology = Target::parse($target);
$parent = Processes::parentPid();
$deadline = microtime(true) + 3600;
$port = null;
while (!$stop && microtime(true) < $deadline && Processes::parentPid() === $parent) {
    $port ??= $topology->resolve($channel);
    $socket = $port === null ? false : @stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $errstr, 0.2);
    if ($socket === false) {
        usleep(5000); // Redis is down: try again soon, so the gap stays short
        $port = $topology->resolve($channel);
        continue;
    }
    stream_set_blocking($socket, false);
    @fwrite($socket, resp($topology->subscribe(), $channel));
    $buf = '';
    $why = 'closed';
    $nextCheck = microtime(true) + 0.05;
    // Set when this subscriber leaves on its own: the unsubscribe it waits for, and until when.
    $leaving = null;
    $next = null;
    while (!$stop) {
        $r = [$socket];
        $w = $e = null;
        $ready = @stream_select($r, $w, $e, 0, 20000);
        if ($ready === false) {
            continue; // a signal
        }
        $now = microtime(true);
        if ($leaving !== null && $now > $leaving) {
            $why = "left for {$next} (no unsubscribe confirmation within 1 s)";
            break;
        }
        if ($topology->kind === 'sentinel' && $leaving === null && $now >= $nextCheck) {
            $nextCheck = $now + 0.05;
            $named = $topology->resolve($channel);
            if ($named !== null && $named !== $port) {
                // Everything the old primary handed over before the confirmation is read first.
                @fwrite($socket, resp('UNSUBSCRIBE', $channel));
                $leaving = $now + 1.0;
                $next = $named;
            }
        }
        if ($ready === 0) {
            $flush(false);
            if (Processes::parentPid() !== $parent) {
                $stop = true; // orphaned: the suite was killed
            }
            continue;
        }
        $chunk = @fread($socket, 262144);
        if ($chunk === false || ($chunk === '' && feof($socket))) {
            break;
        }
        $buf .= $chunk;
        $pos = 0;
        $done = false;
        foreach (parseReplies($buf, $pos) as $reply) {
            if (is_array($reply) && ($reply[0] === 'message' || $reply[0] === 'smessage') && count($reply) === 3) {
                $emit('M ' . $reply[2]);
            } elseif (is_array($reply) && ($reply[0] === 'subscribe' || $reply[0] === 'ssubscribe')) {
                $emit(sprintf('S %.6f %d', microtime(true), $port), true);
            } elseif (is_array($reply) && $reply[0] === 'unsubscribe' && $leaving !== null) {
                $why = "left for {$next}";
                $done = true;
            } elseif (is_array($reply) && $reply[0] === 'sunsubscribe') {
                $why = 'the node let the slot go';
                $next = null;
                $done = true;
            } elseif (is_string($reply) && preg_match('/^-MOVED \d+ [^:]*:(\d+)/', $reply, $m)) {
                $why = "MOVED to {$m[1]}";
                $next = (int) $m[1];
                $done = true;
            } else {
                $why = 'unexpected ' . json_encode($reply);
            }
        }
        $buf = (string) substr($buf, $pos);
        if ($done) {
            break;
        }
    }
    fclose($socket);
    if (!$stop) {
        $emit(sprintf('C %.6f %s', microtime(true), $why), true);
        // A cut connection: ask the topology again (from the node just left first, on a Cluster:
        // it knows where its slot went).
        $port = $next ?? ($topology->kind === 'cluster' ? $topology->resolve($channel, $port) : $topology->resolve($channel));
        $next = null;
    }
}
$flush(true);
