#!/usr/bin/env python3
"""Writes the module-definition (.def) file of PHP's import library for a Linux-hosted link of
php_qrpush.dll (scripts/windows-check): every function and variable declared in the extern blocks
of ext-php-rs's generated bindings (vectorcall functions under their decorated link names, such
as _emalloc@@8), plus the PHP symbols ext-php-rs's wrapper.c imports: its undefined __imp_ symbols that PHP's
headers declare exported (ZEND_API, PHPAPI, TSRM_API, SAPI_API); the others are the C runtime's.

    php-imports.py BINDINGS_RS DLL_NAME WRAPPER_UNDEFINED_SYMBOLS PHP_INCLUDE_DIR > php8.def

Variables are marked DATA so that only their __imp_ pointer exists, as in MSVC's import libraries.
"""
import glob
import re
import sys

bindings_path, dll_name, wrapper_symbols_path, include_dir = sys.argv[1:5]
text = open(bindings_path, encoding="utf-8").read()

functions, data = set(), set()
block = re.compile(r'extern\s+"(?:C|vectorcall|fastcall)"\s*\{')
item = re.compile(r'(?:#\[link_name\s*=\s*"\\u\{1\}([^"]+)"\]\s*)?pub\s+(fn|static\s+mut|static)\s+(\w+)')
for match in block.finditer(text):
    depth, i = 1, match.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    for link_name, kind, name in item.findall(text[match.end():i - 1]):
        (data if kind.startswith("static") else functions).add(link_name or name)
if not functions:
    sys.exit(f"{bindings_path}: no extern functions found (bindgen's output changed?)")

# wrapper.c's imports: data unless the bindings say otherwise (it reaches both through __imp_).
headers = "\n".join(open(p, errors="replace").read() for p in glob.glob(f"{include_dir}/**/*.h", recursive=True))
for line in open(wrapper_symbols_path, encoding="utf-8"):
    symbol = line.strip()
    if not symbol.startswith("__imp_"):
        continue
    name = symbol[len("__imp_"):]
    if name in functions or name in data:
        continue
    base = name.split("@@")[0]
    if re.search(r"\b(ZEND_API|PHPAPI|TSRM_API|SAPI_API)\b[^;{}]*\b" + re.escape(base) + r"\b", headers):
        data.add(name)

print(f"LIBRARY {dll_name}")
print("EXPORTS")
for name in sorted(functions - data):
    print(f"    {name}")
for name in sorted(data):
    print(f"    {name} DATA")
