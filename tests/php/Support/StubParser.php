<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * Both sides of StubTest's comparison, as the same normalised strings:
 *  - declaration: "final class QrPush\Client" (or interface/enum/trait);
 *  - parent and the interfaces a class adds itself;
 *  - constants: "public const VERSION = '0.1.0'", enum cases: "case Pending = 'pending'";
 *  - properties: "public readonly string $id";
 *  - methods: "static public function publish(string $channel, mixed $message): int".
 * Values (constants, defaults) are var_export'ed, union types sorted, leading backslashes dropped;
 * members are sorted by name. Only members a class declares itself are described.
 *
 * parse() reads the stub with PHP's tokenizer and never loads it: its classes would clash with
 * the extension's. Only constant expressions (defaults, constant values) are evaluated.
 */
final class StubParser
{
    /** @var list<\PhpToken> */
    private array $tokens;
    private int $i = 0;
    /** @var array<string, string> properties promoted by the constructor being read */
    private array $promoted = [];

    private function __construct(string $source)
    {
        $this->tokens = [];
        $attribute = 0; // nesting inside #[...], whose contents are not compared
        foreach (\PhpToken::tokenize($source) as $t) {
            if ($t->is([T_WHITESPACE, T_COMMENT, T_DOC_COMMENT, T_OPEN_TAG, T_CLOSE_TAG])) {
                continue;
            }
            if ($t->is(T_ATTRIBUTE) || ($attribute > 0 && $t->text === '[')) {
                $attribute++;
                continue;
            }
            if ($attribute > 0) {
                $attribute -= $t->text === ']' ? 1 : 0;
                continue;
            }
            $this->tokens[] = $t;
        }
    }

    /** @return array<string, array<string, mixed>> class name => description */
    public static function parse(string $source): array
    {
        return (new self($source))->file();
    }

    /** @return array<string, mixed> the live class, in parse()'s shape */
    public static function describe(\ReflectionClass $class): array
    {
        $name = $class->getName();
        $modifiers = [];
        $class->isFinal() && !$class->isEnum() && $modifiers[] = 'final';
        $class->isAbstract() && !$class->isInterface() && $modifiers[] = 'abstract';
        $class->isReadOnly() && $modifiers[] = 'readonly';
        $kind = $class->isInterface() ? 'interface' : ($class->isEnum() ? 'enum' : ($class->isTrait() ? 'trait' : 'class'));
        $declaration = self::declaration($modifiers, $kind, $name);
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
        $implicit = ['Stringable', 'UnitEnum', 'BackedEnum'];
        $interfaces = array_values(array_diff($own, $implicit));
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
            $mods[] = self::visibilityOf($constant);
            $type = method_exists($constant, 'hasType') && $constant->hasType() ? self::normaliseType((string) $constant->getType()) . ' ' : '';
            $constants[$constant->getName()] = implode(' ', $mods) . " const {$type}{$constant->getName()} = " . var_export($constant->getValue(), true);
        }

        $properties = [];
        foreach ($class->getProperties() as $property) {
            if ($property->class !== $name || ($class->isEnum() && \in_array($property->getName(), ['name', 'value'], true))) {
                continue;
            }
            $mods = [];
            $property->isStatic() && $mods[] = 'static';
            $mods[] = self::visibilityOf($property);
            $property->isReadOnly() && !$class->isReadOnly() && $mods[] = 'readonly';
            $type = $property->hasType() ? self::normaliseType((string) $property->getType()) . ' ' : '';
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
            $mods[] = self::visibilityOf($method);
            $params = [];
            foreach ($method->getParameters() as $p) {
                $param = $p->hasType() ? self::normaliseType((string) $p->getType()) . ' ' : '';
                $param .= ($p->isPassedByReference() ? '&' : '') . ($p->isVariadic() ? '...' : '') . '$' . $p->getName();
                if ($p->isOptional() && !$p->isVariadic()) {
                    $param .= ' = ' . ($p->isDefaultValueAvailable() ? var_export($p->getDefaultValue(), true) : '<optional without a default>');
                }
                $params[] = $param;
            }
            $returnType = $method->hasReturnType() ? (string) $method->getReturnType()
                : ($method->hasTentativeReturnType() ? (string) $method->getTentativeReturnType() : null);
            $methods[$method->getName()] = self::signature($mods, ($method->returnsReference() ? '&' : '') . $method->getName(), $params, $returnType);
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

    /** @return array<string, array<string, mixed>> */
    private function file(): array
    {
        $classes = [];
        $namespace = '';
        $modifiers = [];
        for (; $this->i < \count($this->tokens); $this->i++) {
            $t = $this->tokens[$this->i];
            if ($t->is(T_NAMESPACE)) {
                $namespace = $this->tokens[++$this->i]->text;
                if ($this->tokens[$this->i]->text === '{') {
                    $namespace = '';
                }
            } elseif ($t->is([T_FINAL, T_ABSTRACT, T_READONLY])) {
                $modifiers[] = strtolower($t->text);
            } elseif ($t->is([T_CLASS, T_INTERFACE, T_TRAIT, T_ENUM]) && !$this->tokens[$this->i - 1]->is(T_DOUBLE_COLON)) {
                [$name, $description] = $this->classLike($modifiers, strtolower($t->text), $namespace);
                $classes[$name] = $description;
                $modifiers = [];
            } elseif ($t->is(T_USE) || $t->is(T_DECLARE)) {
                while ($this->tokens[$this->i]->text !== ';') {
                    $this->i++;
                }
            }
        }
        return $classes;
    }

    /** @return array{string, array<string, mixed>} */
    private function classLike(array $modifiers, string $kind, string $namespace): array
    {
        $name = self::resolve($this->tokens[++$this->i]->text, $namespace);
        $parent = null;
        $interfaces = [];
        $backing = null;
        while ($this->tokens[$this->i + 1]->text !== '{') {
            $t = $this->tokens[++$this->i];
            if ($t->is(T_EXTENDS)) {
                // An interface may extend several: they are its interfaces, not a parent.
                do {
                    $base = self::resolve($this->tokens[++$this->i]->text, $namespace);
                    $kind === 'interface' ? $interfaces[] = $base : $parent = $base;
                } while ($this->tokens[$this->i + 1]->text === ',' && ++$this->i);
            } elseif ($t->is(T_IMPLEMENTS)) {
                do {
                    $interfaces[] = self::resolve($this->tokens[++$this->i]->text, $namespace);
                } while ($this->tokens[$this->i + 1]->text === ',' && ++$this->i);
            } elseif ($t->text === ':') {
                $backing = $this->tokens[++$this->i]->text;
            }
        }
        $this->i++; // '{'
        $interfaces = array_values(array_diff($interfaces, ['Stringable', 'UnitEnum', 'BackedEnum']));
        sort($interfaces);
        $description = [
            'declaration' => self::declaration($modifiers, $kind, $name) . ($backing === null ? '' : ": {$backing}"),
            'parent' => $parent,
            'interfaces' => $interfaces,
            'constants' => [],
            'properties' => [],
            'methods' => [],
        ];

        $modifiers = [];
        $type = '';
        while (true) {
            $t = $this->tokens[++$this->i];
            if ($t->text === '}') {
                break;
            }
            if ($t->is([T_FINAL, T_ABSTRACT, T_READONLY, T_STATIC, T_PUBLIC, T_PROTECTED, T_PRIVATE, T_VAR])) {
                $modifiers[] = strtolower($t->text);
            } elseif ($t->is(T_CASE)) {
                $case = $this->tokens[++$this->i]->text;
                $value = '';
                if ($this->tokens[$this->i + 1]->text === '=') {
                    $this->i++;
                    $value = ' = ' . var_export($this->expression([';'], $name, $namespace), true);
                }
                $this->i++; // ';'
                $description['constants'][$case] = "case {$case}{$value}";
            } elseif ($t->is(T_CONST)) {
                // const [type] NAME = expr [, NAME = expr];
                do {
                    $parts = [];
                    while ($this->tokens[$this->i + 1]->text !== '=') {
                        $parts[] = $this->tokens[++$this->i]->text;
                    }
                    $this->i++; // '='
                    $constName = array_pop($parts);
                    $value = $this->expression([';', ','], $name, $namespace);
                    $mods = [];
                    \in_array('final', $modifiers, true) && $mods[] = 'final';
                    $mods[] = self::visibility($modifiers);
                    $constType = $parts === [] ? '' : self::normaliseType(implode('', $parts), $namespace) . ' ';
                    $description['constants'][$constName] = implode(' ', $mods) . " const {$constType}{$constName} = " . var_export($value, true);
                } while ($this->tokens[++$this->i]->text === ',');
                $modifiers = [];
                $type = '';
            } elseif ($t->is(T_FUNCTION)) {
                [$methodName, $signature] = $this->method($modifiers, $kind, $description['declaration'], $name, $namespace);
                $description['methods'][$methodName] = $signature;
                $description['properties'] += $this->promoted;
                $this->promoted = [];
                $modifiers = [];
                $type = '';
            } elseif ($t->is(T_VARIABLE)) {
                $mods = [];
                \in_array('static', $modifiers, true) && $mods[] = 'static';
                $mods[] = self::visibility($modifiers);
                \in_array('readonly', $modifiers, true) && $mods[] = 'readonly';
                $propertyType = $type === '' ? '' : self::normaliseType($type, $namespace) . ' ';
                $description['properties'][substr($t->text, 1)] = implode(' ', $mods) . " {$propertyType}{$t->text}";
                // Skip a default value (not compared) up to the end of the declaration.
                $nesting = 0;
                while (true) {
                    $text = $this->tokens[$this->i + 1]->text;
                    if ($nesting === 0 && ($text === ';' || $text === ',')) {
                        break;
                    }
                    $nesting += \in_array($text, ['(', '['], true) ? 1 : (\in_array($text, [')', ']'], true) ? -1 : 0);
                    $this->i++;
                }
                if ($this->tokens[++$this->i]->text === ';') {
                    $modifiers = [];
                    $type = '';
                }
            } elseif ($t->is(T_USE)) {
                while ($this->tokens[$this->i]->text !== ';') {
                    $this->i++;
                }
            } else {
                $type .= $t->text; // a property type, read before its variable
            }
        }
        foreach (['constants', 'properties', 'methods'] as $members) {
            ksort($description[$members]);
        }
        return [$name, $description];
    }

    /** @return array{string, string} */
    private function method(array $modifiers, string $kind, string $classDeclaration, string $class, string $namespace): array
    {
        $name = $this->tokens[++$this->i]->text;
        $byRef = $name === '&';
        if ($byRef) {
            $name = $this->tokens[++$this->i]->text;
        }
        $this->i++; // '('
        $params = [];
        while ($this->tokens[$this->i + 1]->text !== ')') {
            $params[] = $this->parameter($class, $namespace);
            if ($this->tokens[$this->i + 1]->text === ',') {
                $this->i++;
            }
        }
        $this->i++; // ')'
        $returnType = null;
        if ($this->tokens[$this->i + 1]->text === ':') {
            $this->i++;
            $returnType = '';
            while (!\in_array($this->tokens[$this->i + 1]->text, ['{', ';'], true)) {
                $returnType .= $this->tokens[++$this->i]->text;
            }
        }
        if ($this->tokens[$this->i + 1]->text === '{') {
            $this->i++;
            for ($braces = 1; $braces > 0;) {
                $text = $this->tokens[++$this->i]->text;
                $braces += $text === '{' ? 1 : ($text === '}' ? -1 : 0);
            }
        } else {
            $this->i++; // ';'
        }
        $mods = [];
        \in_array('final', $modifiers, true) && !str_starts_with($classDeclaration, 'final ') && $mods[] = 'final';
        \in_array('abstract', $modifiers, true) && $kind !== 'interface' && $mods[] = 'abstract';
        \in_array('static', $modifiers, true) && $mods[] = 'static';
        $mods[] = self::visibility($modifiers);
        $returnType = $returnType === null ? null : self::normaliseType($returnType, $namespace);
        return [$name, self::signature($mods, ($byRef ? '&' : '') . $name, $params, $returnType)];
    }

    /** One parameter: [type] [&] [...]$name [= default]. */
    private function parameter(string $class, string $namespace): string
    {
        $type = '';
        $prefix = '';
        $promotion = [];
        while (true) {
            $t = $this->tokens[++$this->i];
            if ($t->is(T_VARIABLE)) {
                break;
            }
            if ($t->is([T_AMPERSAND_NOT_FOLLOWED_BY_VAR_OR_VARARG, T_AMPERSAND_FOLLOWED_BY_VAR_OR_VARARG]) || $t->text === '&') {
                $prefix .= '&';
            } elseif ($t->is(T_ELLIPSIS)) {
                $prefix .= '...';
            } elseif ($t->is([T_PUBLIC, T_PROTECTED, T_PRIVATE, T_READONLY])) {
                $promotion[] = strtolower($t->text);
            } else {
                $type .= $t->text;
            }
        }
        $type = $type === '' ? '' : self::normaliseType($type, $namespace) . ' ';
        if ($promotion !== []) {
            $mods = [self::visibility($promotion)];
            \in_array('readonly', $promotion, true) && $mods[] = 'readonly';
            $this->promoted[substr($t->text, 1)] = implode(' ', $mods) . " {$type}{$t->text}";
        }
        $param = $type . $prefix . $t->text;
        if ($this->tokens[$this->i + 1]->text === '=') {
            $this->i++;
            $param .= ' = ' . var_export($this->expression([',', ')'], $class, $namespace), true);
        }
        return $param;
    }

    /**
     * Evaluates the constant expression that follows, up to one of `$end` at nesting level 0
     * (left unread). Names resolve like in the stub: self:: is the class being read, unqualified
     * names are looked up in the namespace first. Only constant-expression tokens are accepted.
     *
     * @param list<string> $end
     */
    private function expression(array $end, string $class, string $namespace): mixed
    {
        $code = '';
        $nesting = 0;
        while (true) {
            $t = $this->tokens[$this->i + 1];
            if ($nesting === 0 && \in_array($t->text, $end, true)) {
                break;
            }
            $this->i++;
            $nesting += \in_array($t->text, ['(', '['], true) ? 1 : (\in_array($t->text, [')', ']'], true) ? -1 : 0);
            if ($t->is([T_CONSTANT_ENCAPSED_STRING, T_LNUMBER, T_DNUMBER, T_ARRAY, T_DOUBLE_ARROW, T_DOUBLE_COLON, T_CLASS, T_SL, T_SR, T_POW, T_COALESCE])
                || \in_array($t->text, ['[', ']', ',', '-', '+', '*', '/', '%', '.', '(', ')', '|', '&', '^', '~', '?', ':'], true)) {
                $code .= $t->text . ' ';
            } elseif ($t->is([T_STRING, T_NAME_QUALIFIED, T_NAME_FULLY_QUALIFIED, T_STATIC])) {
                $lower = strtolower($t->text);
                if ($this->tokens[$this->i - 1]->is(T_DOUBLE_COLON)) {
                    $code .= $t->text . ' '; // a class member: Foo::BAR
                } elseif (\in_array($lower, ['true', 'false', 'null'], true)) {
                    $code .= $lower . ' ';
                } elseif (\in_array($lower, ['self', 'static'], true)) {
                    $code .= '\\' . $class . ' ';
                } elseif (($this->tokens[$this->i + 1]->text ?? '') === '::') {
                    $code .= '\\' . self::resolve($t->text, $namespace) . ' ';
                } else {
                    // A global constant: namespaced first, then global, as PHP resolves it.
                    $qualified = self::resolve($t->text, $namespace);
                    $code .= '\\' . (\defined($qualified) || str_starts_with($t->text, '\\') ? $qualified : ltrim($t->text, '\\')) . ' ';
                }
            } else {
                throw new \UnexpectedValueException("unsupported token in a stub constant expression: {$t->text}");
            }
        }
        // Only the constant-expression tokens checked above reach eval().
        return eval("return {$code};");
    }

    /** @param list<string> $modifiers */
    private static function declaration(array $modifiers, string $kind, string $name): string
    {
        $ordered = array_values(array_intersect(['final', 'abstract', 'readonly'], $modifiers));
        return trim(implode(' ', $ordered) . " {$kind} {$name}");
    }

    /** @param list<string> $mods @param list<string> $params */
    private static function signature(array $mods, string $name, array $params, ?string $returnType): string
    {
        return implode(' ', $mods) . " function {$name}(" . implode(', ', $params) . ')'
            . ($returnType === null ? '' : ': ' . self::normaliseType($returnType));
    }

    private const BUILTIN_TYPES = [
        'int', 'float', 'string', 'bool', 'array', 'mixed', 'void', 'null', 'never', 'static', 'self', 'parent',
        'callable', 'iterable', 'object', 'false', 'true',
    ];

    /**
     * A type as Reflection prints it: class names fully qualified without the leading backslash
     * (resolved against `$namespace` for the stub's side), unions sorted, T|null as ?T.
     */
    private static function normaliseType(string $type, ?string $namespace = null): string
    {
        $type = str_replace(' ', '', $type);
        $nullable = str_starts_with($type, '?');
        $parts = array_map(
            static fn (string $p): string => $namespace === null || \in_array(strtolower($p), self::BUILTIN_TYPES, true)
                ? ltrim($p, '\\')
                : self::resolve($p, $namespace),
            explode('|', ltrim($type, '?')),
        );
        if ($nullable) {
            return '?' . $parts[0];
        }
        if (\count($parts) === 2 && \in_array('null', $parts, true)) {
            return '?' . current(array_diff($parts, ['null']));
        }
        sort($parts);
        return implode('|', $parts);
    }

    /** A class name as written in the stub, resolved against the current namespace. */
    private static function resolve(string $name, string $namespace): string
    {
        if (str_starts_with($name, '\\')) {
            return substr($name, 1);
        }
        return $namespace === '' ? $name : "{$namespace}\\{$name}";
    }

    private static function visibilityOf(\ReflectionClassConstant|\ReflectionProperty|\ReflectionMethod $member): string
    {
        return $member->isPrivate() ? 'private' : ($member->isProtected() ? 'protected' : 'public');
    }

    /** @param list<string> $modifiers */
    private static function visibility(array $modifiers): string
    {
        foreach (['private', 'protected', 'public'] as $visibility) {
            if (\in_array($visibility, $modifiers, true)) {
                return $visibility;
            }
        }
        return 'public';
    }
}
