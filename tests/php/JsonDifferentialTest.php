<?php

declare(strict_types=1);

namespace QrPush\Tests;


/**
 * Randomized differential test of the extension's JSON encoder against json_encode in this very
 * PHP: thousands of random nested values (a fixed seed, so a failure reproduces) are published
 * through a real Redis in publishMany batches, and one subscriber checks that every payload is
 * byte-identical to json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE |
 * JSON_PRESERVE_ZERO_FRACTION). Random byte strings check that the extension rejects exactly the
 * strings json_encode rejects as malformed UTF-8, at the offset where the valid part ends.
 *
 * The hand-picked corner cases live in JsonCorpusTest; this one finds the combinations nobody
 * thought of (escapes at the edges of 8-byte runs, floats next to PHP's notation thresholds,
 * keys that are or are not a list...). Floats are compared under several serialize_precision
 * values too: json_encode spells them with it (the legacy 17 writes 0.1 as 0.10000000000000001).
 */
final class JsonDifferentialTest extends JsonAgainstPhpTestCase
{
    private const SEED = 20261122;
    private const VALUES = 3000;
    private const BATCH = 250;
    private const MAX_DEPTH = 4;

    /** String pieces that stress escaping and UTF-8 handling. */
    private const PIECES = [
        'a', 'Z', '0', ' ', 'plain', '/', '</script>', '"', '\\', '\\u0000', "\x7f", "\t", "\n", "\r",
        "\x08", "\x0c", "\x00", "\x01", "\x1f", 'é', 'ü', '日本', "\u{2028}", "\u{2029}", "\u{2027}",
        "\u{202a}", '😀', "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}", "\u{FEFF}", "\u{85}",
        "\u{FFFD}", "\u{10FFFF}", "\u{E000}", "\u{D7FF}", '—', "\u{800}", "\u{80}", "\u{7FF}",
    ];

    /** Floats at PHP's notation thresholds and other edges. */
    private const FLOATS = [
        0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, 2.5, 0.30000000000000004, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22, 1e23, 999999999999999.9, 9007199254740992.0, 9007199254740993.0,
        99999999999999999.0, 1e-4, 1e-5, 0.00012, 0.0001234, 123456789012345.67, PHP_FLOAT_EPSILON,
        PHP_FLOAT_MIN, PHP_FLOAT_MAX, -PHP_FLOAT_MAX, 5e-324, -5e-324, 1e100, 1e-100, 1e308, 1e-308,
        1141701677661837.25, 913570623242074.875, 0.366062164306640625, 1767225600.125,
    ];

    protected static function channelLabel(): string
    {
        return 'json-differential';
    }

    public function testRandomValuesEncodeLikeJsonEncode(): void
    {
        mt_srand(self::SEED);
        $values = [];
        for ($i = 0; $i < self::VALUES; $i++) {
            $values[] = self::randomContainer(0);
        }
        foreach (array_chunk($values, self::BATCH, true) as $batch) {
            $this->assertPublishedLikeJsonEncode($batch);
        }
    }

    /** @return iterable<string, array{int}> */
    public static function serializePrecisions(): iterable
    {
        foreach ([17, 16, 15, 14, 10, 6, 2, 1, 0, 20, 40, 100] as $precision) {
            yield "serialize_precision={$precision}" => [$precision];
        }
    }

    /** Lists of random floats (and random values) under another serialize_precision than -1. */
    #[\PHPUnit\Framework\Attributes\DataProvider('serializePrecisions')]
    public function testFloatsFollowSerializePrecision(int $precision): void
    {
        mt_srand(self::SEED + 100 + $precision);
        $values = [];
        for ($i = 0; $i < 300; $i++) {
            if ($i % 3 === 0) {
                $values[] = self::randomContainer(0);
                continue;
            }
            $floats = [];
            for ($n = 0; $n < 20; $n++) {
                $floats[] = self::randomFloat();
            }
            $values[] = $floats;
        }
        $default = ini_get('serialize_precision');
        ini_set('serialize_precision', (string) $precision);
        try {
            foreach (array_chunk($values, self::BATCH, true) as $batch) {
                $this->assertPublishedLikeJsonEncode($batch);
            }
        } finally {
            ini_set('serialize_precision', (string) $default);
        }
    }

    /**
     * Byte strings mixing valid UTF-8 with malformed sequences, as values and as keys: the
     * extension refuses a string exactly when json_encode does (JSON_ERROR_UTF8), says where the
     * valid part ends, publishes nothing then, and publishes json_encode's bytes otherwise.
     */
    public function testMalformedUtf8IsRejectedExactlyWhenJsonEncodeRejectsIt(): void
    {
        mt_srand(self::SEED + 1);
        $accepted = [];
        $rejected = 0;
        for ($i = 0; $i < 2000; $i++) {
            $bytes = self::randomBytes();
            $value = $i % 2 ? ['k' => [$bytes]] : ['k' => [$bytes => 1]];
            if (json_encode($value, self::FLAGS) !== false) {
                $accepted[$i] = $value;
                continue;
            }
            self::assertSame(JSON_ERROR_UTF8, json_last_error(), json_last_error_msg());
            $offset = self::validUtf8PrefixLength($bytes);
            self::assertThrowsExactly(
                \ValueError::class,
                static fn () => self::$publisher->publish(self::$channel, $value),
                "contains malformed UTF-8 (at byte {$offset}), which JSON cannot represent",
            );
            $rejected++;
        }
        self::$subscriber->assertNothingMore(0.1, 'rejected messages must not be published:');
        // The generator must exercise both outcomes substantially.
        self::assertGreaterThan(250, $rejected);
        self::assertGreaterThan(250, \count($accepted));
        foreach (array_chunk($accepted, self::BATCH, true) as $batch) {
            $this->assertPublishedLikeJsonEncode($batch);
        }
    }

    /** @param array<int, mixed> $values by case number */
    private function assertPublishedLikeJsonEncode(array $values): void
    {
        $expected = [];
        foreach ($values as $i => $value) {
            $json = json_encode($value, self::FLAGS);
            self::assertIsString($json, "json_encode rejected case #{$i}: " . json_last_error_msg());
            $expected[$i] = $json;
        }
        $pairs = array_map(static fn (mixed $v): array => [self::$channel, $v], array_values($values));
        self::assertSame(array_fill(0, \count($pairs), 1), self::$publisher->publishMany($pairs));
        $received = array_combine(array_keys($values), self::$subscriber->messages(\count($values)));
        foreach ($expected as $i => $json) {
            if ($received[$i] !== $json) {
                self::fail(sprintf(
                    "case #%d (seed %d) differs from json_encode\nvalue:    %s\nexpected: %s\ngot:      %s",
                    $i,
                    self::SEED,
                    var_export($values[$i], true),
                    bin2hex($json),
                    bin2hex($received[$i]),
                ));
            }
        }
        $this->addToAssertionCount(\count($expected));
    }

    /** A publishable top-level value: an array (list or not) or a \stdClass. */
    private static function randomContainer(int $depth): array|\stdClass
    {
        return match (mt_rand(0, 5)) {
            0, 1 => self::randomList($depth),
            2, 3 => self::randomMap($depth),
            4 => self::randomAlmostList($depth),
            default => self::randomObject($depth),
        };
    }

    private static function randomValue(int $depth): mixed
    {
        $kind = mt_rand(0, $depth >= self::MAX_DEPTH ? 7 : 10);
        switch ($kind) {
            case 0:
                return null;
            case 1:
                return mt_rand(0, 1) === 1;
            case 2:
            case 3:
                return self::randomInt();
            case 4:
            case 5:
                return self::randomFloat();
            case 6:
            case 7:
                return self::randomString();
            case 8:
                // A reference inside the array (json_encode follows it).
                $inner = self::randomValue($depth + 1);
                $list = [&$inner];
                return $list;
            default:
                return self::randomContainer($depth + 1);
        }
    }

    /** @return list<mixed> */
    private static function randomList(int $depth): array
    {
        $list = [];
        for ($n = mt_rand(0, 6); $n > 0; $n--) {
            $list[] = self::randomValue($depth);
        }
        return $list;
    }

    /** Keys of every kind: ints (negative, huge), numeric strings, any text, '', NUL-prefixed. */
    private static function randomMap(int $depth): array
    {
        $map = [];
        for ($n = mt_rand(0, 6); $n > 0; $n--) {
            $map[self::randomKey()] = self::randomValue($depth);
        }
        return $map;
    }

    /** Arrays that are lists, or nearly: out of order, with a hole, or a string key at the end. */
    private static function randomAlmostList(int $depth): array
    {
        $list = self::randomList($depth);
        switch (mt_rand(0, 3)) {
            case 0:
                return array_reverse($list, true);
            case 1:
                unset($list[mt_rand(0, max(0, \count($list) - 1))]);
                return $list;
            case 2:
                $list['end'] = self::randomValue($depth);
                return $list;
            default:
                $list[\count($list) + mt_rand(0, 2)] = 'next';
                return $list;
        }
    }

    private static function randomObject(int $depth): \stdClass
    {
        if (mt_rand(0, 1) === 0) {
            return (object) self::randomMap($depth);
        }
        $object = new \stdClass();
        for ($n = mt_rand(0, 5); $n > 0; $n--) {
            $name = (string) self::randomKey();
            // PHP refuses these names in a property assignment (the cast above still makes them).
            if ($name === '' || $name[0] === "\0") {
                continue;
            }
            $object->{$name} = self::randomValue($depth);
        }
        if (mt_rand(0, 3) === 0) {
            $object->gone = 1;
            unset($object->gone);
        }
        return $object;
    }

    private static function randomKey(): int|string
    {
        return match (mt_rand(0, 7)) {
            0 => mt_rand(-3, 12),
            1 => [PHP_INT_MAX, PHP_INT_MIN, 0, -1][mt_rand(0, 3)],
            2 => (string) mt_rand(0, 99),
            3 => ['', '01', '1.5', ' 1', '-0', '9223372036854775808', "\0hidden", "\0*\0p"][mt_rand(0, 7)],
            default => self::randomString(),
        };
    }

    private static function randomInt(): int
    {
        return match (mt_rand(0, 4)) {
            0 => [PHP_INT_MIN, PHP_INT_MAX, 0, -1, 1, PHP_INT_MAX - 1, PHP_INT_MIN + 1][mt_rand(0, 6)],
            1 => mt_rand(-1000, 1000),
            // All 64 bits random.
            2 => (mt_rand() << 33) ^ (mt_rand() << 2) ^ mt_rand(0, 3),
            default => mt_rand(PHP_INT_MIN, PHP_INT_MAX),
        };
    }

    private static function randomFloat(): float
    {
        $float = match (mt_rand(0, 7)) {
            0 => self::FLOATS[mt_rand(0, \count(self::FLOATS) - 1)],
            // Any bit pattern (mostly huge or tiny).
            1 => self::floatFromBits(self::randomBits()),
            // The neighbours of a threshold or edge, a few ulps away.
            2 => self::floatFromBits(self::nudge(self::bitsOfFloat(self::FLOATS[mt_rand(0, \count(self::FLOATS) - 1)]), mt_rand(-3, 3))),
            // Powers of ten around PHP's switch to exponent notation, and their neighbours.
            3 => self::floatFromBits(self::nudge(self::bitsOfFloat((float) ('1e' . mt_rand(14, 23))), mt_rand(-2, 2))),
            // "Human" decimals.
            4 => (float) mt_rand(-1_000_000_000, 1_000_000_000) / 10 ** mt_rand(0, 12),
            // Exact binary fractions: where two shortest candidates can tie.
            5 => (float) (mt_rand() * 2 ** mt_rand(0, 24)) / 2 ** mt_rand(1, 30),
            // Any magnitude, from subnormal to huge.
            6 => mt_rand() / mt_getrandmax() * 10.0 ** mt_rand(-320, 308),
            default => (float) mt_rand(-100_000, 100_000),
        };
        if (!is_finite($float)) {
            return 0.25;
        }
        return mt_rand(0, 1) === 1 ? -$float : $float;
    }

    private static function randomString(): string
    {
        $string = '';
        $pieces = match (mt_rand(0, 5)) {
            0 => 0,
            // Long enough for the encoder's 8-byte runs, escapes landing anywhere in them.
            1 => mt_rand(8, 40),
            default => mt_rand(1, 8),
        };
        for ($i = 0; $i < $pieces; $i++) {
            $string .= match (mt_rand(0, 5)) {
                0 => self::utf8(mt_rand(0x80, 0x10FFFF)),
                1, 2 => self::PIECES[mt_rand(0, \count(self::PIECES) - 1)],
                default => \chr(mt_rand(0x20, 0x7e)),
            };
        }
        return $string;
    }

    /** Valid UTF-8 pieces and malformed sequences of every kind, concatenated. */
    private static function randomBytes(): string
    {
        $malformed = [
            "\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xc2", "\xe0\x80\xaf", "\xe0\xa0", "\xe2\x80",
            "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf", "\xf0\x9f\x98", "\xf4\x90\x80\x80",
            "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff", "\xe2\x80\xa8\xa9",
        ];
        $bytes = '';
        for ($n = mt_rand(1, 6); $n > 0; $n--) {
            $bytes .= match (mt_rand(0, 3)) {
                0 => $malformed[mt_rand(0, \count($malformed) - 1)],
                1 => \chr(mt_rand(0x80, 0xff)),
                default => self::randomString(),
            };
        }
        return $bytes;
    }

    /** Where a string's valid UTF-8 ends: the length of its longest valid prefix. */
    private static function validUtf8PrefixLength(string $bytes): int
    {
        for ($length = \strlen($bytes); $length > 0; $length--) {
            if (preg_match('//u', substr($bytes, 0, $length)) === 1) {
                return $length;
            }
        }
        return 0;
    }

    /** The UTF-8 encoding of a code point (a surrogate becomes U+FFFD). */
    private static function utf8(int $codePoint): string
    {
        if ($codePoint >= 0xD800 && $codePoint <= 0xDFFF) {
            $codePoint = 0xFFFD;
        }
        if ($codePoint < 0x800) {
            return \chr(0xC0 | $codePoint >> 6) . \chr(0x80 | $codePoint & 0x3F);
        }
        if ($codePoint < 0x10000) {
            return \chr(0xE0 | $codePoint >> 12) . \chr(0x80 | $codePoint >> 6 & 0x3F) . \chr(0x80 | $codePoint & 0x3F);
        }
        return \chr(0xF0 | $codePoint >> 18) . \chr(0x80 | $codePoint >> 12 & 0x3F)
            . \chr(0x80 | $codePoint >> 6 & 0x3F) . \chr(0x80 | $codePoint & 0x3F);
    }

    private static function randomBits(): int
    {
        return (mt_rand() << 33) ^ (mt_rand() << 2) ^ mt_rand(0, 3);
    }

    /** `$bits + $delta`, or `$bits` where the sum would leave the int range (and become a float). */
    private static function nudge(int $bits, int $delta): int
    {
        $sum = $bits + $delta;
        return \is_int($sum) ? $sum : $bits;
    }

    private static function floatFromBits(int $bits): float
    {
        return unpack('e', pack('P', $bits))[1];
    }

    private static function bitsOfFloat(float $float): int
    {
        return unpack('P', pack('e', $float))[1];
    }
}
