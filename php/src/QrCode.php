<?php

declare(strict_types=1);

namespace QrDemo;

/**
 * A QR code encoder (ISO/IEC 18004, byte mode, all 40 versions and 4 error correction levels) that
 * renders SVG — so the demo needs no library, no CDN and no network. It follows the structure of
 * Project Nayuki's reference implementation (MIT): data bits, Reed-Solomon blocks, interleaving,
 * function patterns, zig-zag placement, and the mask with the lowest penalty.
 *
 *   $svg = QrCode::encode($text)->svg();
 */
final class QrCode
{
    public const LOW = 0;
    public const MEDIUM = 1;
    public const QUARTILE = 2;
    public const HIGH = 3;

    /** Format-information bits of each level (L, M, Q, H). */
    private const FORMAT_BITS = [1, 0, 3, 2];

    /** Error-correction codewords per block, by level then version (index 0 unused). */
    private const ECC_PER_BLOCK = [
        [-1, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
        [-1, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28],
        [-1, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
        [-1, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
    ];

    /** Number of error-correction blocks, by level then version. */
    private const BLOCKS = [
        [-1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25],
        [-1, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49],
        [-1, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68],
        [-1, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81],
    ];

    public readonly int $size;
    /** @var list<list<bool>> [y][x], true = dark */
    private array $modules = [];
    /** @var list<list<bool>> [y][x], true = part of a function pattern */
    private array $isFunction = [];

    private function __construct(
        public readonly int $version,
        public readonly int $level,
        string $data,
        ?int $mask,
    ) {
        $this->size = $version * 4 + 17;
        $row = array_fill(0, $this->size, false);
        $this->modules = array_fill(0, $this->size, $row);
        $this->isFunction = array_fill(0, $this->size, $row);

        $this->drawFunctionPatterns();
        $this->drawCodewords($this->addEccAndInterleave($this->dataCodewords($data)));

        if ($mask === null) {
            $best = PHP_INT_MAX;
            for ($m = 0; $m < 8; $m++) {
                $this->applyMask($m);
                $this->drawFormatBits($m);
                $penalty = $this->penalty();
                if ($penalty < $best) {
                    [$mask, $best] = [$m, $penalty];
                }
                $this->applyMask($m); // XOR again: undone
            }
        }
        $this->mask = $mask;
        $this->applyMask($mask);
        $this->drawFormatBits($mask);
    }

    public readonly int $mask;

    /**
     * Encodes `$text` (as bytes) in the smallest version that holds it at `$level`.
     *
     * @param int|null $version force a version (1..40) instead; $mask forces a mask (0..7)
     */
    public static function encode(string $text, int $level = self::MEDIUM, ?int $version = null, ?int $mask = null): self
    {
        if ($level < 0 || $level > 3 || ($mask !== null && ($mask < 0 || $mask > 7))) {
            throw new \ValueError('invalid error correction level or mask');
        }
        for ($v = $version ?? 1; $v <= ($version ?? 40); $v++) {
            $bits = 4 + ($v <= 9 ? 8 : 16) + 8 * \strlen($text);
            if ($bits <= self::dataCodewordCount($v, $level) * 8) {
                return new self($v, $level, $text, $mask);
            }
        }
        throw new \ValueError('the text is too long for a QR code');
    }

    public function isDark(int $x, int $y): bool
    {
        return $x >= 0 && $y >= 0 && $x < $this->size && $y < $this->size && $this->modules[$y][$x];
    }

    /** The modules as text, one row per line: '#' dark, '.' light (for tests). */
    public function text(): string
    {
        $lines = [];
        foreach ($this->modules as $row) {
            $lines[] = implode('', array_map(static fn (bool $dark): string => $dark ? '#' : '.', $row));
        }
        return implode("\n", $lines);
    }

    /** An SVG image: one path of unit squares, with the 4-module quiet zone the standard asks for. */
    public function svg(int $quietZone = 4): string
    {
        $path = '';
        for ($y = 0; $y < $this->size; $y++) {
            for ($x = 0; $x < $this->size; $x++) {
                if ($this->modules[$y][$x]) {
                    $path .= sprintf('M%d %dh1v1h-1z', $x + $quietZone, $y + $quietZone);
                }
            }
        }
        $full = $this->size + 2 * $quietZone;
        return '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' . $full . ' ' . $full . '"'
            . ' shape-rendering="crispEdges" role="img" aria-label="QR code">'
            . '<rect width="100%" height="100%" fill="#fff"/><path fill="#000" d="' . $path . '"/></svg>';
    }

    // --- data ------------------------------------------------------------------------------------

    /** @return list<int> the data codewords: byte-mode segment, terminator, padding */
    private function dataCodewords(string $data): array
    {
        $bits = [];
        $append = static function (int $value, int $length) use (&$bits): void {
            for ($i = $length - 1; $i >= 0; $i--) {
                $bits[] = ($value >> $i) & 1;
            }
        };
        $append(0b0100, 4);
        $append(\strlen($data), $this->version <= 9 ? 8 : 16);
        foreach (str_split($data) as $char) {
            if ($char !== '') {
                $append(\ord($char), 8);
            }
        }
        $capacity = self::dataCodewordCount($this->version, $this->level) * 8;
        $append(0, min(4, $capacity - \count($bits)));
        $append(0, (8 - \count($bits) % 8) % 8);
        for ($pad = 0xEC; \count($bits) < $capacity; $pad ^= 0xEC ^ 0x11) {
            $append($pad, 8);
        }
        $codewords = [];
        foreach (array_chunk($bits, 8) as $byte) {
            $codewords[] = array_reduce($byte, static fn (int $acc, int $bit): int => ($acc << 1) | $bit, 0);
        }
        return $codewords;
    }

    /**
     * @param list<int> $data
     * @return list<int> data and error-correction codewords, interleaved across blocks
     */
    private function addEccAndInterleave(array $data): array
    {
        $numBlocks = self::BLOCKS[$this->level][$this->version];
        $eccLen = self::ECC_PER_BLOCK[$this->level][$this->version];
        $rawCodewords = intdiv(self::rawDataModules($this->version), 8);
        $numShortBlocks = $numBlocks - $rawCodewords % $numBlocks;
        $shortBlockLen = intdiv($rawCodewords, $numBlocks);

        $divisor = self::rsDivisor($eccLen);
        $blocks = [];
        for ($i = 0, $k = 0; $i < $numBlocks; $i++) {
            $dataLen = $shortBlockLen - $eccLen + ($i < $numShortBlocks ? 0 : 1);
            $block = \array_slice($data, $k, $dataLen);
            $k += $dataLen;
            $ecc = self::rsRemainder($block, $divisor);
            if ($i < $numShortBlocks) {
                $block[] = 0; // placeholder, skipped when interleaving
            }
            $blocks[] = array_merge($block, $ecc);
        }
        $result = [];
        for ($i = 0, $n = \count($blocks[0]); $i < $n; $i++) {
            foreach ($blocks as $j => $block) {
                if ($i !== $shortBlockLen - $eccLen || $j >= $numShortBlocks) {
                    $result[] = $block[$i];
                }
            }
        }
        return $result;
    }

    private static function rawDataModules(int $version): int
    {
        $result = (16 * $version + 128) * $version + 64;
        if ($version >= 2) {
            $numAlign = intdiv($version, 7) + 2;
            $result -= (25 * $numAlign - 10) * $numAlign - 55;
            if ($version >= 7) {
                $result -= 36;
            }
        }
        return $result;
    }

    private static function dataCodewordCount(int $version, int $level): int
    {
        return intdiv(self::rawDataModules($version), 8)
            - self::ECC_PER_BLOCK[$level][$version] * self::BLOCKS[$level][$version];
    }

    /** @return list<int> the generator polynomial of degree `$degree`, highest term dropped */
    private static function rsDivisor(int $degree): array
    {
        $result = array_fill(0, $degree, 0);
        $result[$degree - 1] = 1;
        $root = 1;
        for ($i = 0; $i < $degree; $i++) {
            for ($j = 0; $j < $degree; $j++) {
                $result[$j] = self::gfMultiply($result[$j], $root);
                if ($j + 1 < $degree) {
                    $result[$j] ^= $result[$j + 1];
                }
            }
            $root = self::gfMultiply($root, 0x02);
        }
        return $result;
    }

    /**
     * @param list<int> $data
     * @param list<int> $divisor
     * @return list<int>
     */
    private static function rsRemainder(array $data, array $divisor): array
    {
        $result = array_fill(0, \count($divisor), 0);
        foreach ($data as $byte) {
            $factor = $byte ^ array_shift($result);
            $result[] = 0;
            foreach ($divisor as $i => $coefficient) {
                $result[$i] ^= self::gfMultiply($coefficient, $factor);
            }
        }
        return $result;
    }

    /** Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x^2 + 1. */
    private static function gfMultiply(int $x, int $y): int
    {
        $z = 0;
        for ($i = 7; $i >= 0; $i--) {
            $z = (($z << 1) ^ (($z >> 7) * 0x11D)) & 0xFF;
            $z ^= (($y >> $i) & 1) * $x;
        }
        return $z;
    }

    // --- function patterns and placement ----------------------------------------------------------

    private function drawFunctionPatterns(): void
    {
        for ($i = 0; $i < $this->size; $i++) {
            $this->setFunction(6, $i, $i % 2 === 0);
            $this->setFunction($i, 6, $i % 2 === 0);
        }
        $this->drawFinder(3, 3);
        $this->drawFinder($this->size - 4, 3);
        $this->drawFinder(3, $this->size - 4);

        $positions = $this->alignmentPositions();
        $n = \count($positions);
        for ($i = 0; $i < $n; $i++) {
            for ($j = 0; $j < $n; $j++) {
                $corner = ($i === 0 && $j === 0) || ($i === 0 && $j === $n - 1) || ($i === $n - 1 && $j === 0);
                if (!$corner) {
                    $this->drawAlignment($positions[$i], $positions[$j]);
                }
            }
        }
        $this->drawFormatBits(0); // reserves the area; overwritten once the mask is chosen
        $this->drawVersion();
    }

    /** @return list<int> */
    private function alignmentPositions(): array
    {
        if ($this->version === 1) {
            return [];
        }
        $numAlign = intdiv($this->version, 7) + 2;
        $step = $this->version === 32 ? 26 : (int) ceil(($this->version * 4 + 4) / ($numAlign * 2 - 2)) * 2;
        $result = [];
        for ($i = 0, $pos = $this->size - 7; $i < $numAlign - 1; $i++, $pos -= $step) {
            array_unshift($result, $pos);
        }
        array_unshift($result, 6);
        return $result;
    }

    private function drawFinder(int $x, int $y): void
    {
        for ($dy = -4; $dy <= 4; $dy++) {
            for ($dx = -4; $dx <= 4; $dx++) {
                $distance = max(abs($dx), abs($dy));
                $xx = $x + $dx;
                $yy = $y + $dy;
                if ($xx >= 0 && $xx < $this->size && $yy >= 0 && $yy < $this->size) {
                    $this->setFunction($xx, $yy, $distance !== 2 && $distance !== 4);
                }
            }
        }
    }

    private function drawAlignment(int $x, int $y): void
    {
        for ($dy = -2; $dy <= 2; $dy++) {
            for ($dx = -2; $dx <= 2; $dx++) {
                $this->setFunction($x + $dx, $y + $dy, max(abs($dx), abs($dy)) !== 1);
            }
        }
    }

    private function drawFormatBits(int $mask): void
    {
        $data = self::FORMAT_BITS[$this->level] << 3 | $mask;
        $rem = $data;
        for ($i = 0; $i < 10; $i++) {
            $rem = ($rem << 1) ^ (($rem >> 9) * 0x537);
        }
        $bits = ($data << 10 | $rem) ^ 0x5412;
        $bit = static fn (int $i): bool => (($bits >> $i) & 1) !== 0;

        for ($i = 0; $i <= 5; $i++) {
            $this->setFunction(8, $i, $bit($i));
        }
        $this->setFunction(8, 7, $bit(6));
        $this->setFunction(8, 8, $bit(7));
        $this->setFunction(7, 8, $bit(8));
        for ($i = 9; $i < 15; $i++) {
            $this->setFunction(14 - $i, 8, $bit($i));
        }
        for ($i = 0; $i < 8; $i++) {
            $this->setFunction($this->size - 1 - $i, 8, $bit($i));
        }
        for ($i = 8; $i < 15; $i++) {
            $this->setFunction(8, $this->size - 15 + $i, $bit($i));
        }
        $this->setFunction(8, $this->size - 8, true); // the dark module
    }

    private function drawVersion(): void
    {
        if ($this->version < 7) {
            return;
        }
        $rem = $this->version;
        for ($i = 0; $i < 12; $i++) {
            $rem = ($rem << 1) ^ (($rem >> 11) * 0x1F25);
        }
        $bits = $this->version << 12 | $rem;
        for ($i = 0; $i < 18; $i++) {
            $dark = (($bits >> $i) & 1) !== 0;
            $a = $this->size - 11 + $i % 3;
            $b = intdiv($i, 3);
            $this->setFunction($a, $b, $dark);
            $this->setFunction($b, $a, $dark);
        }
    }

    private function setFunction(int $x, int $y, bool $dark): void
    {
        $this->modules[$y][$x] = $dark;
        $this->isFunction[$y][$x] = true;
    }

    /** @param list<int> $codewords */
    private function drawCodewords(array $codewords): void
    {
        $total = \count($codewords) * 8;
        $i = 0;
        for ($right = $this->size - 1; $right >= 1; $right -= 2) {
            if ($right === 6) {
                $right = 5; // skip the vertical timing pattern
            }
            for ($vert = 0; $vert < $this->size; $vert++) {
                for ($j = 0; $j < 2; $j++) {
                    $x = $right - $j;
                    $upward = (($right + 1) & 2) === 0;
                    $y = $upward ? $this->size - 1 - $vert : $vert;
                    if (!$this->isFunction[$y][$x] && $i < $total) {
                        $this->modules[$y][$x] = (($codewords[$i >> 3] >> (7 - ($i & 7))) & 1) !== 0;
                        $i++;
                    }
                }
            }
        }
    }

    private function applyMask(int $mask): void
    {
        for ($y = 0; $y < $this->size; $y++) {
            for ($x = 0; $x < $this->size; $x++) {
                $invert = match ($mask) {
                    0 => ($x + $y) % 2 === 0,
                    1 => $y % 2 === 0,
                    2 => $x % 3 === 0,
                    3 => ($x + $y) % 3 === 0,
                    4 => (intdiv($x, 3) + intdiv($y, 2)) % 2 === 0,
                    5 => $x * $y % 2 + $x * $y % 3 === 0,
                    6 => ($x * $y % 2 + $x * $y % 3) % 2 === 0,
                    7 => (($x + $y) % 2 + $x * $y % 3) % 2 === 0,
                };
                if ($invert && !$this->isFunction[$y][$x]) {
                    $this->modules[$y][$x] = !$this->modules[$y][$x];
                }
            }
        }
    }

    // --- mask penalty -----------------------------------------------------------------------------

    private function penalty(): int
    {
        $result = 0;
        $size = $this->size;
        $columns = [];
        for ($x = 0; $x < $size; $x++) {
            $columns[] = array_column($this->modules, $x);
        }
        foreach ([$this->modules, $columns] as $lines) {
            foreach ($lines as $line) {
                $runColor = false;
                $run = 0;
                $history = [0, 0, 0, 0, 0, 0, 0];
                foreach ($line as $dark) {
                    if ($dark === $runColor) {
                        $run++;
                        if ($run === 5) {
                            $result += 3;
                        } elseif ($run > 5) {
                            $result++;
                        }
                    } else {
                        $this->addHistory($run, $history);
                        if (!$runColor) {
                            $result += $this->finderLike($history) * 40;
                        }
                        $runColor = $dark;
                        $run = 1;
                    }
                }
                if ($runColor) {
                    $this->addHistory($run, $history);
                    $run = 0;
                }
                $this->addHistory($run + $size, $history);
                $result += $this->finderLike($history) * 40;
            }
        }
        $dark = 0;
        for ($y = 0; $y < $size; $y++) {
            for ($x = 0; $x < $size; $x++) {
                $color = $this->modules[$y][$x];
                $dark += $color ? 1 : 0;
                if ($x < $size - 1 && $y < $size - 1
                    && $color === $this->modules[$y][$x + 1]
                    && $color === $this->modules[$y + 1][$x]
                    && $color === $this->modules[$y + 1][$x + 1]) {
                    $result += 3;
                }
            }
        }
        $total = $size * $size;
        $k = (int) ceil(abs($dark * 20 - $total * 10) / $total) - 1;
        return $result + $k * 10;
    }

    /** @param list<int> $history */
    private function addHistory(int $run, array &$history): void
    {
        if ($history[0] === 0) {
            $run += $this->size; // the light border before the first run
        }
        array_pop($history);
        array_unshift($history, $run);
    }

    /** @param list<int> $history */
    private function finderLike(array $history): int
    {
        $n = $history[1];
        $core = $n > 0 && $history[2] === $n && $history[3] === $n * 3 && $history[4] === $n && $history[5] === $n;
        return ($core && $history[0] >= $n * 4 && $history[6] >= $n ? 1 : 0)
            + ($core && $history[6] >= $n * 4 && $history[0] >= $n ? 1 : 0);
    }
}
