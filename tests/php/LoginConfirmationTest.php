<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * The QR-login threat model through the PHP API itself (no demo app): a QR code can be scanned by
 * someone who saw the screen, so the browser must confirm who approved — the approver's display
 * name (status() with the browser secret) and the code the approving phone shows (approve()) —
 * before redeem() succeeds; and one user's scans are rate-limited. Each refusal is a typed
 * QrPush\LoginException subclass with its stable code.
 */
final class LoginConfirmationTest extends TestCase
{
    /** Runs `$code` in a child php whose default client uses `$server`; returns its JSON. */
    private static function runWith(RedisServer $server, string $code, array $ini = []): array
    {
        $result = PhpProcess::code(['qrpush.url' => $server->url()] + $ini, $code);
        self::assertSame(0, $result->exitCode, $result->describe());
        $data = json_decode($result->stdout, true);
        self::assertIsArray($data, $result->describe());
        return $data;
    }

    public function testRedeemNeedsTheCodeOfTheApprovingPhoneAndTheBrowserIsToldWhoApproved(): void
    {
        $server = $this->redis();
        $events = $this->subscribe($server, 'qr-login-events');
        $data = self::runWith($server, <<<'PHP'
            use QrPush\Login;
            $refusal = static function (callable $call): array {
                try {
                    $call();
                    return ['thrown' => null];
                } catch (QrPush\LoginException $e) {
                    return ['thrown' => $e::class, 'code' => $e->getCode(), 'message' => $e->getMessage()];
                }
            };
            // The attacker scanned the victim's QR code first and approved it.
            $s = Login::start('192.0.2.10', 'VictimBrowser/1.0');
            Login::scan($s['qr'], 'mallory', 'attacker phone');
            $approved = Login::approve($s['id'], 'mallory', 'Mallory');
            $status = Login::status($s['id'], $s['browser_secret']);
            $public = Login::status($s['id']);
            $code = $approved['confirmation_code'];
            $wrong = $code === '00' ? '01' : '00';
            $out = [
                'approved_keys' => array_keys($approved),
                'code' => $code,
                'approver_name' => $status['approver_name'],
                'public_keys' => array_keys($public),
                'no_code' => $refusal(fn () => Login::redeem($s['id'], $status['ticket'], $s['browser_secret'], '')),
                'wrong' => $refusal(fn () => Login::redeem($s['id'], $status['ticket'], $s['browser_secret'], $wrong)),
                'state_after_two' => Login::status($s['id'])['state'],
                'last' => $refusal(fn () => Login::redeem($s['id'], $status['ticket'], $s['browser_secret'], $wrong)),
                'state_after_three' => Login::status($s['id'])['state'],
                'right_code_too_late' => $refusal(fn () => Login::redeem($s['id'], $status['ticket'], $s['browser_secret'], $code)),
                'constant' => QrPush\LoginException::WRONG_CODE,
            ];
            // The legitimate user types their own phone's code.
            $s = Login::start('192.0.2.10', 'VictimBrowser/1.0');
            Login::scan($s['qr'], 'alice', 'phone');
            $code = Login::approve($s['id'], 'alice', 'Alice Liddell')['confirmation_code'];
            $status = Login::status($s['id'], $s['browser_secret']);
            $out['alice_name'] = $status['approver_name'];
            $out['alice'] = Login::redeem($s['id'], $status['ticket'], $s['browser_secret'], $code);
            try {
                Login::approve($s['id'], 'alice', "Alice\n");
            } catch (\ValueError $e) {
                $out['bad_name'] = $e->getMessage();
            }
            echo json_encode($out);
            PHP);

        self::assertSame(['id', 'state', 'version', 'created_at_ms', 'expires_at_ms', 'channel', 'confirmation_code'], $data['approved_keys']);
        self::assertMatchesRegularExpression('/^[0-9]{2}$/', $data['code']);
        self::assertSame('Mallory', $data['approver_name'], 'the browser is told whose account approved');
        self::assertNotContains('approver_name', $data['public_keys'], 'only with the browser secret');
        foreach (['no_code', 'wrong'] as $case) {
            self::assertSame('QrPush\LoginWrongCodeException', $data[$case]['thrown'], $case);
            self::assertSame(108, $data[$case]['code']);
            self::assertSame('redeem: wrong confirmation code (the code the approving phone shows; 3 wrong codes cancel the login)', $data[$case]['message']);
        }
        self::assertSame('approved', $data['state_after_two']);
        self::assertSame(['QrPush\LoginWrongCodeException', 108], [$data['last']['thrown'], $data['last']['code']]);
        self::assertSame('redeem: wrong confirmation code, the last of 3 tries: the login is cancelled', $data['last']['message']);
        self::assertSame('cancelled', $data['state_after_three']);
        self::assertSame('QrPush\LoginStateException', $data['right_code_too_late']['thrown']);
        self::assertSame(108, $data['constant']);
        self::assertSame('Alice Liddell', $data['alice_name']);
        self::assertSame('alice', $data['alice']);
        self::assertSame('QrPush\Login::approve(): Argument #3 ($displayName) must not contain control characters', $data['bad_name']);

        // Neither the name nor the code was published: scanned, approved, cancelled {"reason"}, then alice's.
        $types = [];
        foreach ($events->receive(6) as $message) {
            self::assertStringNotContainsString('Mallory', $message['payload']);
            self::assertStringNotContainsString('Alice', $message['payload']);
            $event = json_decode($message['payload'], true);
            $types[] = [$event['type'], $event['type'] === 'cancelled' ? $event['data'] : null];
        }
        self::assertSame([
            ['scanned', null], ['approved', null], ['cancelled', ['reason' => 'wrong_code']],
            ['scanned', null], ['approved', null], ['redeemed', null],
        ], $types);
    }

    public function testScansBeyondTheLimitThrowTheTypedException(): void
    {
        $server = $this->redis();
        $data = self::runWith($server, <<<'PHP'
            use QrPush\Login;
            $qrs = [];
            for ($i = 0; $i < 4; $i++) {
                $qrs[] = Login::start('192.0.2.10', 'VictimBrowser/1.0');
            }
            $out = ['accepted' => []];
            foreach (array_slice($qrs, 0, 3) as $s) {
                $out['accepted'][] = Login::scan($s['qr'], 'harvester', '')['browser_ip'];
            }
            try {
                Login::scan($qrs[3]['qr'], 'harvester', '');
            } catch (QrPush\LoginException $e) {
                $out['refused'] = [$e::class, $e->getCode(), $e->getMessage(), $e instanceof QrPush\Exception];
            }
            $out['still'] = Login::status($qrs[3]['id'])['state'];
            $out['other_user'] = Login::scan($qrs[3]['qr'], 'alice', '')['state'];
            $out['constant'] = QrPush\LoginException::RATE_LIMITED;
            echo json_encode($out);
            PHP, ['qrpush.login_scan_limit' => '3', 'qrpush.login_scan_window' => '120']);

        self::assertSame(['192.0.2.10', '192.0.2.10', '192.0.2.10'], $data['accepted']);
        self::assertSame([
            'QrPush\LoginRateLimitedException',
            109,
            'scan: this user already scanned 3 logins within 120 s, the most login_scan_limit allows; try again later',
            true,
        ], $data['refused']);
        self::assertSame('pending', $data['still'], 'a refused scan changes nothing');
        self::assertSame('scanned', $data['other_user']);
        self::assertSame(109, $data['constant']);
    }
}
