<?php

declare(strict_types=1);

/*
 * Runs the relocatable copy of the chroot's PHPUnit that scripts/phpunit-portable makes, with any
 * PHP 8.2+ (PHPUnit 11's floor): QRPUSH_PHPUNIT_COPY names the copy.
 *
 * ctype: PHPUnit refuses to start without ctype_alnum(), which only its PHP parser uses; the
 * Windows php.exe of scripts/windows-check (a static build) has no ctype, so a plain-PHP
 * ctype_alnum() stands in when it is missing.
 */

$copy = getenv('QRPUSH_PHPUNIT_COPY');
if ($copy === false || !is_file("{$copy}/bin/phpunit")) {
    fwrite(STDERR, "QRPUSH_PHPUNIT_COPY must name the copy made by scripts/phpunit-portable\n");
    exit(2);
}
define('QRPUSH_PHPUNIT_SHARE', "{$copy}/share/php");

if (!function_exists('ctype_alnum')) {
    function ctype_alnum(mixed $text): bool
    {
        return is_string($text) && preg_match('/^[A-Za-z0-9]+$/D', $text) === 1;
    }
}

require "{$copy}/bin/phpunit";
