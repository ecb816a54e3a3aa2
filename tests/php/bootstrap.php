<?php

declare(strict_types=1);

/*
 * Bootstrap of the QrPush PHPUnit suite (see phpunit.xml.dist).
 *
 * Loading a build of the extension made for another PHP (NTS vs ZTS, other API) only prints a
 * warning and goes on without it, so this file refuses to run anything unless the extension under
 * test is really loaded, in the flavour the runner asked for. It prints one line saying which PHP
 * and which build are tested, so a CI log shows that both flavours ran.
 *
 * There is no composer vendor directory: Debian's PHPUnit autoloads itself, and the support
 * classes are required here.
 */

$fail = static function (string $why): never {
    fwrite(STDERR, "\nQrPush test bootstrap: {$why}\n\n");
    exit(2);
};

$flavour = getenv('QRPUSH_FLAVOUR') ?: (PHP_ZTS ? 'zts' : 'nts');
$ext = getenv('QRPUSH_EXT') ?: '';

if (!extension_loaded('qrpush')) {
    $fail(sprintf(
        'the qrpush extension is NOT loaded in this PHP (%s %s, %s). Run through `bash scripts/test php`, '
        . 'or pass -d extension=/abs/path/libqrpush.so; a build for another PHP only warns at startup.',
        PHP_BINARY,
        PHP_VERSION,
        PHP_ZTS ? 'ZTS' : 'NTS',
    ));
}
if ($flavour !== (PHP_ZTS ? 'zts' : 'nts')) {
    $fail(sprintf('QRPUSH_FLAVOUR=%s but this PHP is %s (%s)', $flavour, PHP_ZTS ? 'ZTS' : 'NTS', PHP_BINARY));
}
if ($ext === '' || !is_file($ext)) {
    $fail('QRPUSH_EXT must name the built extension (absolute path of libqrpush.so); got ' . var_export($ext, true));
}
// php-fpm does not exist on Windows; the tests that need it are Linux-only.
$required = PHP_OS_FAMILY === 'Windows' ? ['QRPUSH_PHP' => PHP_BINARY] : ['QRPUSH_PHP' => PHP_BINARY, 'QRPUSH_PHP_FPM' => null];
foreach ($required as $var => $default) {
    $value = getenv($var) ?: $default;
    if ($value === null || !is_executable($value)) {
        $fail("{$var} must name an executable (got " . var_export($value, true) . ')');
    }
}
if (getenv('QRPUSH_PHP') === false) {
    putenv('QRPUSH_PHP=' . PHP_BINARY);
}
foreach (['proc_open', 'stream_socket_client', 'proc_terminate'] as $function) {
    if (!function_exists($function)) {
        $fail("the tests need {$function}()");
    }
}

require __DIR__ . '/Support/Processes.php';
require __DIR__ . '/Support/ExternalServers.php';
require __DIR__ . '/Support/Resp.php';
require __DIR__ . '/Support/RedisServer.php';
require __DIR__ . '/Support/RedisCluster.php';
require __DIR__ . '/Support/RedisSentinel.php';
require __DIR__ . '/Support/Subscriber.php';
require __DIR__ . '/Support/PhpProcess.php';
require __DIR__ . '/Support/Fpm.php';
require __DIR__ . '/Support/TestPki.php';
require __DIR__ . '/Support/TestCase.php';
require __DIR__ . '/Support/JsonAgainstPhpTestCase.php';

fwrite(STDOUT, sprintf(
    "QrPush tests on PHP %s %s (%s), extension qrpush %s from %s%s\n",
    PHP_VERSION,
    PHP_ZTS ? 'ZTS' : 'NTS',
    PHP_BINARY,
    phpversion('qrpush'),
    $ext,
    QrPush\Tests\ExternalServers::enabled() ? ', redis-server started by ' . QrPush\Tests\ExternalServers::address() : '',
));
