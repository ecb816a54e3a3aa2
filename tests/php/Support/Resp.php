<?php

declare(strict_types=1);

namespace QrPush\Tests;

/** An error reply (`-ERR ...`) read from Redis. */
final class RespError
{
    public function __construct(public readonly string $message)
    {
    }
}

/**
 * A minimal RESP2 connection for the tests' side of the wire (admin commands, subscribers):
 * independent of the extension under test and of phpredis. Reads are buffered and bounded by a
 * deadline (non-blocking socket + stream_select), so a test can never hang on Redis.
 */
final class RespConnection
{
    /** @var resource */
    private $socket;
    private string $buffer = '';

    public function __construct(public readonly string $host, public readonly int $port, float $connectTimeout = 2.0)
    {
        $socket = @stream_socket_client("tcp://{$host}:{$port}", $errno, $errstr, $connectTimeout);
        if ($socket === false) {
            throw new \RuntimeException("cannot connect to Redis at {$host}:{$port}: {$errstr} ({$errno})");
        }
        stream_set_blocking($socket, false);
        $this->socket = $socket;
    }

    public function __destruct()
    {
        $this->close();
    }

    public function close(): void
    {
        if (\is_resource($this->socket)) {
            fclose($this->socket);
        }
    }

    /** The RESP2 encoding of a command: an array of bulk strings. */
    public static function encode(string|int|float ...$args): string
    {
        $out = '*' . \count($args) . "\r\n";
        foreach ($args as $arg) {
            $arg = (string) $arg;
            $out .= '$' . \strlen($arg) . "\r\n" . $arg . "\r\n";
        }
        return $out;
    }

    public function send(string|int|float ...$args): void
    {
        $data = self::encode(...$args);
        $deadline = microtime(true) + 5.0;
        while ($data !== '') {
            $written = @fwrite($this->socket, $data);
            if ($written === false) {
                throw new \RuntimeException("writing to Redis at {$this->host}:{$this->port} failed");
            }
            $data = (string) substr($data, $written);
            if ($data !== '') {
                $this->select(write: true, deadline: $deadline);
            }
        }
    }

    /** Sends a command and returns its reply (an error reply is returned as a RespError). */
    public function call(string|int|float ...$args): mixed
    {
        $this->send(...$args);
        return $this->read(5.0, true);
    }

    /**
     * The next reply, waiting at most `$timeout` seconds. On timeout: null, or a RuntimeException
     * when `$required`. Null bulk strings come back as null too, which the tests never expect.
     */
    public function read(float $timeout, bool $required = false): mixed
    {
        $deadline = microtime(true) + $timeout;
        while (true) {
            $parsed = self::parse($this->buffer, 0);
            if ($parsed !== null) {
                $this->buffer = (string) substr($this->buffer, $parsed[1]);
                return $parsed[0];
            }
            $chunk = @fread($this->socket, 65536);
            if ($chunk !== false && $chunk !== '') {
                $this->buffer .= $chunk;
                continue;
            }
            if (feof($this->socket)) {
                throw new \RuntimeException("Redis at {$this->host}:{$this->port} closed the connection");
            }
            if (!$this->select(write: false, deadline: $deadline)) {
                if ($required) {
                    throw new \RuntimeException("Redis at {$this->host}:{$this->port} did not answer within {$timeout} s");
                }
                return null;
            }
        }
    }

    /** Waits until the socket is readable/writable or the deadline passes. */
    private function select(bool $write, float $deadline): bool
    {
        $remaining = max(0.0, $deadline - microtime(true));
        if ($remaining <= 0.0) {
            return false;
        }
        $r = $write ? null : [$this->socket];
        $w = $write ? [$this->socket] : null;
        $e = null;
        $seconds = (int) $remaining;
        $ready = @stream_select($r, $w, $e, $seconds, (int) (($remaining - $seconds) * 1e6));
        return $ready > 0;
    }

    /**
     * Parses one reply at `$pos`: [value, position after it], or null when the buffer does not
     * hold all of it yet.
     *
     * @return array{0: mixed, 1: int}|null
     */
    private static function parse(string $buffer, int $pos): ?array
    {
        $eol = strpos($buffer, "\r\n", $pos);
        if ($eol === false) {
            return null;
        }
        $type = $buffer[$pos];
        $line = substr($buffer, $pos + 1, $eol - $pos - 1);
        $pos = $eol + 2;
        switch ($type) {
            case '+':
                return [$line, $pos];
            case '-':
                return [new RespError($line), $pos];
            case ':':
                return [(int) $line, $pos];
            case '$':
                $length = (int) $line;
                if ($length < 0) {
                    return [null, $pos];
                }
                if (\strlen($buffer) < $pos + $length + 2) {
                    return null;
                }
                return [substr($buffer, $pos, $length), $pos + $length + 2];
            case '*':
                $count = (int) $line;
                if ($count < 0) {
                    return [null, $pos];
                }
                $items = [];
                for ($i = 0; $i < $count; $i++) {
                    $item = self::parse($buffer, $pos);
                    if ($item === null) {
                        return null;
                    }
                    [$items[], $pos] = $item;
                }
                return [$items, $pos];
            default:
                throw new \UnexpectedValueException(sprintf('unexpected RESP type byte 0x%02x', \ord($type)));
        }
    }
}
