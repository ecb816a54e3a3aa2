<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

enum JsonCorpusSuit: string
{
    case Hearts = 'H';
    case Slash = 'a/é"\\';
}

enum JsonCorpusLevel: int
{
    case Low = 1;
    case Max = PHP_INT_MAX;
    case Negative = -7;
}

/** A JsonSerializable returning whatever it was given. */
final class JsonCorpusValue implements \JsonSerializable
{
    public function __construct(private readonly mixed $value)
    {
    }

    public function jsonSerialize(): mixed
    {
        return $this->value;
    }
}

/** A JsonSerializable returning itself: json_encode() then encodes its public properties. */
final class JsonCorpusSelf implements \JsonSerializable
{
    public int $a = 1;
    public array $list = ['x', 'y'];
    protected string $hidden = 'protected';
    private string $secret = 'private';

    public function jsonSerialize(): mixed
    {
        return $this;
    }
}

/**
 * Arrays and objects are encoded by the extension, and subscribers must see exactly what
 * json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION)
 * gives in this very PHP: each corpus value is published through a real Redis and the received
 * bytes are compared with json_encode's.
 */
final class JsonCorpusTest extends JsonAgainstPhpTestCase
{
    protected static function channelLabel(): string
    {
        return 'json';
    }

    /** @return array<string, array{mixed}> */
    public static function corpus(): array
    {
        $c = [];
        // Lists vs maps: PHP decides by the keys, and turns numeric-string keys into ints.
        $c['empty array'] = [];
        $c['list'] = [1, 2, 3];
        $c['map'] = ['a' => 1, 'b' => 2];
        $c['keys from 1'] = [1 => 'a', 2 => 'b'];
        $c['single key 1'] = [1 => 'a'];
        $c["numeric-string key '1'"] = ['1' => 'a'];
        $c["numeric-string keys '0','1' (a list)"] = ['0' => 'x', '1' => 'y'];
        $c['sparse'] = [0 => 'a', 2 => 'c'];
        $c['list keys out of order'] = [1 => 'b', 0 => 'a'];
        $unsetMiddle = [1, 2, 3];
        unset($unsetMiddle[1]);
        $c['unset in the middle'] = $unsetMiddle;
        $unsetLast = [1, 2, 3];
        unset($unsetLast[2]);
        $c['unset at the end (still a list)'] = $unsetLast;
        $c['negative key'] = [-1 => 'a'];
        $c['list then string key'] = [0 => 'a', 'x' => 'b'];
        $c['keys that stay strings'] = ['01' => 'a', '1.5' => 'b', ' 1' => 'c', '-0' => 'd', '9223372036854775808' => 'e'];
        $c['PHP_INT_MAX and PHP_INT_MIN keys'] = [PHP_INT_MAX => 1, PHP_INT_MIN => 2];
        $c['empty string key'] = ['' => 1];
        // Only objects hide NUL-prefixed (mangled) names; arrays keep such keys.
        $c['NUL-prefixed array keys'] = ["\0a" => 1, "\0*\0p" => 2, 'b' => 3];
        $c['list then a NUL-prefixed key'] = [0 => 'x', "\0a" => 1];
        $c['NUL-prefixed names in an (object) cast'] = (object) ["\0a" => 1, "\0*\0p" => 2, 'b' => 3];
        $c['empties nested'] = [[], [[]], new \stdClass(), ['k' => []]];
        $c['nested lists and maps'] = ['users' => [['id' => 1, 'tags' => ['a', 'b']], ['id' => 2, 'tags' => []]], 'total' => 2];
        // Objects.
        $c['new stdClass'] = new \stdClass();
        $c['(object) map'] = (object) ['a' => 1];
        $c["(object) ['1' => 'a']"] = (object) ['1' => 'a'];
        $c['(object) list'] = (object) ['x', 'y'];
        $dynamic = new \stdClass();
        $dynamic->b = 2;
        $dynamic->a = 1;
        $dynamic->{'123'} = 'numeric name';
        $dynamic->gone = true;
        unset($dynamic->gone);
        $c['stdClass with added and removed properties'] = $dynamic;
        $c['json_decode()d object'] = json_decode('{"0":"a","x":{"y":[1,{"z":null}]}}');
        $c['objects in a list'] = [(object) ['a' => 1], (object) []];
        // Floats (inside arrays: a bare float is not a publishable message).
        foreach ([
            '0.1' => 0.1, '1.0' => 1.0, '-0.0' => -0.0, '0.0' => 0.0, '100.0' => 100.0, '1e25' => 1e25,
            '1e-7' => 1e-7, 'PHP_FLOAT_EPSILON' => PHP_FLOAT_EPSILON, '1e15' => 1e15, '1e16' => 1e16, '1e21' => 1e21,
            '0.30000000000000004' => 0.1 + 0.2, 'PHP_FLOAT_MAX' => PHP_FLOAT_MAX, 'PHP_FLOAT_MIN' => PHP_FLOAT_MIN,
            '5e-324' => 5e-324, '-1.5e-300' => -1.5e-300, '1/3' => 1 / 3, '123456789012345.67' => 123456789012345.67,
            '0.0001' => 0.0001, '0.00001' => 0.00001, '-2.5' => -2.5, '2**53' => 2.0 ** 53, '1e100' => 1e100,
            '4.35' => 4.35, '9007199254740993.0' => 9007199254740993.0,
        ] as $name => $float) {
            $c["float {$name}"] = [$float];
        }
        $c['floats in a map'] = ['price' => 19.99, 'qty' => 3.0, 'neg' => -0.5];
        // Integers.
        $c['PHP_INT_MAX, PHP_INT_MIN, 0, -1'] = [PHP_INT_MAX, PHP_INT_MIN, 0, -1];
        // Strings.
        $c['unicode'] = ['é', '日本語', 'Ω≈ç√', '🎉', "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}"];
        $c['U+2028 and U+2029'] = ["line\u{2028}separator", "para\u{2029}graph", "\u{2028}\u{2029}"];
        $c['slashes'] = ['a/b', '</script>', 'back\\slash', 'http://x/y?z=1&w=2'];
        $c['control characters'] = ["\x00\x01\x02\x1f", "\t\n\r\x08\x0c", "\x7f", "a\0b"];
        $c['quotes and html'] = ['"double"', "'single'", '<a href="x">&amp;</a>'];
        $c['empty string'] = [''];
        $c['BOM and zero-width'] = ["\u{FEFF}bom", "zero\u{200B}width"];
        $c['unicode keys'] = ['ключ' => 'значение', '🔑' => '🔒', "\u{2028}" => 'key with U+2028'];
        $c['long string'] = [str_repeat('abcdefghij', 10_000)];
        $c['escapes as text'] = ['\\u00e9', '\\n', '\\"'];
        // Null and bools.
        $c['null and bools'] = [null, true, false];
        $c['null in a map'] = ['n' => null, 't' => true, 'f' => false];
        // JsonSerializable.
        $c['JsonSerializable returning a map'] = new JsonCorpusValue(['id' => 7, 'ok' => true]);
        $c['JsonSerializable returning a list'] = new JsonCorpusValue([1, 'two', 3.0]);
        $c['JsonSerializable returning an int'] = new JsonCorpusValue(42);
        $c['JsonSerializable returning a string'] = new JsonCorpusValue('só/"x"');
        $c['JsonSerializable returning null'] = new JsonCorpusValue(null);
        $c['JsonSerializable returning false'] = new JsonCorpusValue(false);
        $c['JsonSerializable returning a float'] = new JsonCorpusValue(1.0);
        $c['JsonSerializable returning a stdClass'] = new JsonCorpusValue((object) ['a' => [1]]);
        $c['JsonSerializable returning a JsonSerializable'] = new JsonCorpusValue(new JsonCorpusValue(['deep' => 1]));
        $c['JsonSerializable in an array'] = ['a' => new JsonCorpusValue([1, 2]), 'b' => [new JsonCorpusValue('x')]];
        $c['JsonSerializable returning an enum'] = new JsonCorpusValue(JsonCorpusSuit::Hearts);
        // Backed enums.
        $c['string-backed enum'] = JsonCorpusSuit::Hearts;
        $c['string-backed enum with escapes'] = JsonCorpusSuit::Slash;
        $c['int-backed enum'] = JsonCorpusLevel::Low;
        $c['enums in an array'] = [JsonCorpusSuit::Hearts, JsonCorpusLevel::Max, 'k' => JsonCorpusLevel::Negative];
        // Depth.
        $list = 'bottom';
        $map = 'bottom';
        for ($i = 0; $i < 100; $i++) {
            $list = [$list];
            $map = ["l{$i}" => $map];
        }
        $c['100 nested lists'] = $list;
        $c['100 nested maps'] = $map;
        $limit = [];
        for ($i = 1; $i < 512; $i++) {
            $limit = [$limit];
        }
        $c['512 nested arrays (json_encode\'s limit)'] = $limit;
        $mixed = ['end' => true];
        for ($i = 0; $i < 50; $i++) {
            $mixed = $i % 2 ? (object) ['o' => $mixed] : [$mixed, $i];
        }
        $c['50 levels of arrays and objects'] = $mixed;
        // Shared (not recursive) structures.
        $shared = ['s' => 1];
        $object = (object) ['o' => 1];
        $c['the same array twice by reference'] = [&$shared, &$shared];
        $c['the same object twice'] = [$object, ['again' => $object]];

        return array_map(static fn (mixed $v): array => [$v], $c);
    }

    public function testCorpusIsLargeEnough(): void
    {
        self::assertGreaterThanOrEqual(60, \count(self::corpus()));
    }

    #[DataProvider('corpus')]
    public function testPublishedBytesEqualJsonEncode(mixed $value): void
    {
        $expected = json_encode($value, self::FLAGS);
        self::assertIsString($expected, 'json_encode itself must accept every corpus value: ' . json_last_error_msg());
        self::assertSame(1, self::$publisher->publish(self::$channel, $value));
        self::assertSame([$expected], self::$subscriber->messages(1));
    }

    public function testWholeCorpusThroughPublishMany(): void
    {
        $values = array_column(self::corpus(), 0);
        $pairs = array_map(static fn (mixed $v): array => [self::$channel, $v], $values);
        self::assertSame(array_fill(0, \count($values), 1), self::$publisher->publishMany($pairs));
        self::assertSame(
            array_map(static fn (mixed $v): string => json_encode($v, self::FLAGS), $values),
            self::$subscriber->messages(\count($values)),
        );
    }

    /**
     * jsonSerialize() may return $this: json_encode() then encodes the object's public properties
     * (php_json_encode_serializable_object() special-cases it) instead of calling it again.
     * Fails with qrpush 0.1.0: ValueError "contains a recursive reference".
     */
    public function testJsonSerializableReturningItself(): void
    {
        $value = new JsonCorpusSelf();
        $expected = json_encode($value, self::FLAGS);
        self::assertSame('{"a":1,"list":["x","y"]}', $expected);
        self::assertSame(1, self::$publisher->publish(self::$channel, $value));
        self::assertSame([$expected], self::$subscriber->messages(1));
    }

    /**
     * Only arrays and objects count towards json_encode's 512 levels; a JsonSerializable that
     * returns an array does not add one of its own.
     * Fails with qrpush 0.1.0: ValueError "is nested deeper than 512 levels" (each
     * JsonSerializable counts as a level).
     */
    public function testJsonSerializableDoesNotCountAsANestingLevel(): void
    {
        $value = [];
        for ($i = 1; $i < 510; $i++) {
            $value = [$value];
        }
        // 510 levels, one more inside the JsonSerializable, one outside: 512 in all.
        $value = [new JsonCorpusValue(new JsonCorpusValue([$value]))];
        $expected = json_encode($value, self::FLAGS);
        self::assertIsString($expected, json_last_error_msg());
        self::assertSame(1, self::$publisher->publish(self::$channel, $value));
        self::assertSame([$expected], self::$subscriber->messages(1));
    }
}
