//! QR login, the publisher side: an atomic state machine in Redis that publishes every transition.
//!
//! ```text
//!  browser (app)             Redis                       phone (app, user logged in)
//!  start ───────────────▶ pending  (QR shown)
//!                            │ ◀──────────────────────── scan(qr, user)    → "scanned"
//!                         scanned  (phone shows browser IP/UA, user decides)
//!                            │ ◀──────────────────────── approve(id, user) → "approved" + ticket
//!                            │                           (or reject        → "rejected")
//!  redeem(id, ticket, ──▶ approved
//!        browser secret)     │
//!                         redeemed → user id, exactly once
//!  cancel(id, browser secret) ends a live login ("cancelled"); a passed deadline "expired".
//! ```
//!
//! Every call is one run of the Lua script (`login.lua`): it checks the state, writes the new state and
//! TTL, and PUBLISHes the event, so state and events never disagree and of two concurrent calls
//! only one can win a transition. A refused call fails with `ErrorKind::Login(`[`LoginError`]`)`
//! and changes nothing, publishes nothing.
//!
//! Redis holds per login one hash, `qrpush:login:<sha256(login id)>`: state, version, creation
//! time, deadline, the scanning user and device, the browser's IP and user agent, and SHA-256
//! hashes of the QR token, the browser secret and the ticket — never a secret itself, nor the id.
//!
//! Events are JSON, built by the script: `{"v":1,"type":..,"loginId":..,["sessionId":..,]
//! "seq":<state version>,"ts":<Redis time, ms>,"data":{..}}` on `login_channel` (mode `single`,
//! with `sessionId` for the seed's Ratchet server) or `login_channel:<id>` (`per_login`), after
//! `channel_prefix`. php/README.md documents the schema, the flow and the security notes.
//!
//! The QR code's text is `<login id>.<QR token>`: the id tells which key to touch, so every script
//! declares its one key (no id→QR mapping key, no plaintext id stored anywhere).

mod script;
pub mod secrets;
pub mod token;
pub mod wire;

use std::fmt;
use std::time::Duration;

use crate::client::Client;
use crate::config::LoginChannelMode;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// The key prefix of login hashes.
pub const KEY_PREFIX: &str = "qrpush:login:";
/// Longest accepted user id, in bytes.
pub const MAX_USER_ID: usize = 256;
/// Longest accepted device description, in bytes.
pub const MAX_DEVICE_INFO: usize = 1024;
/// Longest accepted browser IP text, in bytes.
pub const MAX_IP: usize = 64;
/// User agents are cut (at a character boundary) to this many bytes.
pub const MAX_USER_AGENT: usize = 512;

/// Why a login call was refused. Each has a stable code (the PHP exception's `getCode()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginError {
    /// No such login: a forged or mistyped id or QR code, or one that expired long enough ago
    /// to be removed (after `login_terminal_ttl`).
    NotFound,
    /// The login's deadline passed (it is, or just became, `expired`).
    Expired,
    /// The transition is not allowed from the login's current state.
    WrongState,
    /// Approve/reject by a user other than the one who scanned.
    WrongUser,
    /// The browser secret does not match.
    WrongSecret,
    /// The ticket does not match (a forged ticket, or one replaced by `status()`).
    WrongTicket,
    /// The login was already redeemed: a replayed ticket.
    TicketUsed,
}

impl LoginError {
    pub const ALL: [LoginError; 7] = [
        LoginError::NotFound,
        LoginError::Expired,
        LoginError::WrongState,
        LoginError::WrongUser,
        LoginError::WrongSecret,
        LoginError::WrongTicket,
        LoginError::TicketUsed,
    ];

    /// The stable code: 101..=107.
    pub fn code(self) -> i32 {
        match self {
            LoginError::NotFound => 101,
            LoginError::Expired => 102,
            LoginError::WrongState => 103,
            LoginError::WrongUser => 104,
            LoginError::WrongSecret => 105,
            LoginError::WrongTicket => 106,
            LoginError::TicketUsed => 107,
        }
    }

    fn from_reason(reason: &str) -> Option<Self> {
        Some(match reason {
            "not_found" => LoginError::NotFound,
            "expired" => LoginError::Expired,
            "wrong_state" => LoginError::WrongState,
            "wrong_user" => LoginError::WrongUser,
            "wrong_secret" => LoginError::WrongSecret,
            "wrong_ticket" => LoginError::WrongTicket,
            "ticket_used" => LoginError::TicketUsed,
            _ => return None,
        })
    }
}

/// The states of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Pending,
    Scanned,
    Approved,
    Rejected,
    Redeemed,
    Cancelled,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Scanned => "scanned",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Redeemed => "redeemed",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => State::Pending,
            "scanned" => State::Scanned,
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            "redeemed" => State::Redeemed,
            "cancelled" => State::Cancelled,
            "expired" => State::Expired,
            _ => return None,
        })
    }

    /// True while the login can still change (pending, scanned, approved).
    pub fn is_live(self) -> bool {
        matches!(self, State::Pending | State::Scanned | State::Approved)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new login, for the browser's app: show `qr`, set `browser_secret` as an HttpOnly cookie.
#[derive(Debug, Clone)]
pub struct Started {
    pub status: Status,
    /// The QR code's text: `<login id>.<QR token>`.
    pub qr: Secret,
    pub browser_secret: Secret,
    /// The WebSocket gateway's handshake token for this login (see [`token`]); `None` when the
    /// config has no `gateway_secret`.
    pub gateway_token: Option<Secret>,
}

/// A login's public state (what `status()` returns, and every transition).
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub id: String,
    pub state: State,
    /// Starts at 1 (pending) and grows by one per transition: an event's `seq`.
    pub version: i64,
    pub created_at_ms: i64,
    /// The deadline of a live login (Redis time, ms); `None` once it is finished.
    pub expires_at_ms: Option<i64>,
    /// The channel the login's events go to (with `channel_prefix`).
    pub channel: String,
    /// A new ticket: only from `status()` with the browser secret, in state approved.
    pub ticket: Option<Secret>,
}

/// What the phone shows before its user decides (the QRLJacking defence): which browser asks.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanInfo {
    pub status: Status,
    pub browser_ip: String,
    pub browser_user_agent: String,
}

/// A redeemed login: who logged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Redeemed {
    pub status: Status,
    pub user_id: String,
    pub device_info: String,
}

/// The login operations over a client's pool and time bounds.
pub struct Login<'a> {
    client: &'a Client,
}

impl<'a> Login<'a> {
    pub fn new(client: &'a Client) -> Self {
        Login { client }
    }

    /// Creates a pending login. `browser_ip` and `user_agent` are shown to the phone at scan.
    pub fn start(&self, browser_ip: &str, user_agent: &str) -> Result<Started> {
        check_browser_ip(browser_ip).map_err(|e| about("browser IP", e))?;
        let user_agent = truncate(user_agent, MAX_USER_AGENT);
        let id = secrets::new_id()?;
        let qr_token = secrets::new_secret()?;
        let browser_secret = secrets::new_secret()?;
        let qr_hash = secrets::hash(qr_token.as_bytes());
        let secret_hash = secrets::hash(browser_secret.as_bytes());
        let reply = self.call(
            &id,
            "start",
            &[
                qr_hash.as_bytes(),
                secret_hash.as_bytes(),
                browser_ip.as_bytes(),
                user_agent.as_bytes(),
            ],
        )?;
        let (status, _, _) = self.status_of(&id, reply, "start")?;
        let gateway_token = token::for_login(self.client.config(), &status).map(Secret::new);
        Ok(Started {
            status,
            qr: Secret::new(secrets::qr_text(&id, &qr_token)),
            browser_secret: Secret::new(browser_secret),
            gateway_token,
        })
    }

    /// The phone scanned `qr`: binds the login to `user_id` (pending → scanned).
    pub fn scan(&self, qr: &str, user_id: &str, device_info: &str) -> Result<ScanInfo> {
        check_user_id(user_id).map_err(|e| about("user id", e))?;
        check_device_info(device_info).map_err(|e| about("device info", e))?;
        let Some((id, qr_token)) = secrets::split_qr(qr) else {
            return Err(refused(LoginError::NotFound, "scan", ""));
        };
        let qr_hash = secrets::hash(qr_token.as_bytes());
        let reply = self.call(
            id,
            "scan",
            &[
                qr_hash.as_bytes(),
                user_id.as_bytes(),
                device_info.as_bytes(),
            ],
        )?;
        let (status, ip, ua) = self.status_of(id, reply, "scan")?;
        Ok(ScanInfo {
            status,
            browser_ip: ip,
            browser_user_agent: ua,
        })
    }

    /// The scanning user confirms (scanned → approved): publishes the new one-time ticket.
    pub fn approve(&self, id: &str, user_id: &str) -> Result<Status> {
        check_user_id(user_id).map_err(|e| about("user id", e))?;
        let id = known_id(id, "approve")?;
        let ticket = secrets::new_secret()?;
        let ticket_hash = secrets::hash(ticket.as_bytes());
        let reply = self.call(
            id,
            "approve",
            &[
                user_id.as_bytes(),
                ticket.as_bytes(),
                ticket_hash.as_bytes(),
            ],
        )?;
        Ok(self.status_of(id, reply, "approve")?.0)
    }

    /// The scanning user declines (scanned → rejected).
    pub fn reject(&self, id: &str, user_id: &str) -> Result<Status> {
        check_user_id(user_id).map_err(|e| about("user id", e))?;
        let id = known_id(id, "reject")?;
        let reply = self.call(id, "reject", &[user_id.as_bytes()])?;
        Ok(self.status_of(id, reply, "reject")?.0)
    }

    /// The browser trades the ticket and its secret for the user id, once (approved → redeemed).
    pub fn redeem(&self, id: &str, ticket: &str, browser_secret: &str) -> Result<Redeemed> {
        let id = known_id(id, "redeem")?;
        let ticket_hash = secrets::hash(ticket.as_bytes());
        let secret_hash = secrets::hash(browser_secret.as_bytes());
        let reply = self.call(
            id,
            "redeem",
            &[ticket_hash.as_bytes(), secret_hash.as_bytes()],
        )?;
        let (status, user_id, device_info) = self.status_of(id, reply, "redeem")?;
        Ok(Redeemed {
            status,
            user_id,
            device_info,
        })
    }

    /// The browser gives up (pending/scanned/approved → cancelled).
    pub fn cancel(&self, id: &str, browser_secret: &str) -> Result<Status> {
        let id = known_id(id, "cancel")?;
        let secret_hash = secrets::hash(browser_secret.as_bytes());
        let reply = self.call(id, "cancel", &[secret_hash.as_bytes()])?;
        Ok(self.status_of(id, reply, "cancel")?.0)
    }

    /// The current state. A live login whose deadline passed becomes `expired` here (and the
    /// `expired` event is published). With the browser secret, an approved login also returns a
    /// new ticket (replacing the one of the `approved` event), so a browser that missed the
    /// event can still redeem.
    pub fn status(&self, id: &str, browser_secret: Option<&str>) -> Result<Status> {
        let id = known_id(id, "status")?;
        let (secret_hash, ticket) = match browser_secret {
            Some(s) => (secrets::hash(s.as_bytes()), secrets::new_secret()?),
            None => (String::new(), String::new()),
        };
        let ticket_hash = if ticket.is_empty() {
            String::new()
        } else {
            secrets::hash(ticket.as_bytes())
        };
        let reply = self.call(
            id,
            "status",
            &[secret_hash.as_bytes(), ticket_hash.as_bytes()],
        )?;
        let (mut status, issued, _) = self.status_of(id, reply, "status")?;
        if issued == "1" {
            status.ticket = Some(Secret::new(ticket));
        }
        Ok(status)
    }

    /// The channel the events of login `id` go to, with `channel_prefix`.
    pub fn channel(&self, id: &str) -> String {
        let config = self.client.config();
        match config.login_channel_mode {
            LoginChannelMode::Single => {
                format!("{}{}", config.channel_prefix, config.login_channel)
            }
            LoginChannelMode::PerLogin => {
                format!("{}{}:{id}", config.channel_prefix, config.login_channel)
            }
        }
    }

    /// The Redis key of login `id`.
    pub fn key(id: &str) -> String {
        format!("{KEY_PREFIX}{}", secrets::hash(id.as_bytes()))
    }

    fn call(&self, id: &str, op: &str, op_args: &[&[u8]]) -> Result<script::Reply> {
        let config = self.client.config();
        let channel = self.channel(id);
        let ms = |d: Duration| d.as_millis().max(1).to_string();
        let (pending, approved, terminal) = (
            ms(config.login_pending_ttl),
            ms(config.login_approved_ttl),
            ms(config.login_terminal_ttl),
        );
        let with_session_id: &[u8] = match config.login_channel_mode {
            LoginChannelMode::Single => b"1",
            LoginChannelMode::PerLogin => b"0",
        };
        let mut args: Vec<&[u8]> = vec![
            op.as_bytes(),
            id.as_bytes(),
            channel.as_bytes(),
            with_session_id,
            pending.as_bytes(),
            approved.as_bytes(),
            terminal.as_bytes(),
        ];
        args.extend_from_slice(op_args);
        script::run(self.client, &Self::key(id), &args)
    }

    /// A script reply as the login's status plus the operation's two extra values.
    fn status_of(
        &self,
        id: &str,
        reply: script::Reply,
        op: &str,
    ) -> Result<(Status, String, String)> {
        match reply {
            script::Reply::Ok {
                state,
                version,
                created_ms,
                deadline_ms,
                a,
                b,
            } => {
                let state = State::parse(&state).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Protocol,
                        "the login script returned an unknown state",
                    )
                })?;
                let status = Status {
                    id: id.to_string(),
                    state,
                    version,
                    created_at_ms: created_ms,
                    expires_at_ms: (state.is_live() && deadline_ms > 0).then_some(deadline_ms),
                    channel: self.channel(id),
                    ticket: None,
                };
                Ok((status, a, b))
            }
            script::Reply::Refused { reason, state } => {
                let Some(why) = LoginError::from_reason(&reason) else {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        "the login script refused a call for an unknown reason",
                    ));
                };
                Err(refused(why, op, &state))
            }
        }
    }
}

/// The error of a refused call. Messages name the operation and the state, never a secret.
fn refused(why: LoginError, op: &str, state: &str) -> Error {
    let message = match why {
        LoginError::NotFound => {
            format!("{op}: no such login (unknown or forged id or QR code, or expired and removed)")
        }
        LoginError::Expired => format!("{op}: the login expired"),
        LoginError::WrongState => {
            let needs = match op {
                "scan" => "pending",
                "approve" | "reject" => "scanned",
                "redeem" => "approved",
                _ => "pending, scanned or approved",
            };
            format!("{op}: the login is {state}; {op} needs a {needs} login")
        }
        LoginError::WrongUser => format!("{op}: the login was scanned by another user"),
        LoginError::WrongSecret => format!("{op}: wrong browser secret"),
        LoginError::WrongTicket => format!("{op}: wrong ticket"),
        LoginError::TicketUsed => {
            format!("{op}: the login was already redeemed (the ticket was used)")
        }
    };
    Error::new(ErrorKind::Login(why), message)
}

/// A well-formed id, or NotFound without asking Redis (a forged id cannot exist).
fn known_id<'s>(id: &'s str, op: &str) -> Result<&'s str> {
    if secrets::is_id(id) {
        Ok(id)
    } else {
        Err(refused(LoginError::NotFound, op, ""))
    }
}

/// A user id: non-empty, at most [`MAX_USER_ID`] bytes, no control characters.
/// (Messages name no subject: callers add it, like the PHP binding's "Argument #2 ($userId)".)
pub fn check_user_id(user_id: &str) -> Result<()> {
    if user_id.is_empty() {
        return Err(Error::invalid("must not be empty"));
    }
    check_len(user_id, MAX_USER_ID)?;
    if user_id.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Error::invalid("must not contain control characters"));
    }
    Ok(())
}

/// The phone's description of itself: at most [`MAX_DEVICE_INFO`] bytes.
pub fn check_device_info(device_info: &str) -> Result<()> {
    check_len(device_info, MAX_DEVICE_INFO)
}

/// The browser's IP as the app saw it: at most [`MAX_IP`] bytes.
pub fn check_browser_ip(ip: &str) -> Result<()> {
    check_len(ip, MAX_IP)
}

fn check_len(value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(format!(
            "must be at most {max} bytes, got {}",
            value.len()
        )));
    }
    Ok(())
}

fn about(what: &str, e: Error) -> Error {
    Error::new(e.kind(), format!("{what} {}", e.message()))
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let codes: Vec<i32> = LoginError::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, vec![101, 102, 103, 104, 105, 106, 107]);
    }

    #[test]
    fn forged_ids_are_not_found_without_redis() {
        // The client points nowhere: a forged id must not even try to connect.
        let mut config = crate::Config::default();
        config.set("url", "redis://127.0.0.1:1").unwrap();
        let client = Client::new(config);
        let login = Login::new(&client);
        for id in [
            "",
            "x",
            "../../etc",
            &"A".repeat(23),
            "AAAAAAAAAAAAAAAAAAAAA+",
        ] {
            let e = login.status(id, None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Login(LoginError::NotFound), "{id:?}");
        }
        let e = login.scan("not a qr", "u", "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Login(LoginError::NotFound));
        let e = login.approve("AAAAAAAAAAAAAAAAAAAAAA", "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn truncate_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }

    #[test]
    fn channels() {
        let mut config = crate::Config::default();
        config.set("channel_prefix", "app:").unwrap();
        let client = Client::new(config.clone());
        assert_eq!(Login::new(&client).channel("ID"), "app:qr-login-events");
        config.set("login_channel_mode", "per_login").unwrap();
        let client = Client::new(config);
        assert_eq!(Login::new(&client).channel("ID"), "app:qr-login-events:ID");
    }
}
