<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

/**
 * stubs/qrpush.stub.php is the API reference IDEs and static analysers read: it must describe the
 * live extension exactly. The stub is parsed with PHP's tokenizer (never loaded: its classes would
 * clash with the extension's) into the same shape as a description built from Reflection, and the
 * two are compared both ways — nothing missing, nothing extra — class by class, counting only
 * members a class declares itself.
 */
final class StubTest extends TestCase
{
    private const STUB = __DIR__ . '/../../stubs/qrpush.stub.php';

    /** @var array<string, array<string, mixed>>|null */
    private static ?array $stub = null;

    /** @return array<string, array<string, mixed>> class name => description */
    private static function stub(): array
    {
        return self::$stub ??= StubParser::parse((string) file_get_contents(self::STUB));
    }

    public function testStubParses(): void
    {
        // Guards the parser itself: a parser that finds nothing would make every comparison vacuous.
        $stub = self::stub();
        foreach (['QrPush', 'QrPush\Client', 'QrPush\Exception', 'QrPush\ConnectionException', 'QrPush\TimeoutException', 'QrPush\ServerException'] as $class) {
            self::assertArrayHasKey($class, $stub);
        }
        self::assertSame('final class QrPush', $stub['QrPush']['declaration']);
        self::assertSame('static public function publish(string $channel, mixed $message): int', $stub['QrPush']['methods']['publish']);
        self::assertSame('static public function publishMany(array $messages): array', $stub['QrPush']['methods']['publishMany']);
        self::assertSame(
            'public function __construct(?string $url = NULL, ?array $options = NULL)',
            $stub['QrPush\Client']['methods']['__construct'],
        );
        self::assertStringStartsWith("public const VERSION = '", $stub['QrPush']['constants']['VERSION']);
        self::assertSame('RuntimeException', $stub['QrPush\Exception']['parent']);
        self::assertSame('QrPush\Exception', $stub['QrPush\ServerException']['parent']);
        self::assertSame([], $stub['QrPush\ServerException']['methods']);
    }

    /**
     * The parser and the reflection side must agree on classes that really are what their source
     * says: a synthetic stub using every construct the parser knows is parsed, then evaluated as
     * real classes (in a namespace of its own), and both descriptions are compared.
     */
    public function testParserAgreesWithReflectionOnASyntheticStub(): void
    {
        $source = <<<'PHP'
            <?php
            namespace QrPush\Tests\StubFixture;

            /** A doc comment. */
            interface Shape extends \Countable
            {
                public const SIDES = 0;
                public function area(float $scale = 1.0): float;
            }

            enum Status: string implements \JsonSerializable
            {
                case Pending = 'pending';
                case Done = 'do' . 'ne';
                public const DEFAULT = self::Pending;
                public function jsonSerialize(): mixed { return 1; }
                public static function parse(?string $s = null): ?self { return null; }
            }

            enum Flag
            {
                case On;
                case Off;
            }

            abstract class Base implements Shape
            {
                protected int $count = 0;
                public static ?string $label = null;
                abstract protected function name(): string;
                public function count(): int { return 0; }
                public function area(float $scale = 1.0): float { return 0.0; }
            }

            final class Square extends Base
            {
                public const int|string ANY = 'x';
                final public const MASK = 1 << 3 | 0x1, OTHER = [1, 'k' => [true, null]];
                public readonly string $id;
                public function __construct(#[\SensitiveParameter] string $id, private readonly array $opts = ['a' => [1, 2]], int ...$rest) {}
                protected function name(): string { return ''; }
                public function &ref(array &$a, int $flags = \PHP_INT_MAX, string $s = self::ANY . 'y', ?Status $st = Status::Done, int|float|null $n = -1.5): static|null { return $this; }
                private static function helper(\Closure|string $f = 'strlen'): void {}
            }

            class Failure extends \RuntimeException
            {
            }
            PHP;
        // Constant expressions naming classes (Status::Done) are evaluated, so the classes must exist.
        eval(substr($source, \strlen('<?php')));
        $parsed = StubParser::parse($source);
        $names = array_keys($parsed);
        sort($names);
        self::assertSame(
            ['QrPush\Tests\StubFixture\Base', 'QrPush\Tests\StubFixture\Failure', 'QrPush\Tests\StubFixture\Flag', 'QrPush\Tests\StubFixture\Shape', 'QrPush\Tests\StubFixture\Square', 'QrPush\Tests\StubFixture\Status'],
            $names,
        );
        foreach ($parsed as $class => $description) {
            self::assertSame(self::render($description), self::render(StubParser::describe(new \ReflectionClass($class))), $class);
        }
        self::assertSame('final class QrPush\Tests\StubFixture\Square', $parsed['QrPush\Tests\StubFixture\Square']['declaration']);
        self::assertSame(
            "public function &ref(array &\$a, int \$flags = 9223372036854775807, string \$s = 'xy', ?QrPush\\Tests\\StubFixture\\Status \$st = \\QrPush\\Tests\\StubFixture\\Status::Done, float|int|null \$n = -1.5): ?static",
            $parsed['QrPush\Tests\StubFixture\Square']['methods']['ref'],
        );
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
    public static function stubClasses(): iterable
    {
        foreach (array_keys(StubParser::parse((string) file_get_contents(self::STUB))) as $class) {
            yield $class => [$class];
        }
    }

    #[DataProvider('stubClasses')]
    public function testClassMatchesTheStub(string $class): void
    {
        self::assertTrue(class_exists($class), "{$class} is in the stub but not in the extension");
        $expected = self::stub()[$class];
        $actual = StubParser::describe(new \ReflectionClass($class));
        // One assertion on the whole description: the diff shows every difference at once.
        self::assertSame(
            self::render($expected),
            self::render($actual),
            "{$class}: stub (expected) vs reflection of the loaded extension (actual)",
        );
    }

    /** @param array<string, mixed> $description */
    private static function render(array $description): string
    {
        $lines = [$description['declaration']];
        $lines[] = '  parent: ' . ($description['parent'] ?? '-');
        $lines[] = '  interfaces: ' . implode(', ', $description['interfaces']);
        foreach ($description['constants'] as $constant) {
            $lines[] = "  {$constant}";
        }
        foreach ($description['properties'] as $property) {
            $lines[] = "  {$property}";
        }
        foreach ($description['methods'] as $method) {
            $lines[] = "  {$method}";
        }
        return implode("\n", $lines) . "\n";
    }
}
