<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;
use QrDemo\QrCode;

require_once __DIR__ . '/../../php/src/QrCode.php';

/**
 * The demo's QR encoder (php/src/QrCode.php) produces exactly the matrices of a reference
 * implementation (vectors in Support/LoginQrVectors.json): versions 1 to 32, all four levels, forced
 * and chosen masks. A code that differs in one module may still scan, or may not: so compare all.
 */
final class LoginQrTest extends TestCase
{
    /** @return iterable<string, array{array<string, mixed>}> */
    public static function vectors(): iterable
    {
        $data = json_decode((string) file_get_contents(__DIR__ . '/Support/LoginQrVectors.json'), true, 8, JSON_THROW_ON_ERROR);
        foreach ($data['vectors'] as $v) {
            $name = sprintf('v%d %s mask %s, %d bytes', $v['expect_version'], 'LMQH'[$v['level']], $v['mask'] ?? 'auto', \strlen(base64_decode($v['text_base64'])));
            yield $name => [$v];
        }
    }

    /** @param array<string, mixed> $v */
    #[DataProvider('vectors')]
    public function testMatchesTheReference(array $v): void
    {
        $qr = QrCode::encode(base64_decode($v['text_base64']), $v['level'], $v['version'], $v['mask']);
        self::assertSame([$v['expect_version'], $v['expect_mask']], [$qr->version, $qr->mask]);
        self::assertSame($v['sha256'], hash('sha256', $qr->text()));
    }

    public function testSvgDrawsEveryDarkModuleInsideTheQuietZone(): void
    {
        $qr = QrCode::encode('AAAAAAAAAAAAAAAAAAAAAA.' . str_repeat('B', 43));
        $svg = $qr->svg();
        $full = $qr->size + 8;
        self::assertStringStartsWith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' . $full . ' ' . $full . '"', $svg);
        self::assertSame(substr_count($qr->text(), '#'), substr_count($svg, 'h1v1h-1z'));
        self::assertStringContainsString('M4 4h1v1h-1z', $svg, 'the finder pattern starts after the 4-module quiet zone');
        self::assertTrue((new \DOMDocument())->loadXML($svg), 'the SVG is well-formed XML');
    }

    public function testTooMuchTextIsAValueError(): void
    {
        $this->expectException(\ValueError::class);
        QrCode::encode(str_repeat('x', 3000));
    }
}
