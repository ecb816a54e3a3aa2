<?php

declare(strict_types=1);

namespace QrPush\Tests;

use QrPush\Client;

/**
 * Base of the tests that compare the extension's JSON with json_encode in this very PHP: one
 * Redis, one subscriber and one publisher for the whole class (thousands of values go through
 * them), and a drained subscriber after every test so that a failed case leaks nothing into the
 * next one.
 */
abstract class JsonAgainstPhpTestCase extends TestCase
{
    /** The flags QrPush's encoding is byte-identical to. */
    protected const FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION;

    protected static ?RedisServer $server = null;
    protected static ?Subscriber $subscriber = null;
    protected static ?Client $publisher = null;
    protected static string $channel = '';

    /** Names the class's channel, so two classes never read each other's messages. */
    abstract protected static function channelLabel(): string;

    public static function setUpBeforeClass(): void
    {
        self::$server = new RedisServer();
        self::$channel = self::channel(static::channelLabel());
        self::$subscriber = new Subscriber(self::$server, self::$channel);
        self::$publisher = self::client(self::$server);
    }

    public static function tearDownAfterClass(): void
    {
        self::$subscriber?->close();
        self::$server?->kill();
        self::$subscriber = self::$server = self::$publisher = null;
    }

    protected function tearDown(): void
    {
        self::$subscriber?->drain();
        parent::tearDown();
    }
}
