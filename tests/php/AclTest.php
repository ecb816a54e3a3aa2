<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;
use QrPush\ServerException;

/**
 * The least-privilege ACL user docs/SECURITY.md recommends, through PHP: with it, QrPush::publish(),
 * publishMany(), ping() and the whole QrPush\Login flow work; a channel outside its patterns is a
 * ServerException that starts with NOPERM; and the same user can do nothing else in Redis.
 */
final class AclTest extends TestCase
{
    /** The documentation of the user, the one source of its ACL line. */
    private const SECURITY_DOC = __DIR__ . '/../../docs/SECURITY.md';
    private const PASSWORD = 'acl-app-pw-51b7';

    private function serverWithAppUser(): RedisServer
    {
        $server = $this->redis();
        $rules = explode(' ', str_replace('>CHANGE-ME', '>' . self::PASSWORD, self::documentedAcl()));
        self::assertSame('OK', $server->command(...$rules));
        return $server;
    }

    /** The line of docs/SECURITY.md, verbatim: `&app:*` stands for the app's own channels. */
    private static function documentedAcl(): string
    {
        $doc = (string) file_get_contents(self::SECURITY_DOC);
        self::assertSame(1, preg_match('/^ACL SETUSER qrpush-app .+$/m', $doc, $m), 'docs/SECURITY.md has the ACL line');
        return $m[0];
    }

    private static function appUrl(RedisServer $server): string
    {
        return $server->url(self::PASSWORD, 'qrpush-app');
    }

    /** Runs `$code` in a child php whose default client logs in as the app user; returns its JSON. */
    private static function runAsApp(RedisServer $server, string $code, array $ini = []): array
    {
        $result = PhpProcess::code(['qrpush.url' => self::appUrl($server)] + $ini, $code);
        self::assertSame(0, $result->exitCode, $result->describe());
        $data = json_decode($result->stdout, true);
        self::assertIsArray($data, $result->describe());
        return $data;
    }

    public function testTheDocumentedUserPublishesAndRunsTheWholeLoginFlow(): void
    {
        $server = $this->serverWithAppUser();
        $server->command('SCRIPT', 'FLUSH'); // the first login call goes EVALSHA → NOSCRIPT → EVAL
        $orders = $this->subscribe($server, 'app:orders');
        $events = $this->subscribe($server, 'qr-login-events');
        $data = self::runAsApp($server, <<<'PHP'
            use QrPush\Login;
            $out = [
                'publish' => QrPush::publish('app:orders', ['n' => 1]),
                'many' => QrPush::publishMany([['app:orders', 'a'], ['app:orders', 'b']]),
                'ping' => QrPush::ping() > 0,
            ];
            // start → scan → approve → status (ticket) → redeem
            $s = Login::start('203.0.113.7', 'Firefox');
            Login::scan($s['qr'], 'alice', 'phone');
            $code = Login::approve($s['id'], 'alice', 'Alice')['confirmation_code'];
            $ticket = Login::status($s['id'], $s['browser_secret'])['ticket'];
            $out['redeemed'] = Login::redeem($s['id'], $ticket, $s['browser_secret'], $code);
            // start → scan → reject; start → cancel
            $s = Login::start('', '');
            Login::scan($s['qr'], 'bob', '');
            $out['rejected'] = Login::reject($s['id'], 'bob')['state'];
            $s = Login::start('', '');
            $out['cancelled'] = Login::cancel($s['id'], $s['browser_secret'])['state'];
            $out['stats'] = QrPush::stats();
            echo json_encode($out);
            PHP);
        self::assertSame(1, $data['publish']);
        self::assertSame([1, 1], $data['many']);
        self::assertTrue($data['ping']);
        self::assertSame('alice', $data['redeemed']);
        self::assertSame('rejected', $data['rejected']);
        self::assertSame('cancelled', $data['cancelled']);
        self::assertSame(0, $data['stats']['failed'], json_encode($data['stats']));
        self::assertSame(['{"n":1}', 'a', 'b'], $orders->messages(3));
        $types = array_map(static fn (string $e): string => json_decode($e, true)['type'], $events->messages(6));
        self::assertSame(['scanned', 'approved', 'redeemed', 'scanned', 'rejected', 'cancelled'], $types);
        $events->assertNothingMore(0.1);
    }

    public function testAChannelOutsideThePatternsIsAServerExceptionWithNoperm(): void
    {
        $server = $this->serverWithAppUser();
        $other = $this->subscribe($server, 'other');
        $client = new Client(self::appUrl($server), ['connect_timeout' => 1.0, 'timeout' => 1.0]);
        foreach (['other', 'app-orders', 'qr-login-eventsX'] as $channel) {
            $e = self::assertThrowsExactly(ServerException::class, static fn () => $client->publish($channel, 'x'));
            self::assertStringStartsWith('NOPERM ', $e->getMessage());
            self::assertStringEndsWith('(PUBLISH)', $e->getMessage());
            self::assertSame(3, $e->getCode());
            self::assertStringNotContainsString(self::PASSWORD, (string) $e);
        }
        // The refusal leaves the connection usable.
        self::assertSame(0, $client->publish('app:fine', 'y'));
        self::assertSame(1, $client->stats()['connections_created']);
        $e = self::assertThrowsExactly(ServerException::class, static fn () => $client->publishMany([['other', 'x']]));
        self::assertStringStartsWith('NOPERM ', $e->getMessage());
        $other->assertNothingMore(0.2);

        // Through the facade too.
        $data = self::runAsApp($server, <<<'PHP'
            try {
                QrPush::publish('other', 'x');
                echo json_encode(['published' => true]);
            } catch (Throwable $e) {
                echo json_encode([get_class($e), $e->getCode(), $e->getMessage()]);
            }
            PHP);
        self::assertSame('QrPush\ServerException', $data[0]);
        self::assertSame(3, $data[1]);
        self::assertStringStartsWith('NOPERM ', $data[2]);
    }

    /**
     * The login events' channel outside the user's patterns (`qrpush.channel_prefix` changed without
     * the ACL): the login call is a ServerException (Redis words an ACL refusal inside a script as
     * "ERR ACL failure in script: No permissions to access a channel").
     */
    public function testALoginChannelOutsideTheAclIsAServerException(): void
    {
        $server = $this->serverWithAppUser();
        $data = self::runAsApp($server, <<<'PHP'
            $s = QrPush\Login::start('', '');
            try {
                QrPush\Login::scan($s['qr'], 'alice', '');
                echo json_encode(['scanned' => true]);
            } catch (Throwable $e) {
                echo json_encode([get_class($e), $e->getMessage()]);
            }
            PHP, ['qrpush.channel_prefix' => 'tenant1:']);
        self::assertSame('QrPush\ServerException', $data[0]);
        self::assertMatchesRegularExpression('/NOPERM|ACL failure in script: No permissions to access a channel/', $data[1]);
    }

    public function testTheSameUserCanDoNothingElse(): void
    {
        $server = $this->serverWithAppUser();
        $server->command('SET', 'other:key', 'kept');
        $app = new RespConnection('127.0.0.1', $server->port());
        self::assertSame('OK', $app->call('AUTH', 'qrpush-app', self::PASSWORD));
        $refused = [
            ['SET', 'other:key', 'x'],
            ['SET', 'qrpush:login:x', 'x'],
            ['GET', 'other:key'],
            ['DEL', 'qrpush:login:x'],
            ['HSET', 'other:key', 'f', 'v'],
            ['KEYS', '*'],
            ['FLUSHALL'],
            ['FLUSHDB'],
            ['CONFIG', 'SET', 'maxmemory', '1'],
            ['ACL', 'LIST'],
            ['CLIENT', 'KILL', 'ID', '1'],
            ['SCRIPT', 'FLUSH'],
            ['SHUTDOWN', 'NOSAVE'],
            ['PUBLISH', 'other', 'x'],
        ];
        foreach ($refused as $command) {
            $reply = $app->call(...$command);
            self::assertInstanceOf(RespError::class, $reply, implode(' ', $command) . ' was allowed');
            self::assertStringStartsWith('NOPERM', $reply->message, implode(' ', $command));
        }
        // EVAL is granted, but the script's commands are checked against the same rules.
        foreach ([
            ["return redis.call('SET', KEYS[1], 'x')", 'qrpush:login:x'],
            ["return redis.call('HSET', KEYS[1], 'f', 'v')", 'other:key'],
            ["return redis.call('FLUSHALL')", 'qrpush:login:x'],
        ] as [$script, $key]) {
            $reply = $app->call('EVAL', $script, 1, $key);
            self::assertInstanceOf(RespError::class, $reply, "{$script} on {$key} was allowed");
            self::assertMatchesRegularExpression('/NOPERM|ACL failure in script/', $reply->message);
        }
        self::assertSame('kept', $server->command('GET', 'other:key'));
        self::assertSame(0, $server->command('EXISTS', 'qrpush:login:x'));
    }
}
