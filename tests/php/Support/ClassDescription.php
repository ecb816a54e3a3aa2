<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * A class as Reflection sees it, as normalised strings, so that two PHP processes can compare
 * classes: StubTest describes the extension's classes here and the stub's in a `php -n` child
 * (which requires this file without the test suite around it).
 *  - declaration: "final class QrPush\Client" (or interface/enum/trait);
 *  - parent and the interfaces a class adds itself;
 *  - constants: "public const VERSION = '0.1.0'", enum cases: "case Pending = 'pending'";
 *  - properties: "public readonly string $id";
 *  - methods: "static public function publish(string $channel, mixed $message): int".
 * Values (constants, defaults) are var_export'ed, union types sorted; members are sorted by name.
 * Only members a class declares itself are described.
 */
final class ClassDescription
{
    /** @return array{declaration: string, parent: ?string, interfaces: list<string>, constants: array<string, string>, properties: array<string, string>, methods: array<string, string>} */
    public static function describe(\ReflectionClass $class): array
    {
        $name = $class->getName();
        $modifiers = [];
        $class->isFinal() && !$class->isEnum() && $modifiers[] = 'final';
        $class->isAbstract() && !$class->isInterface() && $modifiers[] = 'abstract';
        $class->isReadOnly() && $modifiers[] = 'readonly';
        $kind = $class->isInterface() ? 'interface' : ($class->isEnum() ? 'enum' : ($class->isTrait() ? 'trait' : 'class'));
        $declaration = trim(implode(' ', $modifiers) . " {$kind} {$name}");
        if ($class->isEnum() && ($backing = (new \ReflectionEnum($name))->getBackingType()) !== null) {
            $declaration .= ': ' . $backing;
        }

        $parent = $class->getParentClass();
        // Interfaces the class adds itself: not from its parent, not implied by another one, and
        // not the ones PHP adds on its own (Stringable for __toString, UnitEnum/BackedEnum).
        $own = array_diff($class->getInterfaceNames(), $parent ? $parent->getInterfaceNames() : []);
        foreach ($own as $interface) {
            $own = array_diff($own, (new \ReflectionClass($interface))->getInterfaceNames());
        }
        $interfaces = array_values(array_diff($own, ['Stringable', 'UnitEnum', 'BackedEnum']));
        sort($interfaces);

        $constants = [];
        foreach ($class->getReflectionConstants() as $constant) {
            if ($constant->getDeclaringClass()->getName() !== $name) {
                continue;
            }
            if ($constant->isEnumCase()) {
                $value = (new \ReflectionEnum($name))->isBacked()
                    ? ' = ' . var_export((new \ReflectionEnumBackedCase($name, $constant->getName()))->getBackingValue(), true)
                    : '';
                $constants[$constant->getName()] = "case {$constant->getName()}{$value}";
                continue;
            }
            $mods = [];
            $constant->isFinal() && $mods[] = 'final';
            $mods[] = self::visibility($constant);
            // Typed class constants (and ReflectionClassConstant::hasType()) exist since PHP 8.3.
            $type = PHP_VERSION_ID >= 80300 && $constant->hasType() ? self::type($constant->getType()) . ' ' : '';
            $constants[$constant->getName()] = implode(' ', $mods) . " const {$type}{$constant->getName()} = " . var_export($constant->getValue(), true);
        }

        $properties = [];
        foreach ($class->getProperties() as $property) {
            if ($property->class !== $name || ($class->isEnum() && \in_array($property->getName(), ['name', 'value'], true))) {
                continue;
            }
            $mods = [];
            $property->isStatic() && $mods[] = 'static';
            $mods[] = self::visibility($property);
            $property->isReadOnly() && !$class->isReadOnly() && $mods[] = 'readonly';
            $type = $property->hasType() ? self::type($property->getType()) . ' ' : '';
            $properties[$property->getName()] = implode(' ', $mods) . " {$type}\${$property->getName()}";
        }

        $methods = [];
        foreach ($class->getMethods() as $method) {
            if ($method->class !== $name || ($class->isEnum() && \in_array($method->getName(), ['cases', 'from', 'tryFrom'], true))) {
                continue;
            }
            $mods = [];
            $method->isFinal() && !$class->isFinal() && $mods[] = 'final';
            $method->isAbstract() && !$class->isInterface() && $mods[] = 'abstract';
            $method->isStatic() && $mods[] = 'static';
            $mods[] = self::visibility($method);
            $params = [];
            foreach ($method->getParameters() as $p) {
                $param = $p->hasType() ? self::type($p->getType()) . ' ' : '';
                $param .= ($p->isPassedByReference() ? '&' : '') . ($p->isVariadic() ? '...' : '') . '$' . $p->getName();
                if ($p->isOptional() && !$p->isVariadic()) {
                    $param .= ' = ' . ($p->isDefaultValueAvailable() ? var_export($p->getDefaultValue(), true) : '<optional without a default>');
                }
                $params[] = $param;
            }
            $returnType = $method->hasReturnType() ? $method->getReturnType()
                : ($method->hasTentativeReturnType() ? $method->getTentativeReturnType() : null);
            $methods[$method->getName()] = implode(' ', $mods) . ' function ' . ($method->returnsReference() ? '&' : '')
                . $method->getName() . '(' . implode(', ', $params) . ')'
                . ($returnType === null ? '' : ': ' . self::type($returnType));
        }

        ksort($constants);
        ksort($properties);
        ksort($methods);
        return [
            'declaration' => $declaration,
            'parent' => $parent ? $parent->getName() : null,
            'interfaces' => $interfaces,
            'constants' => $constants,
            'properties' => $properties,
            'methods' => $methods,
        ];
    }

    /** A description as lines, for a readable diff. */
    public static function render(array $description): string
    {
        $lines = [$description['declaration']];
        $lines[] = '  parent: ' . ($description['parent'] ?? '-');
        $lines[] = '  interfaces: ' . implode(', ', $description['interfaces']);
        foreach (['constants', 'properties', 'methods'] as $members) {
            foreach ($description[$members] as $member) {
                $lines[] = "  {$member}";
            }
        }
        return implode("\n", $lines) . "\n";
    }

    /** A type as Reflection prints it, with the members of a union sorted (their order is free). */
    private static function type(\ReflectionType $type): string
    {
        if (!$type instanceof \ReflectionUnionType) {
            return (string) $type;
        }
        $members = array_map(static fn (\ReflectionType $t): string => (string) $t, $type->getTypes());
        sort($members);
        return implode('|', $members);
    }

    private static function visibility(\ReflectionClassConstant|\ReflectionProperty|\ReflectionMethod $member): string
    {
        return $member->isPrivate() ? 'private' : ($member->isProtected() ? 'protected' : 'public');
    }
}
