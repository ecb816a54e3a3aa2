<?php

declare(strict_types=1);

namespace QrDemo;

/**
 * The demo app's own login session: who is logged in in this browser.
 *
 * A QR login ends with a *new* session id (never one the browser had before: no session fixation).
 * PHP's session extension does that with session_regenerate_id(true). A PHP built without it (the
 * project's ZTS build has none) gets the same behaviour from a few lines of file storage: a random
 * 256-bit id in an HttpOnly SameSite=Strict cookie, and a file named by the id's SHA-256.
 */
final class DemoSession
{
    public const COOKIE = 'qrdemo_session';

    public static function native(): bool
    {
        return \extension_loaded('session');
    }

    /** Logs `$user` in under a fresh session id, dropping the old session if there was one. */
    public static function start(string $user): void
    {
        if (self::native()) {
            self::configure();
            session_start();
            session_regenerate_id(true);
            $_SESSION = ['user' => $user, 'since' => time()];
            session_write_close();
            return;
        }
        self::end();
        $id = rtrim(strtr(base64_encode(random_bytes(32)), '+/', '-_'), '=');
        file_put_contents(self::file($id), json_encode(['user' => $user, 'since' => time()]), LOCK_EX);
        chmod(self::file($id), 0600);
        self::cookie($id, 0);
    }

    /** The logged-in user, or null. */
    public static function user(): ?string
    {
        $id = $_COOKIE[self::COOKIE] ?? null;
        if (!\is_string($id) || $id === '') {
            return null;
        }
        if (self::native()) {
            self::configure();
            session_start(['read_and_close' => true]);
            $user = $_SESSION['user'] ?? null;
            return \is_string($user) ? $user : null;
        }
        $data = json_decode((string) @file_get_contents(self::file($id)), true);
        return \is_array($data) && \is_string($data['user'] ?? null) ? $data['user'] : null;
    }

    /** Logs out: the session is destroyed and its cookie removed. */
    public static function end(): void
    {
        $id = $_COOKIE[self::COOKIE] ?? null;
        if (self::native()) {
            if (\is_string($id) && $id !== '') {
                self::configure();
                session_start();
                session_destroy();
            }
        } elseif (\is_string($id) && $id !== '') {
            @unlink(self::file($id));
        }
        self::cookie('', -1);
    }

    private static function configure(): void
    {
        session_name(self::COOKIE);
        ini_set('session.use_strict_mode', '1');
        ini_set('session.use_only_cookies', '1');
        session_set_cookie_params(['path' => '/', 'httponly' => true, 'samesite' => 'Strict']);
    }

    private static function file(string $id): string
    {
        $dir = sys_get_temp_dir() . '/qrdemo-sessions';
        if (!is_dir($dir)) {
            @mkdir($dir, 0700, true);
        }
        return $dir . '/' . hash('sha256', $id);
    }

    private static function cookie(string $value, int $maxAge): void
    {
        setcookie(self::COOKIE, $value, [
            'expires' => $maxAge < 0 ? 1 : 0,
            'path' => '/',
            'httponly' => true,
            'samesite' => 'Strict',
        ]);
    }
}
