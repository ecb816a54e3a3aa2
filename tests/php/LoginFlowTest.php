<?php

declare(strict_types=1);

namespace QrPush\Tests;

use PHPUnit\Framework\Attributes\DataProvider;

require_once __DIR__ . '/Support/LoginHttp.php';
require_once __DIR__ . '/Support/LoginStack.php';

/**
 * The publisher side of the QR login, end to end THROUGH HTTP: the demo app (php/public/index.php)
 * under real php-fpm (the flavour under test) behind nginx, a browser and a phone as HTTP clients,
 * and a real Redis subscriber that checks every event — type, order, sequence number, envelope —
 * in both channel modes. Every refused call must answer a typed error and publish nothing.
 * Linux only: the app runs under php-fpm behind nginx, and Windows PHP has no php-fpm.
 */
#[\PHPUnit\Framework\Attributes\RequiresOperatingSystemFamily('Linux')]
final class LoginFlowTest extends TestCase
{
    private const CHANNEL = 'qr-login-events';

    private ?LoginStack $stack = null;
    private RedisServer $redis;

    protected function tearDown(): void
    {
        if ($this->stack !== null) {
            $errors = $this->stack->phpErrors();
            $this->stack->stop();
            $this->stack = null;
            parent::tearDown();
            self::assertSame('', $errors, 'the app logged PHP errors or warnings');
            return;
        }
        parent::tearDown();
    }

    /** @param array<string, string> $ini */
    private function app(array $ini = []): string
    {
        $this->redis = $this->redis();
        $this->stack = new LoginStack($this->redis, $ini);
        return $this->stack->url;
    }

    /** @return iterable<string, array{string}> */
    public static function modes(): iterable
    {
        yield 'single channel (seed-compatible)' => ['single'];
        yield 'per-login channels' => ['per_login'];
    }

    #[DataProvider('modes')]
    public function testTheWholeFlowPublishesExactlyItsEvents(string $mode): void
    {
        $url = $this->app(['qrpush.login_channel_mode' => $mode]);
        $browser = new LoginHttp($url, 'DesktopBrowser/1.0 (X11)');
        $phone = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'alice']);
        $all = $this->subscribe($this->redis, $mode === 'single' ? self::CHANNEL : self::CHANNEL . ':*', $mode !== 'single');

        $page = $browser->get('/');
        self::assertSame(200, $page->status);
        self::assertStringContainsString('Log in with your phone', $page->body);
        self::assertStringContainsString("frame-ancestors 'none'", (string) $page->header('Content-Security-Policy'));
        self::assertSame(200, $browser->get('/phone')->status);

        $start = $browser->post('/api/login/start', []);
        self::assertSame(201, $start->status, $start->body);
        $login = $start->json();
        $id = $login['id'];
        self::assertSame(
            ['id', 'state', 'version', 'created_at_ms', 'expires_at_ms', 'channel', 'qr', 'qr_svg'],
            array_keys($login),
        );
        self::assertMatchesRegularExpression('/^[A-Za-z0-9_-]{22}$/', $id);
        self::assertSame(['pending', 1], [$login['state'], $login['version']]);
        self::assertSame(120_000, $login['expires_at_ms'] - $login['created_at_ms']);
        self::assertSame($mode === 'single' ? self::CHANNEL : self::CHANNEL . ":{$id}", $login['channel']);
        self::assertMatchesRegularExpression('/^' . preg_quote($id, '/') . '\.[A-Za-z0-9_-]{43}$/', $login['qr']);
        self::assertStringStartsWith('<svg', $login['qr_svg']);
        $cookie = $start->setCookies()["qrl_{$id}"] ?? null;
        self::assertNotNull($cookie, 'the browser secret is set as a cookie');
        self::assertArrayHasKey('httponly', $cookie['attributes']);
        self::assertSame('Strict', $cookie['attributes']['samesite'] ?? null);
        $secret = $cookie['value'];
        self::assertMatchesRegularExpression('/^[A-Za-z0-9_-]{43}$/', $secret);
        self::assertStringNotContainsString($secret, $start->body);

        self::assertSame(['pending', 1], self::state($browser->get("/api/login/status?id={$id}")));

        $scan = $phone->post('/api/login/scan', ['qr' => $login['qr']]);
        self::assertSame(200, $scan->status, $scan->body);
        $info = $scan->json();
        self::assertSame([$id, 'scanned', 2], [$info['id'], $info['state'], $info['version']]);
        self::assertSame('127.0.0.1', $info['browser_ip']);
        self::assertSame('DesktopBrowser/1.0 (X11)', $info['browser_user_agent']);
        self::assertSame($login['created_at_ms'], $info['created_at_ms']);
        self::assertSame(['scanned', 2], self::state($browser->get("/api/login/status?id={$id}")));

        $approve = $phone->post('/api/login/approve', ['id' => $id]);
        self::assertSame(200, $approve->status, $approve->body);
        self::assertSame(['approved', 3], self::state($approve));
        self::assertArrayNotHasKey('ticket', $approve->json(), 'the phone never sees the ticket');
        $code = $approve->json()['confirmation_code'];
        self::assertMatchesRegularExpression('/^[0-9]{2}$/', $code, 'the phone shows a 2-digit code');

        $events = $all->receive(2);
        $scanned = self::event($events[0], 'scanned', $id, 2, $mode, $login['channel']);
        self::assertSame(['expiresAt' => $login['expires_at_ms']], $scanned['data']);
        $approved = self::event($events[1], 'approved', $id, 3, $mode, $login['channel']);
        self::assertSame(['ticket', 'expiresAt'], array_keys($approved['data']), 'no name, no code in events');
        $ticket = $approved['data']['ticket'];
        self::assertMatchesRegularExpression('/^[A-Za-z0-9_-]{43}$/', $ticket);
        self::assertSame(30_000, $approved['data']['expiresAt'] - $approved['ts']);
        self::assertGreaterThanOrEqual($scanned['ts'], $approved['ts']);

        // The browser redeems with a session id an attacker may have planted: it must not survive.
        $browser->cookies['qrdemo_session'] = 'planted0123456789abcdefABCDEF';
        $redeem = $browser->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code]);
        self::assertSame(200, $redeem->status, $redeem->body);
        self::assertSame(['user' => 'alice'], $redeem->json());
        $session = $redeem->setCookies()['qrdemo_session'] ?? null;
        self::assertNotNull($session, 'redeem starts a session');
        self::assertFalse($session['deleted']);
        self::assertNotSame('planted0123456789abcdefABCDEF', $session['value']);
        self::assertArrayHasKey('httponly', $session['attributes']);
        self::assertTrue($redeem->setCookies()["qrl_{$id}"]['deleted'] ?? false, 'the browser secret cookie is dropped');
        self::assertSame(['user' => 'alice'], $browser->get('/api/me')->json());
        self::assertSame(['user' => null], (new LoginHttp($url))->get('/api/me')->json());

        $redeemed = self::event($all->receive(1)[0], 'redeemed', $id, 4, $mode, $login['channel']);
        self::assertSame([], $redeemed['data']);
        self::assertSame(['redeemed', 4], self::state($browser->get("/api/login/status?id={$id}")));

        // The replayed ticket (with the right secret): typed refusal, nothing published.
        $browser->cookies["qrl_{$id}"] = $secret;
        $replay = $browser->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code]);
        self::assertRefused($replay, 409, 'LoginTicketUsedException', 107, [$ticket, $secret]);
        $all->assertNothingMore(0.2);
    }

    public function testAPollingBrowserGetsANewTicketFromStatus(): void
    {
        $url = $this->app();
        [$browser, $phone, $login, $code] = $this->approvedLogin($url, 'bob');
        $id = $login['id'];
        $events = $this->subscribe($this->redis, self::CHANNEL);

        // Without the cookie the status is public and carries no ticket.
        $public = (new LoginHttp($url))->get("/api/login/status?id={$id}")->json();
        self::assertArrayNotHasKey('ticket', $public);
        $status = $browser->get("/api/login/status?id={$id}");
        self::assertSame(['approved', 3], self::state($status));
        $ticket = $status->json()['ticket'] ?? null;
        self::assertIsString($ticket);
        self::assertSame('Bob', $status->json()['approver_name']);
        $events->assertNothingMore(0.1, 'a new ticket is no transition:');

        $redeem = $browser->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code]);
        self::assertSame(200, $redeem->status, $redeem->body);
        self::assertSame('bob', $redeem->json()['user']);
        self::event($events->receive(1)[0], 'redeemed', $id, 4, 'single', self::CHANNEL);
    }

    public function testRejectEndsTheLogin(): void
    {
        $url = $this->app();
        $events = $this->subscribe($this->redis, self::CHANNEL);
        $browser = new LoginHttp($url);
        $phone = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'carol']);
        $login = $browser->post('/api/login/start', [])->json();
        $id = $login['id'];
        self::assertSame(200, $phone->post('/api/login/scan', ['qr' => $login['qr']])->status);
        $reject = $phone->post('/api/login/reject', ['id' => $id]);
        self::assertSame(['rejected', 3], self::state($reject));
        self::assertNull($reject->json()['expires_at_ms']);

        self::assertRefused($phone->post('/api/login/approve', ['id' => $id]), 409, 'LoginStateException', 103);
        self::assertRefused($phone->post('/api/login/scan', ['qr' => $login['qr']]), 409, 'LoginStateException', 103);
        self::assertRefused($browser->post('/api/login/redeem', ['id' => $id, 'ticket' => 'x', 'code' => '00']), 409, 'LoginStateException', 103);
        self::assertSame(['rejected', 3], self::state($browser->get("/api/login/status?id={$id}")));

        $received = $events->receive(2);
        self::event($received[0], 'scanned', $id, 2, 'single', self::CHANNEL);
        self::assertSame([], self::event($received[1], 'rejected', $id, 3, 'single', self::CHANNEL)['data']);
        $events->assertNothingMore(0.2);
    }

    public function testCancelByTheBrowserOnly(): void
    {
        $url = $this->app();
        $events = $this->subscribe($this->redis, self::CHANNEL);
        $browser = new LoginHttp($url);
        $phone = new LoginHttp($url, 'PhoneApp/2.0');
        $other = new LoginHttp($url, 'OtherBrowser/1.0');

        // Pending, cancelled by its browser; another browser (no cookie, or a wrong one) cannot.
        $a = $browser->post('/api/login/start', [])->json();
        self::assertRefused($other->post('/api/login/cancel', ['id' => $a['id']]), 403, 'LoginWrongSecretException', 105);
        $other->cookies["qrl_{$a['id']}"] = str_repeat('A', 43);
        self::assertRefused($other->post('/api/login/cancel', ['id' => $a['id']]), 403, 'LoginWrongSecretException', 105);
        $cancel = $browser->post('/api/login/cancel', ['id' => $a['id']]);
        self::assertSame(['cancelled', 2], self::state($cancel));
        self::assertRefused($phone->post('/api/login/scan', ['qr' => $a['qr']]), 409, 'LoginStateException', 103);

        // Scanned, then cancelled: the phone's approve comes too late.
        $b = $browser->post('/api/login/start', [])->json();
        self::assertSame(200, $phone->post('/api/login/scan', ['qr' => $b['qr']])->status);
        self::assertSame(['cancelled', 3], self::state($browser->post('/api/login/cancel', ['id' => $b['id']])));
        self::assertRefused($phone->post('/api/login/approve', ['id' => $b['id']]), 409, 'LoginStateException', 103);

        $received = $events->receive(3);
        self::event($received[0], 'cancelled', $a['id'], 2, 'single', self::CHANNEL);
        self::event($received[1], 'scanned', $b['id'], 2, 'single', self::CHANNEL);
        self::event($received[2], 'cancelled', $b['id'], 3, 'single', self::CHANNEL);
        $events->assertNothingMore(0.2);
    }

    public function testLoginsExpireAndThenDisappear(): void
    {
        $url = $this->app([
            'qrpush.login_pending_ttl' => '0.6',
            'qrpush.login_approved_ttl' => '0.6',
            'qrpush.login_terminal_ttl' => '1.0',
            'qrpush.login_scan_window' => '1.0',
        ]);
        $events = $this->subscribe($this->redis, self::CHANNEL);
        $browser = new LoginHttp($url);
        $phone = new LoginHttp($url, 'PhoneApp/2.0');

        $a = $browser->post('/api/login/start', [])->json();
        self::assertSame(600, $a['expires_at_ms'] - $a['created_at_ms']);
        [, $phone2, $b, $code] = $this->approvedLogin($url, 'demo', $browser);
        $ticket = self::event($events->receive(2)[1], 'approved', $b['id'], 3, 'single', self::CHANNEL)['data']['ticket'];
        usleep(700_000);

        // Pending → expired, noticed by the phone's scan.
        self::assertRefused($phone->post('/api/login/scan', ['qr' => $a['qr']]), 410, 'LoginExpiredException', 102);
        $expired = self::event($events->receive(1)[0], 'expired', $a['id'], 2, 'single', self::CHANNEL);
        self::assertSame(['from' => 'pending'], $expired['data']);
        $status = $browser->get("/api/login/status?id={$a['id']}")->json();
        self::assertSame(['expired', 2, null], [$status['state'], $status['version'], $status['expires_at_ms']]);

        // Approved → expired, noticed by the late redeem.
        self::assertRefused($browser->post('/api/login/redeem', ['id' => $b['id'], 'ticket' => $ticket, 'code' => $code]), 410, 'LoginExpiredException', 102, [$ticket]);
        self::assertSame(['from' => 'approved'], self::event($events->receive(1)[0], 'expired', $b['id'], 4, 'single', self::CHANNEL)['data']);
        $events->assertNothingMore(0.1);

        // After login_terminal_ttl nothing is left: unknown (and login_scan_window forgot the scans).
        usleep(1_200_000);
        self::assertRefused($browser->get("/api/login/status?id={$a['id']}"), 404, 'LoginNotFoundException', 101);
        self::assertRefused($phone2->post('/api/login/approve', ['id' => $b['id']]), 404, 'LoginNotFoundException', 101);
        self::assertSame([], $this->keys());
        $events->assertNothingMore(0.1);
    }

    public function testOnlyTheScanningUserDecides(): void
    {
        $url = $this->app();
        $events = $this->subscribe($this->redis, self::CHANNEL);
        $browser = new LoginHttp($url);
        $alice = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'alice']);
        $mallory = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'mallory']);
        $login = $browser->post('/api/login/start', [])->json();
        self::assertSame(200, $alice->post('/api/login/scan', ['qr' => $login['qr']])->status);
        self::event($events->receive(1)[0], 'scanned', $login['id'], 2, 'single', self::CHANNEL);

        self::assertRefused($mallory->post('/api/login/approve', ['id' => $login['id']]), 403, 'LoginWrongUserException', 104);
        self::assertRefused($mallory->post('/api/login/reject', ['id' => $login['id']]), 403, 'LoginWrongUserException', 104);
        self::assertRefused($mallory->post('/api/login/scan', ['qr' => $login['qr']]), 409, 'LoginStateException', 103);
        self::assertSame(['scanned', 2], self::state($browser->get("/api/login/status?id={$login['id']}")));
        $events->assertNothingMore(0.2);

        self::assertSame(['approved', 3], self::state($alice->post('/api/login/approve', ['id' => $login['id']])));
        self::event($events->receive(1)[0], 'approved', $login['id'], 3, 'single', self::CHANNEL);
    }

    public function testTheTicketIsUselessWithoutTheBrowserSecret(): void
    {
        $url = $this->app();
        $events = $this->subscribe($this->redis, self::CHANNEL);
        [$browser, , $login, $code] = $this->approvedLogin($url, 'dave');
        $id = $login['id'];
        $ticket = self::event($events->receive(2)[1], 'approved', $id, 3, 'single', self::CHANNEL)['data']['ticket'];
        $secret = $browser->cookies["qrl_{$id}"];

        $thief = new LoginHttp($url, 'Thief/1.0');
        self::assertRefused($thief->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code]), 403, 'LoginWrongSecretException', 105, [$ticket]);
        $thief->cookies["qrl_{$id}"] = substr($secret, 0, -1) . ($secret[-1] === 'A' ? 'B' : 'A');
        self::assertRefused($thief->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code]), 403, 'LoginWrongSecretException', 105, [$ticket, $secret]);
        self::assertRefused($thief->get("/api/login/status?id={$id}"), 403, 'LoginWrongSecretException', 105, [$secret]);
        self::assertRefused($browser->post('/api/login/redeem', ['id' => $id, 'ticket' => str_repeat('x', 43), 'code' => $code]), 403, 'LoginWrongTicketException', 106, [$secret]);
        self::assertSame(['user' => null], $thief->get('/api/me')->json());
        $events->assertNothingMore(0.2);

        self::assertSame(200, $browser->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code])->status);
        self::event($events->receive(1)[0], 'redeemed', $id, 4, 'single', self::CHANNEL);
    }

    public function testForgedAndUnknownInputIsRefusedAndPublishesNothing(): void
    {
        $url = $this->app();
        $events = $this->subscribe($this->redis, self::CHANNEL);
        $browser = new LoginHttp($url);
        $phone = new LoginHttp($url, 'PhoneApp/2.0');
        $login = $browser->post('/api/login/start', [])->json();
        $unknown = 'AAAAAAAAAAAAAAAAAAAAAA';

        foreach (['forged', $unknown, '', str_repeat('é', 30), "{$login['id']}x"] as $bad) {
            self::assertRefused($browser->get('/api/login/status?id=' . rawurlencode($bad)), 404, 'LoginNotFoundException', 101);
        }
        self::assertRefused($phone->post('/api/login/approve', ['id' => $unknown]), 404, 'LoginNotFoundException', 101);
        self::assertRefused($phone->post('/api/login/reject', ['id' => 'forged']), 404, 'LoginNotFoundException', 101);
        self::assertRefused($browser->post('/api/login/redeem', ['id' => $unknown, 'ticket' => 't', 'code' => '00']), 404, 'LoginNotFoundException', 101);
        self::assertRefused($browser->post('/api/login/cancel', ['id' => 'ÿþ']), 404, 'LoginNotFoundException', 101);
        // A QR code that is not ours, ours with a forged token, or raw bytes.
        foreach (['https://example.com/', $login['id'] . '.' . str_repeat('A', 43), $unknown . '.' . substr($login['qr'], 23), "\u{0}\u{ff}"] as $qr) {
            self::assertRefused($phone->post('/api/login/scan', ['qr' => $qr]), 404, 'LoginNotFoundException', 101);
        }
        // Not JSON, or no such route.
        self::assertSame(415, $phone->post('/api/login/approve', null, 'application/x-www-form-urlencoded')->status);
        self::assertSame(400, $phone->post('/api/login/approve', ['id' => 42])->status);
        self::assertSame(404, $browser->get('/api/login/nope')->status);

        self::assertSame(['pending', 1], self::state($browser->get("/api/login/status?id={$login['id']}")));
        $events->assertNothingMore(0.2);
    }

    #[DataProvider('modes')]
    public function testRacingRequestsHaveExactlyOneWinner(string $mode): void
    {
        $url = $this->app(['qrpush.login_channel_mode' => $mode]);
        $browser = new LoginHttp($url);
        $phone = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'erin']);
        $login = $browser->post('/api/login/start', [])->json();
        $id = $login['id'];
        $events = $this->subscribe($this->redis, $login['channel']);
        self::assertSame(200, $phone->post('/api/login/scan', ['qr' => $login['qr']])->status);

        $approvals = LoginHttp::concurrent(array_fill(0, 24, [$phone, 'POST', '/api/login/approve', ['id' => $id]]));
        $winners = array_values(array_filter($approvals, static fn (LoginResponse $r): bool => $r->status === 200));
        self::assertCount(1, $winners, 'exactly one approve wins');
        self::assertSame(['approved', 3], self::state($winners[0]));
        $code = $winners[0]->json()['confirmation_code'];
        foreach ($approvals as $response) {
            if ($response->status !== 200) {
                self::assertRefused($response, 409, 'LoginStateException', 103);
            }
        }
        $received = $events->receive(2);
        self::event($received[0], 'scanned', $id, 2, $mode, $login['channel']);
        $ticket = self::event($received[1], 'approved', $id, 3, $mode, $login['channel'])['data']['ticket'];
        $events->assertNothingMore(0.2, 'one approval, one event:');

        // 24 redeems from the same browser (all with its cookie and the ticket).
        $redeems = LoginHttp::concurrent(array_fill(0, 24, [$browser, 'POST', '/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code]]));
        $winners = array_values(array_filter($redeems, static fn (LoginResponse $r): bool => $r->status === 200));
        self::assertCount(1, $winners, 'exactly one redeem wins');
        self::assertSame(['user' => 'erin'], $winners[0]->json());
        foreach ($redeems as $response) {
            if ($response->status !== 200) {
                self::assertRefused($response, 409, 'LoginTicketUsedException', 107, [$ticket]);
            }
        }
        self::event($events->receive(1)[0], 'redeemed', $id, 4, $mode, $login['channel']);
        $events->assertNothingMore(0.2, 'one redeem, one event:');
    }

    /**
     * A QR code seen over the victim's shoulder, scanned first by the attacker, who approves: the victim's
     * browser must not log in to the attacker's account (login CSRF). The browser is told who approved,
     * and without the code the attacker's phone shows it cannot redeem; the last of 3 wrong codes cancels
     * the login. The victim's own phone, scanning second, is told the code was already scanned.
     */
    public function testTheBrowserMustConfirmWhoApprovedWithThePhonesCode(): void
    {
        $url = $this->app();
        $events = $this->subscribe($this->redis, self::CHANNEL);
        $victim = new LoginHttp($url, 'VictimBrowser/1.0');
        $mallory = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'mallory']);
        $alice = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'alice']);
        $login = $victim->post('/api/login/start', [])->json();
        $id = $login['id'];
        self::assertSame(200, $mallory->post('/api/login/scan', ['qr' => $login['qr']])->status);
        self::assertRefused($alice->post('/api/login/scan', ['qr' => $login['qr']]), 409, 'LoginStateException', 103);
        $code = $mallory->post('/api/login/approve', ['id' => $id])->json()['confirmation_code'];
        $ticket = self::event($events->receive(2)[1], 'approved', $id, 3, 'single', self::CHANNEL)['data']['ticket'];

        // (b) The browser learns whose account approved, before anything is redeemed.
        $status = $victim->get("/api/login/status?id={$id}")->json();
        self::assertSame(['approved', 'Mallory'], [$status['state'], $status['approver_name']]);
        self::assertArrayNotHasKey('approver_name', (new LoginHttp($url))->get("/api/login/status?id={$id}")->json());
        $ticket = $status['ticket'];

        // (a) Ticket and secret without the phone's code: refused, counted; the 3rd wrong code cancels.
        self::assertSame(400, $victim->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket])->status);
        $wrong = $code === '00' ? '01' : '00';
        foreach ([1, 2] as $try) {
            self::assertRefused($victim->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $wrong]), 403, 'LoginWrongCodeException', 108, [$ticket, $code]);
            // (Asked without the cookie: with it, status() would hand out a new ticket.)
            self::assertSame(['approved', 3], self::state((new LoginHttp($url))->get("/api/login/status?id={$id}")));
        }
        $events->assertNothingMore(0.1);
        $last = $victim->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $wrong]);
        self::assertRefused($last, 403, 'LoginWrongCodeException', 108);
        self::assertStringContainsString('the login is cancelled', $last->json()['message']);
        $cancelled = self::event($events->receive(1)[0], 'cancelled', $id, 4, 'single', self::CHANNEL);
        self::assertSame(['reason' => 'wrong_code'], $cancelled['data']);
        self::assertRefused($victim->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code]), 409, 'LoginStateException', 103);
        self::assertSame(['user' => null], $victim->get('/api/me')->json(), 'the victim was never logged in');

        // The legitimate flow: the user's own phone approves and they type its code.
        [$browser, , $mine, $code] = $this->approvedLogin($url, 'alice');
        $status = $browser->get("/api/login/status?id={$mine['id']}")->json();
        self::assertSame('Alice', $status['approver_name']);
        $redeem = $browser->post('/api/login/redeem', ['id' => $mine['id'], 'ticket' => $status['ticket'], 'code' => $code]);
        self::assertSame(['user' => 'alice'], $redeem->json());
    }

    /**
     * (c) One phone user may scan at most qrpush.login_scan_limit logins per qrpush.login_scan_window: beyond
     * that a typed refusal (429 in the demo), the login stays pending and its browser's IP and user agent
     * are not handed out. Other users are not affected.
     */
    public function testScansBeyondThePerUserLimitAreRefused(): void
    {
        $url = $this->app(['qrpush.login_scan_limit' => '2', 'qrpush.login_scan_window' => '60']);
        $events = $this->subscribe($this->redis, self::CHANNEL);
        $browser = new LoginHttp($url, 'VictimBrowser/1.0');
        $harvester = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'harvester']);
        $logins = [];
        for ($i = 0; $i < 3; $i++) {
            $logins[] = $browser->post('/api/login/start', [])->json();
        }
        self::assertSame(200, $harvester->post('/api/login/scan', ['qr' => $logins[0]['qr']])->status);
        self::assertSame(200, $harvester->post('/api/login/scan', ['qr' => $logins[1]['qr']])->status);
        $events->receive(2);
        $refused = $harvester->post('/api/login/scan', ['qr' => $logins[2]['qr']]);
        self::assertRefused($refused, 429, 'LoginRateLimitedException', 109, ['VictimBrowser', '127.0.0.1']);
        self::assertSame(['pending', 1], self::state($browser->get("/api/login/status?id={$logins[2]['id']}")));
        $events->assertNothingMore(0.2);
        $other = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'alice']);
        self::assertSame(200, $other->post('/api/login/scan', ['qr' => $logins[2]['qr']])->status);
    }

    public function testRedisHoldsOnlyHashesOfTheSecrets(): void
    {
        $url = $this->app();
        $events = $this->subscribe($this->redis, self::CHANNEL);
        $secrets = [];
        $browser = new LoginHttp($url);
        $phone = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => 'frank']);
        foreach (['pending', 'scanned', 'approved', 'redeemed'] as $goal) {
            $login = $browser->post('/api/login/start', [])->json();
            $id = $login['id'];
            array_push($secrets, $id, explode('.', $login['qr'])[1], $browser->cookies["qrl_{$id}"]);
            if ($goal === 'pending') {
                continue;
            }
            $phone->post('/api/login/scan', ['qr' => $login['qr']]);
            $events->receive(1);
            if ($goal === 'scanned') {
                continue;
            }
            $code = $phone->post('/api/login/approve', ['id' => $id])->json()['confirmation_code'];
            $secrets[] = $ticket = json_decode($events->receive(1)[0]['payload'], true)['data']['ticket'];
            if ($goal === 'redeemed') {
                self::assertSame(200, $browser->post('/api/login/redeem', ['id' => $id, 'ticket' => $ticket, 'code' => $code])->status);
            } else {
                $secrets[] = $browser->get("/api/login/status?id={$id}")->json()['ticket'];
            }
        }

        // What `redis-cli --scan` and a dump of every key show: the logins, and frank's recent scans.
        $keys = $this->keys();
        self::assertCount(5, $keys);
        self::assertCount(1, preg_grep('/^qrpush:login:scans:[A-Za-z0-9_-]{43}$/', $keys));
        $dump = '';
        foreach ($keys as $key) {
            self::assertMatchesRegularExpression('/^qrpush:login:(scans:)?[A-Za-z0-9_-]{43}$/', $key);
            $dump .= $key . "\n" . implode("\n", $this->redis->command('HGETALL', $key)) . "\n";
        }
        self::assertStringContainsString('frank', $dump);
        foreach ($secrets as $secret) {
            self::assertStringNotContainsString(substr($secret, 0, 16), $dump, 'a secret (or part of one) is stored in Redis');
        }
    }

    // --- helpers ---------------------------------------------------------------------------------

    /**
     * A login of `$user`, scanned and approved through HTTP.
     *
     * @return array{0: LoginHttp, 1: LoginHttp, 2: array<string, mixed>, 3: string} browser, phone, start()
     *     answer, the confirmation code the phone shows
     */
    private function approvedLogin(string $url, string $user, ?LoginHttp $browser = null): array
    {
        $browser ??= new LoginHttp($url);
        $phone = new LoginHttp($url, 'PhoneApp/2.0', ['demo_user' => $user]);
        $login = $browser->post('/api/login/start', [])->json();
        self::assertSame(200, $phone->post('/api/login/scan', ['qr' => $login['qr']])->status);
        $approve = $phone->post('/api/login/approve', ['id' => $login['id']]);
        self::assertSame(200, $approve->status, $approve->body);
        return [$browser, $phone, $login, $approve->json()['confirmation_code']];
    }

    /** @return array{0: string, 1: int} state and version of a status answer */
    private static function state(LoginResponse $response): array
    {
        self::assertSame(200, $response->status, $response->body);
        $data = $response->json();
        return [$data['state'], $data['version']];
    }

    /**
     * Checks one event's channel and envelope, exactly; returns it decoded.
     *
     * @param array{channel: string, payload: string} $message
     * @return array<string, mixed>
     */
    private static function event(array $message, string $type, string $id, int $seq, string $mode, string $channel): array
    {
        self::assertSame($channel, $message['channel']);
        $event = json_decode($message['payload'], true, 8, JSON_THROW_ON_ERROR);
        $envelope = $mode === 'single'
            ? ['v', 'type', 'loginId', 'sessionId', 'seq', 'ts', 'data']
            : ['v', 'type', 'loginId', 'seq', 'ts', 'data'];
        self::assertSame($envelope, array_keys($event), $message['payload']);
        self::assertSame([1, $type, $id, $seq], [$event['v'], $event['type'], $event['loginId'], $event['seq']], $message['payload']);
        if ($mode === 'single') {
            self::assertSame($id, $event['sessionId']);
        }
        self::assertIsInt($event['ts']);
        self::assertEqualsWithDelta(microtime(true) * 1000, $event['ts'], 30_000);
        self::assertIsArray($event['data']);
        // What the extension publishes is what PHP's json_encode would have written.
        self::assertSame(json_encode(json_decode($message['payload']), JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), $message['payload']);
        return $event;
    }

    /** @param list<string> $secrets strings the answer must not contain */
    private static function assertRefused(LoginResponse $response, int $status, string $class, int $code, array $secrets = []): void
    {
        self::assertSame($status, $response->status, $response->body);
        $error = $response->json();
        self::assertSame([$class, $code], [$error['error'] ?? null, $error['code'] ?? null], $response->body);
        self::assertIsString($error['message']);
        // The answer without its numeric fields: the exception code (108) is no secret, and a
        // 2-digit confirmation code may well be part of its digits.
        $text = json_encode(array_filter($error, static fn ($value) => !is_int($value)), JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        foreach ($secrets as $secret) {
            self::assertStringNotContainsString($secret, $text, 'an error answer leaks a secret');
        }
    }

    /** @return list<string> every key, by SCAN */
    private function keys(): array
    {
        $keys = [];
        $cursor = '0';
        do {
            [$cursor, $batch] = $this->redis->command('SCAN', $cursor, 'COUNT', 1000);
            array_push($keys, ...$batch);
        } while ($cursor !== '0');
        sort($keys);
        return $keys;
    }
}
