<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * A small HTTP/1.0 client over stream sockets (the test PHP may have no curl): one browser or phone,
 * with its own user agent and cookie jar. `concurrent()` sends many requests at once: every request
 * is written before any response is read, so they all reach nginx and php-fpm together.
 */
final class LoginHttp
{
    /** @var array<string, string> name => value */
    public array $cookies = [];
    private readonly string $host;
    private readonly int $port;

    /** @param array<string, string> $cookies */
    public function __construct(string $baseUrl, public readonly string $userAgent = 'LoginFlowTest', array $cookies = [])
    {
        $parts = parse_url($baseUrl);
        $this->host = (string) ($parts['host'] ?? '127.0.0.1');
        $this->port = (int) ($parts['port'] ?? 80);
        $this->cookies = $cookies;
    }

    public function get(string $path): LoginResponse
    {
        return self::concurrent([[$this, 'GET', $path, null]])[0];
    }

    /** @param array<string, mixed>|null $json null: no body */
    public function post(string $path, ?array $json, ?string $contentType = 'application/json'): LoginResponse
    {
        return self::concurrent([[$this, 'POST', $path, $json, $contentType]])[0];
    }

    /**
     * @param list<array{0: LoginHttp, 1: string, 2: string, 3: array<string, mixed>|null, 4?: ?string}> $requests
     *     [client, method, path, JSON body or null, content type]
     * @return list<LoginResponse> in request order; each client's jar takes the cookies its responses set
     */
    public static function concurrent(array $requests, float $timeout = 20.0): array
    {
        $sockets = [];
        foreach ($requests as $i => $request) {
            [$client, $method, $path, $json] = $request;
            $contentType = \array_key_exists(4, $request) ? $request[4] : 'application/json';
            $socket = @stream_socket_client("tcp://{$client->host}:{$client->port}", $errno, $error, 5.0);
            if ($socket === false) {
                throw new \RuntimeException("cannot connect to {$client->host}:{$client->port}: {$error}");
            }
            $body = $json === null ? '' : json_encode($json, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
            $headers = [
                "{$method} {$path} HTTP/1.0",
                "Host: {$client->host}:{$client->port}",
                "User-Agent: {$client->userAgent}",
                'Connection: close',
            ];
            if ($client->cookies !== []) {
                $pairs = [];
                foreach ($client->cookies as $name => $value) {
                    $pairs[] = "{$name}={$value}";
                }
                $headers[] = 'Cookie: ' . implode('; ', $pairs);
            }
            if ($method === 'POST') {
                if ($contentType !== null) {
                    $headers[] = "Content-Type: {$contentType}";
                }
                $headers[] = 'Content-Length: ' . \strlen($body);
            }
            $raw = implode("\r\n", $headers) . "\r\n\r\n" . $body;
            for ($written = 0; $written < \strlen($raw); $written += $n) {
                $n = fwrite($socket, substr($raw, $written));
                if ($n === false || $n === 0) {
                    throw new \RuntimeException('cannot send the request');
                }
            }
            stream_set_blocking($socket, false);
            $sockets[$i] = $socket;
        }

        $buffers = array_fill_keys(array_keys($sockets), '');
        $open = $sockets;
        $deadline = microtime(true) + $timeout;
        while ($open !== []) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                throw new \RuntimeException(\count($open) . ' response(s) did not arrive within ' . $timeout . ' s');
            }
            $read = array_values($open);
            $write = $except = null;
            if (@stream_select($read, $write, $except, (int) $left, (int) (fmod($left, 1.0) * 1e6)) === false) {
                throw new \RuntimeException('stream_select failed');
            }
            foreach ($read as $socket) {
                $i = array_search($socket, $open, true);
                $chunk = fread($socket, 65536);
                if ($chunk === false || ($chunk === '' && feof($socket))) {
                    fclose($socket);
                    unset($open[$i]);
                    continue;
                }
                $buffers[$i] .= $chunk;
            }
        }

        $responses = [];
        foreach ($requests as $i => [$client]) {
            $response = LoginResponse::parse($buffers[$i]);
            foreach ($response->setCookies() as $name => $cookie) {
                if ($cookie['deleted']) {
                    unset($client->cookies[$name]);
                } else {
                    $client->cookies[$name] = $cookie['value'];
                }
            }
            $responses[] = $response;
        }
        return $responses;
    }
}

final class LoginResponse
{
    /** @param array<string, list<string>> $headers lower-case name => values */
    public function __construct(public readonly int $status, public readonly array $headers, public readonly string $body)
    {
    }

    public static function parse(string $raw): self
    {
        $split = strpos($raw, "\r\n\r\n");
        if ($split === false || !preg_match('#^HTTP/1\.[01] (\d{3})#', $raw, $m)) {
            throw new \RuntimeException('not an HTTP response: ' . substr($raw, 0, 200));
        }
        $headers = [];
        foreach (\array_slice(explode("\r\n", substr($raw, 0, $split)), 1) as $line) {
            [$name, $value] = array_map('trim', explode(':', $line, 2)) + [1 => ''];
            $headers[strtolower($name)][] = $value;
        }
        return new self((int) $m[1], $headers, substr($raw, $split + 4));
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)][0] ?? null;
    }

    /** @return array<string, mixed> */
    public function json(): array
    {
        $data = json_decode($this->body, true);
        if (!\is_array($data)) {
            throw new \RuntimeException("expected a JSON object, got HTTP {$this->status}:\n{$this->body}");
        }
        return $data;
    }

    /**
     * The cookies this response sets, with their attributes (lower-case names, '' for flags).
     *
     * @return array<string, array{value: string, deleted: bool, attributes: array<string, string>}>
     */
    public function setCookies(): array
    {
        $cookies = [];
        foreach ($this->headers['set-cookie'] ?? [] as $line) {
            $parts = array_map('trim', explode(';', $line));
            [$name, $value] = explode('=', array_shift($parts), 2) + [1 => ''];
            $attributes = [];
            foreach ($parts as $part) {
                [$k, $v] = explode('=', $part, 2) + [1 => ''];
                $attributes[strtolower($k)] = $v;
            }
            $expired = isset($attributes['max-age']) && (int) $attributes['max-age'] <= 0;
            $cookies[$name] = [
                'value' => urldecode($value),
                'deleted' => $value === '' || $value === 'deleted' || $expired,
                'attributes' => $attributes,
            ];
        }
        return $cookies;
    }
}
