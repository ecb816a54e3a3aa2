<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\SocketIo;

enum SocketIoTestColour: string
{
    case Red = 'red';
}

/**
 * QrPush\SocketIo against a real redis-server: the adapter's channels (namespace, single room,
 * several rooms, the client's prefix), PUBLISH for the classic adapter and SPUBLISH for the
 * sharded one, the emitter's exact bytes for a known message, immutable operators, arguments
 * encoded like messages, and refusals that publish nothing. The Socket.IO servers themselves
 * take these messages in tests/interop/socketio.
 */
final class SocketIoTest extends TestCase
{
    /** ["emitter", {type: 2, data: ["hi", 1, {a: "b"}], nsp: "/"}, {rooms: ["r1"], flags: {volatile: true}, except: ["x"]}] */
    private const KNOWN = '93a7656d6974746572'
        . '83a47479706502a46461746193a2686901' . '81a161a162' . 'a36e7370a12f'
        . '83a5726f6f6d7391a27231' . 'a5666c61677381a8766f6c6174696c65c3' . 'a6657863657074' . '91a178';

    public function testTheEmittersBytesGoToTheRoomChannel(): void
    {
        $server = $this->redis();
        $room = $this->subscribe($server, 'socket.io#/#r1#');
        $io = new SocketIo(self::client($server));

        self::assertSame(1, $io->to('r1')->except('x')->volatile()->emit('hi', 1, ['a' => 'b']));

        self::assertSame([self::KNOWN], array_map('bin2hex', $room->messages(1)));
    }

    public function testChannelsFollowNamespacesRoomsKeyAndPrefix(): void
    {
        $server = $this->redis();
        $all = $this->subscribe($server, '*', pattern: true);
        $io = new SocketIo(self::client($server, ['channel_prefix' => 'app:']), ['key' => 'sio']);

        $io->emit('e');
        $io->of('admin')->emit('e');
        $io->of('/admin')->to('r')->emit('e');
        $io->to(['a', 'b'])->emit('e');
        $io->to('a')->to('a')->emit('e');
        $io->in('r')->emit('e');

        self::assertSame(
            ['app:sio#/#', 'app:sio#/admin#', 'app:sio#/admin#r#', 'app:sio#/#', 'app:sio#/#a#', 'app:sio#/#r#'],
            array_column($all->receive(6), 'channel'),
        );
    }

    public function testOperatorsReturnNewEmittersAndLeaveTheirOwnAlone(): void
    {
        $server = $this->redis();
        $all = $this->subscribe($server, '*', pattern: true);
        $io = new SocketIo(self::client($server));
        $room = $io->to('r1');
        $room->except('x');
        $room->volatile();
        $io->of('/other');

        self::assertNotSame($io, $room);
        $io->emit('e');
        $room->emit('e');

        $messages = $all->receive(2);
        self::assertSame(['socket.io#/#', 'socket.io#/#r1#'], array_column($messages, 'channel'));
        // No except room, no flag, namespace "/": the options map of the plain emitter.
        $plainOpts = bin2hex("\x83\xa5rooms\x90\xa5flags\x80\xa6except\x90");
        self::assertStringEndsWith($plainOpts, bin2hex($messages[0]['payload']));
        self::assertStringEndsWith(bin2hex("\x83\xa5rooms\x91\xa2r1\xa5flags\x80\xa6except\x90"), bin2hex($messages[1]['payload']));
    }

    public function testFlagsKeepTheOrderTheyWereFirstSetIn(): void
    {
        $server = $this->redis();
        $sub = $this->subscribe($server, 'socket.io#/#');
        $io = new SocketIo(self::client($server));

        $io->compress(false)->volatile()->compress()->emit('e');

        $payload = $sub->messages(1)[0];
        self::assertStringContainsString("\xa5flags\x82\xa8compress\xc3\xa8volatile\xc3", $payload);
    }

    public function testArgumentsAreEncodedLikeMessages(): void
    {
        $server = $this->redis();
        $sub = $this->subscribe($server, 'socket.io#/#');
        $io = new SocketIo(self::client($server));
        $json = new class implements \JsonSerializable {
            public function jsonSerialize(): mixed
            {
                return ['k' => 2.0];
            }
        };

        $io->emit('e', 'é', 2.0, 0.5, -1, null, false, [], [1, 2], ['x' => 1], (object) [], SocketIoTestColour::Red, $json);

        $data = "\x9d\xa1e" // data: [event, 12 arguments]
            . "\xa2\xc3\xa9" . "\x02" . "\xcb" . pack('E', 0.5) . "\xff" . "\xc0" . "\xc2" . "\x90" . "\x92\x01\x02"
            . "\x81\xa1x\x01" . "\x80" . "\xa3red" . "\x81\xa1k\x02";
        self::assertStringContainsString($data . "\xa3nsp\xa1/", $sub->messages(1)[0]);
    }

    public function testTheShardedAdapterGetsAClusterMessageBySpublish(): void
    {
        $server = $this->redis();
        $sharded = $this->subscribe($server, 'socket.io#/chat#news#', sharded: true);
        $plain = $this->subscribe($server, '*', pattern: true);
        $io = new SocketIo(self::client($server), ['adapter' => 'sharded']);

        self::assertSame(1, $io->of('chat')->to('news')->emit('headline', 'x'));

        $message = $sharded->receive(1)[0];
        self::assertSame('socket.io#/chat#news#', $message['channel']);
        self::assertStringStartsWith("\x84\xa4type\x03\xa4data\x82\xa6packet", $message['payload']);
        self::assertStringEndsWith("\xa3uid\xa7emitter\xa3nsp\xa5/chat", $message['payload']);
        $plain->assertNothingMore(0.1, 'sharded Pub/Sub is not seen by PSUBSCRIBE:');
    }

    public function testTheStreamsAdapterAppendsTheEntryAServerWould(): void
    {
        $server = $this->redis();
        $all = $this->subscribe($server, '*', pattern: true);
        // channel_prefix is for channels: the stream is a key and keeps its name.
        $io = new SocketIo(self::client($server, ['channel_prefix' => 'app:']), ['adapter' => 'streams', 'stream' => 'sio']);

        self::assertSame(1, $io->of('chat')->to(['r1', 'r2'])->except('x')->volatile()->compress(false)->emit('e', 'é', 2.5, ['a' => [1]]));
        self::assertSame(1, $io->emit('plain'));

        $entries = $server->command('XRANGE', 'sio', '-', '+');
        self::assertCount(2, $entries);
        self::assertMatchesRegularExpression('/^\d+-\d+$/', $entries[0][0]);
        self::assertSame(
            ['uid', 'emitter', 'nsp', '/chat', 'type', '3', 'data',
                '{"packet":{"type":2,"data":["e","é",2.5,{"a":[1]}]},"opts":{"rooms":["r1","r2"],"except":["x"],"flags":{"volatile":true,"compress":false}}}'],
            $entries[0][1],
        );
        self::assertSame(
            ['uid', 'emitter', 'nsp', '/', 'type', '3', 'data', '{"packet":{"type":2,"data":["plain"]},"opts":{"rooms":[],"except":[],"flags":{}}}'],
            $entries[1][1],
        );
        $all->assertNothingMore(0.1, 'the streams adapter publishes nothing:');
    }

    public function testStreamCountAndMaxLenAreTheAdapters(): void
    {
        $server = $this->redis();
        $io = new SocketIo(self::client($server), ['adapter' => 'streams', 'stream_count' => 3, 'max_len' => 1]);

        // The adapter's stream for a namespace: hashCode(nsp) % streamCount; "/" hashes to 47.
        $io->emit('e');
        self::assertSame(1, $server->command('XLEN', 'socket.io-2'));
        // MAXLEN ~ 1 trims whole stream nodes (100 entries each by default): far fewer than 250 stay.
        for ($i = 0; $i < 250; $i++) {
            $io->emit('e', $i);
        }
        self::assertLessThanOrEqual(100, $server->command('XLEN', 'socket.io-2'));
        self::assertSame(0, $server->command('EXISTS', 'socket.io'));
    }

    public function testTheStreamsAdapterEntryIsBoundedByMaxPayload(): void
    {
        $server = $this->redis();
        $io = new SocketIo(self::client($server, ['max_payload' => 128]), ['adapter' => 'streams']);

        // The entry's data is the arguments' JSON (40 and 70 bytes here) and 76 bytes: 116 fit, 146 do not.
        self::assertSame(1, $io->emit('e', str_repeat('y', 36)));
        $e = self::assertThrowsExactly(\ValueError::class, fn () => $io->emit('e', str_repeat('y', 66)));
        self::assertSame('QrPush\SocketIo::emit(): Argument #2 ($args) is 146 bytes, more than qrpush.max_payload (128 bytes)', $e->getMessage());
        $e = self::assertThrowsExactly(\ValueError::class, fn () => $io->emit('connect'));
        self::assertSame('QrPush\SocketIo::emit(): Argument #1 ($event) must not be "connect", a name Socket.IO reserves for itself', $e->getMessage());
        self::assertSame(1, $server->command('XLEN', 'socket.io'));
    }

    public function testShardedSubscriptionModesChooseTheChannel(): void
    {
        $server = $this->redis();
        $main = $this->subscribe($server, 'socket.io#/#', sharded: true);
        $socketId = 'abcdefghij0123456789';
        (new SocketIo(self::client($server), ['adapter' => 'sharded', 'subscription_mode' => 'static']))->to('r')->emit('e');
        (new SocketIo(self::client($server), ['adapter' => 'sharded']))->to($socketId)->emit('e');
        self::assertSame(['socket.io#/#', 'socket.io#/#'], array_column($main->receive(2), 'channel'));
    }

    public function testTheDefaultClientIsUsedWithoutOne(): void
    {
        $server = $this->redis();
        $sub = $this->subscribe($server, 'pre:socket.io#/#r#');
        $result = PhpProcess::code(
            ['qrpush.url' => $server->url(), 'qrpush.channel_prefix' => 'pre:'],
            'echo (new QrPush\SocketIo())->to("r")->emit("e", 1);',
        );
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertSame('1', $result->stdout, $result->describe());
        self::assertCount(1, $sub->messages(1));
    }

    public function testMaxPayloadBoundsTheArgumentsJsonAndTheMessage(): void
    {
        $server = $this->redis();
        $all = $this->subscribe($server, '*', pattern: true);
        $io = new SocketIo(self::client($server, ['max_payload' => 128]));
        $f = 'QrPush\SocketIo::emit(): Argument #2 ($args) ';

        // The arguments' JSON, ["y…"], is 38 bytes; the message, the string's 36 bytes in 89.
        self::assertSame(1, $io->emit('e', str_repeat('y', 34)));
        self::assertSame(89, strlen($all->messages(1)[0]));

        $e = self::assertThrowsExactly(\ValueError::class, fn () => $io->emit('e', str_repeat('y', 130)));
        self::assertSame($f . 'is more than qrpush.max_payload (128 bytes) once encoded as JSON', $e->getMessage());
        // 104 bytes of JSON, a message of 155.
        $e = self::assertThrowsExactly(\ValueError::class, fn () => $io->emit('e', str_repeat('y', 100)));
        self::assertSame($f . 'is 155 bytes, more than qrpush.max_payload (128 bytes)', $e->getMessage());
        $all->assertNothingMore();
    }

    public function testBadInputIsRefusedNamingItAndPublishesNothing(): void
    {
        $server = $this->redis();
        $all = $this->subscribe($server, '*', pattern: true);
        $io = new SocketIo(self::client($server));
        $cases = [
            [\ValueError::class, fn () => $io->emit('disconnect'), 'QrPush\SocketIo::emit(): Argument #1 ($event) must not be "disconnect", a name Socket.IO reserves for itself'],
            [\ValueError::class, fn () => $io->emit("\xff"), 'QrPush\SocketIo::emit(): Argument #1 ($event) must be valid UTF-8 (malformed at byte 0)'],
            [\ValueError::class, fn () => $io->emit('e', 'ok', "\xff"), 'QrPush\SocketIo::emit(): Argument #2 ($args) contains malformed UTF-8 (at byte 0), which JSON cannot represent'],
            [\TypeError::class, fn () => $io->emit('e', new \DateTime()), 'QrPush\SocketIo::emit(): Argument #2 ($args) contains an object of class DateTime; only \stdClass, \JsonSerializable and \BackedEnum objects can be published'],
            [\ValueError::class, fn () => $io->to(''), 'QrPush\SocketIo::to(): Argument #1 ($rooms) must not be empty'],
            [\ValueError::class, fn () => $io->except(['a', "b\n"]), 'QrPush\SocketIo::except(): Argument #1 ($rooms) room #1 must not contain control characters (byte 0x0a at offset 1)'],
            [\TypeError::class, fn () => $io->in(['a', 1]), 'QrPush\SocketIo::in(): Argument #1 ($rooms) room #1 must be of type string, int given'],
            [\TypeError::class, fn () => $io->to(1.5), 'QrPush\SocketIo::to(): Argument #1 ($rooms) must be of type string|array, float given'],
            [\ValueError::class, fn () => $io->of("/a\0"), 'QrPush\SocketIo::of(): Argument #1 ($namespace) must not contain control characters (byte 0x00 at offset 2)'],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'cluster']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'adapter' must be 'classic', 'sharded' or 'streams', got 'cluster'"],
            [\ValueError::class, fn () => new SocketIo(null, ['subscription_mode' => 'static']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'subscription_mode' is for the sharded adapter only"],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'sharded', 'subscription_mode' => 'x']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'subscription_mode' must be 'dynamic', 'static' or 'dynamic-private', got 'x'"],
            [\ValueError::class, fn () => new SocketIo(null, ['keys' => 'x']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) unknown option 'keys' (known: adapter, key, subscription_mode, stream, stream_count, max_len)"],
            [\TypeError::class, fn () => new SocketIo(null, ['key' => 1]), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'key' must be of type string, int given"],
            [\ValueError::class, fn () => new SocketIo(null, ['key' => '']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'key' must not be empty"],
            [\ValueError::class, fn () => new SocketIo(null, ['max_len' => 5]), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'max_len' is for the streams adapter only"],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'sharded', 'stream' => 's']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'stream' is for the streams adapter only"],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'streams', 'key' => 's']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'key' is for the Pub/Sub adapters (classic, sharded); the streams adapter's stream is option 'stream'"],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'streams', 'subscription_mode' => 'static']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'subscription_mode' is for the sharded adapter only"],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'streams', 'max_len' => 0]), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'max_len' must be from 1 to 9223372036854775807, got 0"],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'streams', 'stream_count' => -1]), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'stream_count' must be from 1 to 4294967295, got -1"],
            [\TypeError::class, fn () => new SocketIo(null, ['adapter' => 'streams', 'max_len' => '10']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'max_len' must be of type int, string given"],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'streams', 'stream' => '']), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'stream' must not be empty"],
            [\ValueError::class, fn () => new SocketIo(null, ['adapter' => 'streams', 'stream' => "s\n"]), "QrPush\\SocketIo::__construct(): Argument #2 (\$options) option 'stream' must not contain control characters (byte 0x0a at offset 1)"],
        ];
        foreach ($cases as [$class, $call, $message]) {
            $e = self::assertThrowsExactly($class, $call);
            self::assertSame($message, $e->getMessage());
        }
        $all->assertNothingMore();
    }
}
