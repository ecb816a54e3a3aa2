<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

require_once __DIR__ . '/Support/ClassDescription.php';

/**
 * stubs/qrpush.stub.php is the API reference IDEs and static analysers read: it must be valid PHP
 * and describe the live extension exactly. The stub is loaded by `require` into a PHP without the
 * extension (`php -n`: next to the extension its classes would clash), and the reflection of its
 * classes there is compared with the reflection of the extension's classes here, both ways —
 * nothing missing, nothing extra — class by class, counting only members a class declares itself.
 * No parser of our own: PHP reads the stub.
 */
final class StubTest extends TestCase
{
    private const STUB = __DIR__ . '/../../stubs/qrpush.stub.php';

    /**
     * The child's program: loads the description code, then the stub, and prints what the stub
     * declared (described), whether each class and method has a doc comment, and whether the
     * extension was loaded (it must not be).
     */
    private const DESCRIBE_STUB = <<<'PHP'
        require $argv[1];
        $before = get_declared_classes();
        require $argv[2];
        $classes = [];
        $undocumented = [];
        foreach (array_diff(get_declared_classes(), $before) as $name) {
            $class = new ReflectionClass($name);
            $classes[$name] = QrPush\Tests\ClassDescription::describe($class);
            $class->getDocComment() === false && $undocumented[] = $name;
            foreach ($class->getMethods() as $method) {
                $method->class === $name && $method->getDocComment() === false && $undocumented[] = "{$name}::{$method->name}()";
            }
        }
        echo json_encode(['extension_loaded' => extension_loaded('qrpush'), 'classes' => $classes, 'undocumented' => $undocumented], JSON_THROW_ON_ERROR);
        PHP;

    /** @var array{extension_loaded: bool, classes: array<string, array<string, mixed>>, undocumented: list<string>}|null */
    private static ?array $loaded = null;

    /** What the stub declares, as PHP without the extension sees it (one child per test run). */
    private static function loadedStub(): array
    {
        if (self::$loaded === null) {
            $result = PhpProcess::exec([
                PhpProcess::binary(), '-n', '-d', 'display_errors=stderr',
                '-r', self::DESCRIBE_STUB, '--', __DIR__ . '/Support/ClassDescription.php', self::STUB,
            ]);
            self::assertSame(0, $result->exitCode, $result->describe());
            self::assertSame('', $result->stderr, $result->describe());
            self::$loaded = json_decode($result->stdout, true, 512, JSON_THROW_ON_ERROR);
        }
        return self::$loaded;
    }

    /** @return array<string, array<string, mixed>> class name => description */
    private static function stub(): array
    {
        return self::loadedStub()['classes'];
    }

    public function testStubIsValidPhp(): void
    {
        $result = PhpProcess::exec([PhpProcess::binary(), '-n', '-l', self::STUB]);
        self::assertSame(0, $result->exitCode, $result->describe());
        self::assertStringContainsString('No syntax errors detected', $result->stdout, $result->describe());
    }

    public function testStubIsLoadedWithoutTheExtension(): void
    {
        // Guards the comparison itself: a stub compared with the extension's own classes, or
        // one that declares nothing, would make every comparison vacuous.
        self::assertFalse(self::loadedStub()['extension_loaded'], 'the child that loads the stub must not load the extension');
        $stub = self::stub();
        foreach (['QrPush', 'QrPush\Client', 'QrPush\Login', 'QrPush\Exception', 'QrPush\ConnectionException', 'QrPush\TimeoutException', 'QrPush\ServerException', 'QrPush\LoginException'] as $class) {
            self::assertArrayHasKey($class, $stub);
        }
        self::assertSame('final class QrPush', $stub['QrPush']['declaration']);
        self::assertSame('static public function publish(string $channel, mixed $message): int', $stub['QrPush']['methods']['publish']);
        self::assertSame('static public function publishMany(array $messages): array', $stub['QrPush']['methods']['publishMany']);
        self::assertSame(
            'public function __construct(?string $url = NULL, ?array $options = NULL)',
            $stub['QrPush\Client']['methods']['__construct'],
        );
        self::assertSame(
            'static public function status(string $loginId, ?string $browserSecret = NULL): array',
            $stub['QrPush\Login']['methods']['status'],
        );
        self::assertStringStartsWith("public const VERSION = '", $stub['QrPush']['constants']['VERSION']);
        self::assertSame('public const NOT_FOUND = 101', $stub['QrPush\LoginException']['constants']['NOT_FOUND']);
        self::assertSame('RuntimeException', $stub['QrPush\Exception']['parent']);
        self::assertSame('QrPush\Exception', $stub['QrPush\ServerException']['parent']);
        self::assertSame('QrPush\LoginException', $stub['QrPush\LoginTicketUsedException']['parent']);
        self::assertSame([], $stub['QrPush\ServerException']['methods']);
    }

    public function testEveryClassAndMethodOfTheStubIsDocumented(): void
    {
        self::assertSame([], self::loadedStub()['undocumented'], 'the stub is the API reference: every class and method has a doc comment');
    }

    public function testExtensionHasExactlyTheStubsClasses(): void
    {
        $live = (new \ReflectionExtension('qrpush'))->getClassNames();
        $documented = array_keys(self::stub());
        sort($live);
        sort($documented);
        self::assertSame($documented, $live, 'classes of the stub (expected) vs ReflectionExtension(qrpush) (actual)');
    }

    /** @return iterable<string, array{string}> */
    public static function extensionClasses(): iterable
    {
        foreach ((new \ReflectionExtension('qrpush'))->getClassNames() as $class) {
            yield $class => [$class];
        }
    }

    #[DataProvider('extensionClasses')]
    public function testClassMatchesTheStub(string $class): void
    {
        self::assertArrayHasKey($class, self::stub(), "{$class} is in the extension but not in the stub");
        // One assertion on the whole description: the diff shows every difference at once.
        self::assertSame(
            ClassDescription::render(self::stub()[$class]),
            ClassDescription::render(ClassDescription::describe(new \ReflectionClass($class))),
            "{$class}: stub (expected) vs reflection of the loaded extension (actual)",
        );
    }
}
