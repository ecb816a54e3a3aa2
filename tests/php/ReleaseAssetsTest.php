<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;
use PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily;

/**
 * The release assets are only useful if PIE finds them: PIE builds the exact file names it looks
 * for in a GitHub release from the package version (the git tag, "v" included), the target PHP
 * and platform, lower-cases them, and compares. This checks, without a release or Packagist:
 *
 * - scripts/release-assets (the one place the names are spelled) produces, for PHP 8.4 ts/nts on
 *   Windows and nts/zts on Linux, names that are among the candidates PIE computes — the
 *   candidates are rebuilt here the way php/pie's WindowsExtensionAssetName and
 *   PrePackagedBinaryAssetName build them (PIE 1.4);
 * - the workflows (plain-text checks of their YAML) run on v* tags, build the flavours named,
 *   pack through scripts/release-assets and upload what it packs;
 * - composer.json's php-ext section says what PIE needs, with values PIE accepts;
 * - a packed Linux archive holds exactly qrpush.so, which is what PIE installs.
 */
final class ReleaseAssetsTest extends TestCase
{
    private const ROOT = __DIR__ . '/../..';
    private const SCRIPT = self::ROOT . '/scripts/release-assets';

    /** The PIE Windows pattern for this extension, PHP 8.4, vs17, x64 (tag kept with its "v"). */
    private const WINDOWS_ZIP = '/^php_qrpush-v[0-9][0-9a-z.+-]*-8\.4-(ts|nts)-vs17-x86_64\.zip$/';
    /** PIE's pre-packaged-binary pattern for Linux x86_64 glibc, PHP 8.4, non-debug. */
    private const LINUX_TGZ = '/^php_qrpush-v[0-9][0-9a-z.+-]*_php8\.4-x86_64-linux-glibc-(nts|zts)\.tgz$/';

    /** @return iterable<string, array{string}> */
    public static function tags(): iterable
    {
        yield 'release' => ['v1.2.3'];
        yield 'pre-release' => ['v0.2.0-rc.1'];
        yield 'upper-case pre-release (PIE lower-cases)' => ['v1.0.0-RC1'];
    }

    #[DataProvider('tags')]
    #[RequiresOperatingSystemFamily('Linux')]
    public function testWindowsZipNamesAreAmongPiesCandidates(string $tag): void
    {
        foreach (['ts', 'nts'] as $ts) {
            $name = $this->script('name', 'windows', $tag, '8.4', $ts, 'vs17', 'x86_64') . '.zip';
            $candidates = self::pieWindowsCandidates($tag, '8.4', $ts, 'vs17', 'x86_64', 'zip');
            self::assertSame($candidates[0], $name, "PIE's preferred name for PHP 8.4 {$ts}");
            self::assertMatchesRegularExpression(self::WINDOWS_ZIP, $name);
            self::assertStringContainsString('-8.4-' . $ts . '-vs17-', $name);
            // PIE looks for the DLL inside the zip by the same name.
            $dll = substr($name, 0, -4) . '.dll';
            self::assertSame(self::pieWindowsCandidates($tag, '8.4', $ts, 'vs17', 'x86_64', 'dll')[0], $dll);
        }
    }

    #[DataProvider('tags')]
    #[RequiresOperatingSystemFamily('Linux')]
    public function testLinuxArchiveNamesAreAmongPiesCandidates(string $tag): void
    {
        foreach (['nts', 'zts'] as $ts) {
            $name = $this->script('name', 'linux', $tag, '8.4', $ts) . '.tgz';
            $candidates = self::pieLinuxCandidates($tag, '8.4', 'x86_64', 'glibc', $ts === 'zts');
            self::assertContains($name, $candidates, "PIE's pre-packaged-binary names for PHP 8.4 {$ts}");
            self::assertMatchesRegularExpression(self::LINUX_TGZ, $name);
        }
    }

    #[RequiresOperatingSystemFamily('Linux')]
    public function testNamesRefuseWhatPieWouldNeverAskFor(): void
    {
        foreach ([
            ['name', 'windows', 'feature/branch', '8.4', 'ts', 'vs17', 'x86_64'],
            ['name', 'windows', 'v1.0.0', '8.4.1', 'ts', 'vs17', 'x86_64'],
            ['name', 'windows', 'v1.0.0', '8.4', 'zts', 'vs17', 'x86_64'],
            ['name', 'windows', 'v1.0.0', '8.4', 'ts', 'vs17', 'x64'],
            ['name', 'linux', 'v1.0.0', '8.4', 'ts'],
        ] as $args) {
            [$code, , $err] = self::command(['bash', self::SCRIPT, ...$args]);
            self::assertNotSame(0, $code, 'accepted: ' . implode(' ', $args));
            self::assertStringContainsString('release-assets:', $err);
        }
    }

    #[RequiresOperatingSystemFamily('Linux')]
    public function testReleaseTagMustBeTheCrateVersion(): void
    {
        $manifest = self::read('Cargo.toml');
        self::assertSame(1, preg_match('/^\[workspace\.package\][^\[]*?^version = "([^"]+)"/ms', $manifest, $m));
        self::assertStringContainsString("matches Cargo.toml version {$m[1]}", $this->script('check-tag', "v{$m[1]}"));
        foreach (["{$m[1]}", "v{$m[1]}.1", 'v999.0.0'] as $wrong) {
            [$code] = self::command(['bash', self::SCRIPT, 'check-tag', $wrong]);
            self::assertNotSame(0, $code, "check-tag accepted {$wrong}");
        }
    }

    /**
     * Packs the extension under test for the PHP running this test, as the CI release step does,
     * and checks the archive is named for this PHP and holds exactly qrpush.so.
     */
    #[RequiresOperatingSystemFamily('Linux')]
    public function testPackedLinuxArchiveHoldsExactlyTheModule(): void
    {
        $module = (string) getenv('QRPUSH_EXT');
        self::assertFileExists($module);
        $out = Processes::tempDir('assets');
        try {
            $archive = $this->script('package', 'v9.8.7', PHP_BINARY, $module, $out);
            $expected = sprintf(
                'php_qrpush-v9.8.7_php%d.%d-x86_64-linux-glibc-%s.tgz',
                PHP_MAJOR_VERSION,
                PHP_MINOR_VERSION,
                PHP_ZTS ? 'zts' : 'nts',
            );
            self::assertSame("{$out}/{$expected}", $archive);
            [$code, $list] = self::command(['tar', '-tzf', $archive]);
            self::assertSame(0, $code);
            self::assertSame(['qrpush.so'], array_values(array_filter(explode("\n", $list))));
        } finally {
            Processes::removeDir($out);
        }
    }

    public function testWindowsWorkflowBuildsAndUploadsPieZips(): void
    {
        $yaml = self::read('.github/workflows/windows.yml');
        self::assertTriggersOnVersionTags($yaml);
        self::assertMatchesRegularExpression('/^\s+ts: \[ts, nts\]$/m', $yaml, 'matrix of both flavours');
        self::assertMatchesRegularExpression("/php-version: '8\\.4'/", $yaml);
        self::assertMatchesRegularExpression('/phpts: \$\{\{ matrix\.ts \}\}/', $yaml, 'setup-php gets the flavour');
        self::assertMatchesRegularExpression('/dtolnay\/rust-toolchain@master/', $yaml, 'nightly Rust (abi_vectorcall)');
        // Pinned by date: the nightly scripts/windows-check builds the DLL with (scripts/extra-tools.sh).
        self::assertSame(1, preg_match('/^\s+toolchain: (nightly-\d{4}-\d{2}-\d{2})$/m', $yaml, $pinned), 'a dated nightly');
        self::assertMatchesRegularExpression('/^NIGHTLY=' . $pinned[1] . '$/m', self::read('scripts/extra-tools.sh'));
        self::assertMatchesRegularExpression('/API\[0-9\]\+,.*VS17/', $yaml, 'the job checks PHP is a vs17 build, as the name says');
        self::assertMatchesRegularExpression('/cargo build --locked --release -p qrpush/', $yaml);
        self::assertMatchesRegularExpression('/php -n -d "extension=\$env:QRPUSH_DLL" --ri qrpush/', $yaml);
        self::assertMatchesRegularExpression(
            '/bash scripts\/release-assets package "\$tag" php target\/release\/qrpush\.dll build-artifacts/',
            $yaml,
        );
        self::assertMatchesRegularExpression('/path: build-artifacts\/\*\.zip/', $yaml);
        self::assertMatchesRegularExpression('/gh release upload "\$TAG" assets\/\*\.zip/', $yaml);
        self::assertMatchesRegularExpression('/tag=\$GITHUB_REF_NAME/', $yaml, 'release names use the tag as pushed');
    }

    public function testLinuxWorkflowRunsTheCiChecksAndUploadsPieArchives(): void
    {
        $yaml = self::read('.github/workflows/ci.yml');
        $ci = self::read('.ci/run');
        self::assertMatchesRegularExpression('/^make test$/m', $ci, '.ci/run is `make test`');
        self::assertTriggersOnVersionTags($yaml);
        self::assertMatchesRegularExpression('/bash \.ci\/run$/m', $yaml, 'the same checks as .ci/run');
        // The PIE source-build path runs once, inside `make test` (scripts/test), not again here.
        self::assertMatchesRegularExpression('/bash scripts\/phpize-build all /m', self::read('scripts/test'), 'the PIE source-build path');
        self::assertStringNotContainsString('scripts/phpize-build', $yaml, 'make test already runs the phpize build');
        foreach (['/usr/bin/php8.4 target/nts', '/opt/php-zts/bin/php target/zts'] as $built) {
            self::assertStringContainsString(
                "bash scripts/release-assets package \$tag {$built}/release/libqrpush.so build-artifacts",
                $yaml,
            );
        }
        self::assertMatchesRegularExpression('/path: build-artifacts\/\*\.tgz/', $yaml);
        self::assertMatchesRegularExpression('/gh release upload "\$TAG" assets\/\*\.tgz/', $yaml);
        self::assertMatchesRegularExpression("/php: \\['8\\.1', '8\\.2', '8\\.3', '8\\.5'\\]/", $yaml);
        self::assertMatchesRegularExpression('/QRPUSH_NATIVE: \'1\'/', $yaml);
    }

    public function testComposerPhpExtSectionIsWhatPieNeeds(): void
    {
        $composer = json_decode(self::read('composer.json'), true, 512, JSON_THROW_ON_ERROR);
        self::assertSame('php-ext', $composer['type']);
        self::assertMatchesRegularExpression('/^[a-z0-9]([_.-]?[a-z0-9]+)*\/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*$/', $composer['name']);
        $ext = $composer['php-ext'];
        // PIE's ExtensionName::VALID_PACKAGE_NAME_REGEX, and the name the extension registers.
        self::assertMatchesRegularExpression('/^[A-Za-z][a-zA-Z0-9_]+$/', $ext['extension-name']);
        self::assertSame('qrpush', $ext['extension-name']);
        self::assertTrue(\extension_loaded($ext['extension-name']));
        self::assertTrue($ext['support-zts']);
        self::assertTrue($ext['support-nts']);
        self::assertSame(
            ['pre-packaged-binary', 'composer-default'],
            $ext['download-url-method'],
            'prebuilt binaries first, the source build (config.m4) when none fits',
        );
        foreach ((array) $ext['download-url-method'] as $method) {
            self::assertContains($method, ['composer-default', 'pre-packaged-source', 'pre-packaged-binary']);
        }
        self::assertFalse(isset($ext['os-families'], $ext['os-families-exclude']), 'PIE allows only one of them');
        self::assertContains('windows', $ext['os-families']);
        self::assertContains('linux', $ext['os-families']);
        foreach ($ext['os-families'] as $family) {
            self::assertContains($family, ['windows', 'bsd', 'darwin', 'solaris', 'linux', 'unknown']);
        }
        self::assertIsList($ext['configure-options'] ?? []);
        $buildPath = $ext['build-path'] ?? '.';
        self::assertFileExists(self::ROOT . "/{$buildPath}/config.m4", 'PIE runs phpize where build-path points');
        self::assertFileExists(self::ROOT . "/{$buildPath}/config.w32");
    }

    private static function assertTriggersOnVersionTags(string $yaml): void
    {
        self::assertStringContainsString('bash scripts/release-assets check-tag "$GITHUB_REF_NAME"', $yaml);
        self::assertMatchesRegularExpression("/^\s+tags: \['v\*'\]$/m", $yaml, 'runs on v* tags');
        self::assertMatchesRegularExpression("/if: startsWith\(github\.ref, 'refs\/tags\/v'\)/", $yaml, 'uploads only for tags');
        self::assertMatchesRegularExpression('/contents: write/', $yaml, 'the release job may write the release');
    }

    /**
     * php/pie WindowsExtensionAssetName::assetNames(): both orders it accepts, lower-cased.
     *
     * @return list<string>
     */
    private static function pieWindowsCandidates(string $version, string $php, string $ts, string $compiler, string $arch, string $ext): array
    {
        return [
            strtolower(sprintf('php_%s-%s-%s-%s-%s-%s.%s', 'qrpush', $version, $php, $ts, $compiler, $arch, $ext)),
            strtolower(sprintf('php_%s-%s-%s-%s-%s-%s.%s', 'qrpush', $version, $php, $compiler, $ts, $arch, $ext)),
        ];
    }

    /**
     * php/pie PrePackagedBinaryAssetName::packageNames() for a non-debug PHP: the thread-safety
     * suffix omitted for NTS or spelled out, zip or tgz.
     *
     * @return list<string>
     */
    private static function pieLinuxCandidates(string $version, string $php, string $arch, string $libc, bool $zts): array
    {
        $names = [];
        foreach ([$zts ? '-zts' : '', $zts ? '-zts' : '-nts'] as $suffix) {
            foreach (['zip', 'tgz'] as $format) {
                $names[] = strtolower(sprintf('php_%s-%s_php%s-%s-%s-%s%s%s.%s', 'qrpush', $version, $php, $arch, 'linux', $libc, '', $suffix, $format));
            }
        }
        return array_values(array_unique($names));
    }

    private function script(string ...$args): string
    {
        // The glibc floor of release binaries is CI's concern, not this test's (it may run on a
        // newer distribution than releases are built on).
        [$code, $out, $err] = self::command(['bash', self::SCRIPT, ...$args], ['QRPUSH_MAX_GLIBC' => '99']);
        self::assertSame(0, $code, 'scripts/release-assets ' . implode(' ', $args) . " failed:\n{$err}");
        return trim($out);
    }

    /**
     * @param list<string> $command
     * @param array<string, string> $env added to this process's environment
     * @return array{int, string, string} exit code, stdout, stderr
     */
    private static function command(array $command, array $env = []): array
    {
        $proc = proc_open(
            $command,
            [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes,
            null,
            $env === [] ? null : $env + getenv(),
        );
        self::assertIsResource($proc, 'cannot run ' . implode(' ', $command));
        $out = (string) stream_get_contents($pipes[1]);
        $err = (string) stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        return [proc_close($proc), $out, $err];
    }

    private static function read(string $path): string
    {
        $file = self::ROOT . '/' . $path;
        self::assertFileExists($file);
        return (string) file_get_contents($file);
    }
}
