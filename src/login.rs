//! `final class QrPush\Login`: the QR-login state machine (`qrpush_core::login`) as static
//! methods over the default client, so every call uses the same pooled connections, time
//! bounds and `qrpush.*` settings as `QrPush::publish()`.
//!
//! String arguments are taken as bytes: a forged id, QR text, ticket or secret from an HTTP
//! request may be any bytes and must end in the login exception it deserves, not a TypeError.

// PHP's parameter names are the Rust ones: camelCase, as PHP code spells them.
#![allow(non_snake_case)]

use std::borrow::Cow;

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::ZendHashTable;
use qrpush_core::login::{
    check_browser_ip, check_device_info, check_user_id, Login as CoreLogin, Status,
};
use qrpush_core::Error;

use crate::exceptions::to_php;
use crate::facade;

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
        const F: &str = "QrPush\\Login::start";
        let ip = lossy(&browserIp);
        let ua = lossy(&userAgent);
        check_browser_ip(&ip).map_err(|e| to_php(e, &arg(F, 1, "browserIp")))?;
        let started = core().start(&ip, &ua).map_err(|e| to_php(e, F))?;
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
        const F: &str = "QrPush\\Login::scan";
        let user = user_id(&userId).map_err(|e| to_php(e, &arg(F, 2, "userId")))?;
        let device = lossy(&deviceInfo);
        check_device_info(&device).map_err(|e| to_php(e, &arg(F, 3, "deviceInfo")))?;
        let info = core()
            .scan(&lossy(&qr), user, &device)
            .map_err(|e| to_php(e, F))?;
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
    ) -> PhpResult<ZBox<ZendHashTable>> {
        const F: &str = "QrPush\\Login::approve";
        let user = user_id(&userId).map_err(|e| to_php(e, &arg(F, 2, "userId")))?;
        let status = core()
            .approve(&lossy(&loginId), user)
            .map_err(|e| to_php(e, F))?;
        status_array(&status).map_err(internal)
    }

    pub fn reject(
        loginId: BinarySlice<u8>,
        userId: BinarySlice<u8>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        const F: &str = "QrPush\\Login::reject";
        let user = user_id(&userId).map_err(|e| to_php(e, &arg(F, 2, "userId")))?;
        let status = core()
            .reject(&lossy(&loginId), user)
            .map_err(|e| to_php(e, F))?;
        status_array(&status).map_err(internal)
    }

    pub fn redeem(
        loginId: BinarySlice<u8>,
        ticket: BinarySlice<u8>,
        browserSecret: BinarySlice<u8>,
    ) -> PhpResult<String> {
        const F: &str = "QrPush\\Login::redeem";
        core()
            .redeem(&lossy(&loginId), &lossy(&ticket), &lossy(&browserSecret))
            .map(|r| r.user_id)
            .map_err(|e| to_php(e, F))
    }

    pub fn cancel(
        loginId: BinarySlice<u8>,
        browserSecret: BinarySlice<u8>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        const F: &str = "QrPush\\Login::cancel";
        let status = core()
            .cancel(&lossy(&loginId), &lossy(&browserSecret))
            .map_err(|e| to_php(e, F))?;
        status_array(&status).map_err(internal)
    }

    pub fn status(
        loginId: BinarySlice<u8>,
        browserSecret: Option<BinarySlice<u8>>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        const F: &str = "QrPush\\Login::status";
        let secret = browserSecret.map(|s| lossy(&s).into_owned());
        let status = core()
            .status(&lossy(&loginId), secret.as_deref())
            .map_err(|e| to_php(e, F))?;
        let mut a = status_array(&status).map_err(internal)?;
        if let Some(ticket) = &status.ticket {
            a.insert("ticket", ticket.expose()).map_err(internal)?;
        }
        Ok(a)
    }
}

fn core() -> CoreLogin<'static> {
    CoreLogin::new(facade::client())
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
    let text = std::str::from_utf8(bytes).map_err(|_| Error::invalid("must be valid UTF-8"))?;
    check_user_id(text)?;
    Ok(text)
}

/// Text from request data that may be any bytes. Tokens are base64url, so a string that is not
/// UTF-8 can never match one: replacing its bad bytes changes no outcome.
fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn internal(e: ext_php_rs::error::Error) -> PhpException {
    PhpException::from_message(format!("QrPush\\Login: building the result failed: {e}"))
}

/// `QrPush\Login::scan(): Argument #2 ($userId)`.
fn arg(func: &str, position: u32, name: &str) -> String {
    format!("{func}(): Argument #{position} (${name})")
}
