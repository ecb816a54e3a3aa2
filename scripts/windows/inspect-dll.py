#!/usr/bin/env python3
"""Inspects a built php_qrpush.dll (scripts/windows-check): what Windows and PHP will see when
`extension=php_qrpush.dll` loads it.

    inspect-dll.py --flavour ts|nts --api 20240924 --objdump llvm-objdump \
                   --php-exports php.exe.exports --php-headers DEVEL_PACK/include  DLL

Checks, each failing with what it found:
  - it is a PE32+ x86-64 DLL exporting get_module (what PHP calls);
  - it carries the build id PHP compares, API<api>,TS|NTS,VS17;
  - every imported DLL is PHP's own (php8.dll for NTS, php8ts.dll for TS) or ships with Windows
    (an allow-list of system DLLs, the VC++ runtime and the api-ms-win-* sets); nothing matches
    ssl/crypto/eay (no OpenSSL) and no debug CRT (vcruntime140d, ucrtbased);
  - every symbol imported from PHP is exported by PHP: for NTS, by the export table of a real
    MSVC-built PHP 8.4 NTS (php.exe.exports); for TS, no TS build is available, so a symbol must be
    in that table and not one of NTS's global variables (a TS build reaches globals through TSRM),
    or be declared exported (ZEND_API, TSRM_API, PHPAPI, SAPI_API) in PHP's headers.
"""
import argparse
import glob
import re
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--flavour", choices=["ts", "nts"], required=True)
parser.add_argument("--api", required=True)
parser.add_argument("--objdump", required=True)
parser.add_argument("--php-exports", required=True)
parser.add_argument("--php-headers", required=True)
parser.add_argument("dll")
args = parser.parse_args()

SYSTEM_DLLS = {
    "kernel32.dll", "ntdll.dll", "advapi32.dll", "ws2_32.dll", "bcrypt.dll", "bcryptprimitives.dll",
    "userenv.dll", "vcruntime140.dll", "vcruntime140_1.dll", "dbghelp.dll", "secur32.dll", "crypt32.dll",
    "user32.dll", "shell32.dll", "ole32.dll", "oleaut32.dll", "iphlpapi.dll", "psapi.dll", "ucrtbase.dll",
}
failures = []


def fail(message):
    failures.append(message)
    print(f"FAILED: {message}")


dump = subprocess.run([args.objdump, "-p", args.dll], capture_output=True, text=True, check=True).stdout
data = open(args.dll, "rb").read()

if "file format coff-x86-64" not in dump and "file format pe32+" not in dump.lower():
    fail("not a PE32+ x86-64 image")
exports = re.findall(r"^\s+\d+\s+0x[0-9a-f]+\s+(\S+)$", dump, re.M)
print(f"exports: {', '.join(exports)}")
if "get_module" not in exports:
    fail("get_module is not exported")

flavour = args.flavour.upper()
build_id = f"API{args.api},{flavour},VS17".encode()
other_id = f"API{args.api},{'NTS' if flavour == 'TS' else 'TS'},VS17".encode()
if build_id not in data:
    fail(f"the build id {build_id.decode()} is not in the DLL")
if other_id in data:
    fail(f"the DLL carries the other flavour's build id {other_id.decode()}")
print(f"build id: {build_id.decode()}")

# Imports per DLL, from objdump's import tables.
imports = {}
current = None
for line in dump.splitlines():
    m = re.match(r"^\s+DLL Name: (\S+)", line)
    if m:
        current = m.group(1)
        imports.setdefault(current, set())
        continue
    m = re.match(r"^\s+\d+\s+(\S+)$", line) if current else None
    if m:
        imports[current].add(m.group(1))
    elif line.strip() == "" or line.startswith("Export Table"):
        current = None if line.startswith("Export Table") else current
print(f"imported DLLs: {', '.join(sorted(imports, key=str.lower))}")

php_dll = "php8ts.dll" if flavour == "TS" else "php8.dll"
if php_dll not in {d.lower() for d in imports}:
    fail(f"{php_dll} is not imported")
for dll in imports:
    lower = dll.lower()
    if re.search(r"ssl|crypto|eay", lower):
        fail(f"imports a TLS library: {dll}")
    elif re.search(r"vcruntime140d|ucrtbased|msvcp\d+d|msvcr\d+d", lower):
        fail(f"imports a debug CRT: {dll}")
    elif lower != php_dll and lower not in SYSTEM_DLLS and not lower.startswith(("api-ms-win-", "ext-ms-win-")):
        fail(f"imports {dll}, which is neither PHP's nor part of Windows")

from_php = set().union(*(s for d, s in imports.items() if d.lower() == php_dll)) if php_dll in {d.lower() for d in imports} else set()
nts_exports = {line.strip() for line in open(args.php_exports) if line.strip()}
if flavour == "NTS":
    missing = sorted(from_php - nts_exports)
    for name in missing:
        fail(f"imports {name} from {php_dll}, which PHP 8.4 NTS does not export")
    print(f"{len(from_php)} symbols from {php_dll}, all in the export table of PHP 8.4 NTS ({len(nts_exports)} exports)" if not missing else "")
else:
    headers = "\n".join(open(p, errors="replace").read() for p in glob.glob(f"{args.php_headers}/**/*.h", recursive=True))
    nts_globals = {n for n in nts_exports if re.fullmatch(r"[a-z_]+_globals", n)}
    ts_only = []
    for name in sorted(from_php):
        if name in nts_exports and name not in nts_globals:
            continue
        declared = re.search(r"\b(ZEND_API|TSRM_API|PHPAPI|SAPI_API)\b[^;{]*\b" + re.escape(name) + r"\b", headers)
        if name in nts_globals or not declared:
            fail(f"imports {name} from {php_dll}: {'an NTS global variable' if name in nts_globals else 'not exported by PHP 8.4 (NTS table, TS headers)'}")
        else:
            ts_only.append(name)
    print(f"{len(from_php)} symbols from {php_dll}: {len(from_php) - len(ts_only)} in the NTS export table, "
          f"{len(ts_only)} TS-only and declared exported in PHP's headers ({', '.join(ts_only)})")

if failures:
    sys.exit(f"{len(failures)} problem(s) in {args.dll}")
print(f"get_module, {build_id.decode()}, {len(imports)} import tables (allow-listed), "
      f"{len(from_php)} PHP imports ⊆ PHP 8.4 {flavour}'s exports{' (by the NTS table + TS headers)' if flavour == 'TS' else ''}")
