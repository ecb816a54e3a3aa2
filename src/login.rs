//! `final class QrPush\Login`: the QR-login state machine (`qrpush_core::login`) as static
//! methods over the default client, so every call uses the same pooled connections, time
//! bounds and `qrpush.*` settings as `QrPush::publish()`.
//!
//! String arguments are taken as bytes: a forged id, QR text, ticket or secret from an HTTP
//! request may be any bytes and must end in the login exception it deserves, not a TypeError.

// PHP's parameter names are the Rust ones: camelCase, as PHP code spells them.
#![allow(non_snake_case)]

use std::borrow::Cow;
use std::sync::Arc;

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::ZendHashTable;
use qrpush_core::login::{Login as CoreLogin, Status};
use qrpush_core::{Client, Error, Subject};

use crate::exceptions::{to_php, Argument, Holds};
use crate::facade;

/// `start(string $browserIp, string $userAgent)`.
const START: &[Argument] = &[Argument::new(1, "browserIp", Holds::BrowserIp)];
/// `scan(string $qr, string $userId, string $deviceInfo)`.
const SCAN: &[Argument] = &[
    Argument::new(2, "userId", Holds::UserId),
    Argument::new(3, "deviceInfo", Holds::DeviceInfo),
];
/// `approve(string $loginId, string $userId, string $displayName)`.
const APPROVE: &[Argument] = &[
    Argument::new(2, "userId", Holds::UserId),
    Argument::new(3, "displayName", Holds::DisplayName),
];
/// `reject(string $loginId, string $userId)`.
const REJECT: &[Argument] = &[Argument::new(2, "userId", Holds::UserId)];

#[php_class]
#[php(name = "QrPush\\Login")]
#[php(flags = ClassFlags::Final)]
pub struct Login;

#[php_impl]
impl Login {
    pub fn start(
        browserIp: BinarySlice<u8>,
        userAgent: BinarySlice<u8>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        let started = core()
            .login()
            .start(&lossy(&browserIp), &lossy(&userAgent))
            .map_err(|e| to_php(e, "QrPush\\Login::start", START))?;
        let mut a = status_array(&started.status).map_err(internal)?;
        a.insert("qr", started.qr.expose()).map_err(internal)?;
        a.insert("browser_secret", started.browser_secret.expose())
            .map_err(internal)?;
        // The WebSocket gateway's handshake token; null without qrpush.gateway_secret.
        a.insert(
            "gateway_token",
            started.gateway_token.as_ref().map(|t| t.expose()),
        )
        .map_err(internal)?;
        Ok(a)
    }

    pub fn scan(
        qr: BinarySlice<u8>,
        userId: BinarySlice<u8>,
        deviceInfo: BinarySlice<u8>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        let info = user_id(&userId)
            .and_then(|user| core().login().scan(&lossy(&qr), user, &lossy(&deviceInfo)))
            .map_err(|e| to_php(e, "QrPush\\Login::scan", SCAN))?;
        let mut a = status_array(&info.status).map_err(internal)?;
        a.insert("browser_ip", info.browser_ip.as_str())
            .map_err(internal)?;
        a.insert("browser_user_agent", info.browser_user_agent.as_str())
            .map_err(internal)?;
        Ok(a)
    }

    pub fn approve(
        loginId: BinarySlice<u8>,
        userId: BinarySlice<u8>,
        displayName: BinarySlice<u8>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        let approved = user_id(&userId)
            .and_then(|user| Ok((user, display_name(&displayName)?)))
            .and_then(|(user, name)| core().login().approve(&lossy(&loginId), user, name))
            .map_err(|e| to_php(e, "QrPush\\Login::approve", APPROVE))?;
        let mut a = status_array(&approved.status).map_err(internal)?;
        a.insert("confirmation_code", approved.confirmation_code.expose())
            .map_err(internal)?;
        Ok(a)
    }

    pub fn reject(
        loginId: BinarySlice<u8>,
        userId: BinarySlice<u8>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        let status = user_id(&userId)
            .and_then(|user| core().login().reject(&lossy(&loginId), user))
            .map_err(|e| to_php(e, "QrPush\\Login::reject", REJECT))?;
        status_array(&status).map_err(internal)
    }

    pub fn redeem(
        loginId: BinarySlice<u8>,
        ticket: BinarySlice<u8>,
        browserSecret: BinarySlice<u8>,
        confirmationCode: BinarySlice<u8>,
    ) -> PhpResult<String> {
        core()
            .login()
            .redeem(
                &lossy(&loginId),
                &lossy(&ticket),
                &lossy(&browserSecret),
                &lossy(&confirmationCode),
            )
            .map(|r| r.user_id)
            .map_err(|e| to_php(e, "QrPush\\Login::redeem", &[]))
    }

    pub fn cancel(
        loginId: BinarySlice<u8>,
        browserSecret: BinarySlice<u8>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        let status = core()
            .login()
            .cancel(&lossy(&loginId), &lossy(&browserSecret))
            .map_err(|e| to_php(e, "QrPush\\Login::cancel", &[]))?;
        status_array(&status).map_err(internal)
    }

    pub fn status(
        loginId: BinarySlice<u8>,
        browserSecret: Option<BinarySlice<u8>>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        let secret = browserSecret.map(|s| lossy(&s).into_owned());
        let status = core()
            .login()
            .status(&lossy(&loginId), secret.as_deref())
            .map_err(|e| to_php(e, "QrPush\\Login::status", &[]))?;
        let mut a = status_array(&status).map_err(internal)?;
        if let Some(ticket) = &status.ticket {
            a.insert("ticket", ticket.value.expose())
                .map_err(internal)?;
            a.insert("approver_name", ticket.approver_name.as_str())
                .map_err(internal)?;
        }
        Ok(a)
    }
}

/// The login state machine over the request's default client (see `facade`).
fn core() -> DefaultLogin {
    DefaultLogin(facade::client())
}

/// Owns the default client while a login call borrows it.
struct DefaultLogin(Arc<Client>);

impl DefaultLogin {
    fn login(&self) -> CoreLogin<'_> {
        CoreLogin::new(&self.0)
    }
}

/// The documented status array (see the stub's `QrPush\Login::status()`).
fn status_array(s: &Status) -> ext_php_rs::error::Result<ZBox<ZendHashTable>> {
    let mut a = ZendHashTable::new();
    a.insert("id", s.id.as_str())?;
    a.insert("state", s.state.as_str())?;
    a.insert("version", s.version)?;
    a.insert("created_at_ms", s.created_at_ms)?;
    a.insert("expires_at_ms", s.expires_at_ms)?;
    a.insert("channel", s.channel.as_str())?;
    Ok(a)
}

/// A user id must be valid UTF-8 text (it is compared byte for byte and returned by redeem()).
fn user_id(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid("must be valid UTF-8").about(Subject::UserId))
}

/// A display name must be valid UTF-8 text (the browser shows it).
fn display_name(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid("must be valid UTF-8").about(Subject::DisplayName))
}

/// Text from request data that may be any bytes. Tokens are base64url, so a string that is not
/// UTF-8 can never match one: replacing its bad bytes changes no outcome.
fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn internal(e: ext_php_rs::error::Error) -> PhpException {
    PhpException::from_message(format!("QrPush\\Login: building the result failed: {e}"))
}
