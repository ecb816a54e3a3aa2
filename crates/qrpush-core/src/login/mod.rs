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
//! and changes nothing, publishes nothing. Invalid arguments are about [`Subject::UserId`],
//! [`Subject::DeviceInfo`] or [`Subject::BrowserIp`].
//!
//! Redis holds per login one hash, `qrpush:login:<sha256(login id)>`: state, version, creation
//! time, deadline, the scanning user and device, the browser's IP and user agent, and SHA-256
//! hashes of the QR token, the browser secret and the ticket — never a secret itself, nor the id.
//!
//! Events are JSON, built by the script: `{"v":1,"type":..,"loginId":..,["sessionId":..,]
//! "seq":<state version>,"ts":<Redis time, ms>,"data":{..}}`, after `channel_prefix` on
//! `login_channel` (mode `single`, the single-channel format: every event carries `sessionId`,
//! the login id, to route on) or on `login_channel:<id>` (`per_login`). php/README.md documents
//! the schema, the flow and the security notes.
//!
//! The QR code's text is `<login id>.<QR token>`: the id tells which key to touch, so every script
//! declares its one key (no id→QR mapping key, no plaintext id stored anywhere).

pub mod gateway_token;
pub mod random;
mod script;
pub mod wire;

use std::fmt;
use std::time::Duration;

use crate::client::Client;
use crate::config::LoginChannelMode;
pub use crate::error::LoginError;
use crate::error::{Error, ErrorKind, Result, Subject};
use crate::secret::Secret;
use script::{Accepted, Browser, Operation, Redeemer, Reply, Returned, TicketStored};

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
    /// The WebSocket gateway's handshake token for this login (see [`gateway_token`]); `None` when the
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
        check_len(browser_ip, MAX_IP).map_err(|e| e.about(Subject::BrowserIp))?;
        let user_agent = truncate(user_agent, MAX_USER_AGENT);
        let id = random::new_id()?;
        let qr_token = random::new_secret()?;
        let browser_secret = random::new_secret()?;
        let qr_hash = random::hash(qr_token.as_bytes());
        let secret_hash = random::hash(browser_secret.as_bytes());
        let (status, ()) = self.call(
            &id,
            Operation::Start,
            &[
                qr_hash.as_bytes(),
                secret_hash.as_bytes(),
                browser_ip.as_bytes(),
                user_agent.as_bytes(),
            ],
        )?;
        let gateway_token = self.gateway_token(&status);
        Ok(Started {
            status,
            qr: Secret::new(random::qr_text(&id, &qr_token)),
            browser_secret: Secret::new(browser_secret),
            gateway_token,
        })
    }

    /// The gateway token of a new login, signed with `gateway_secret` (`None` without one). It
    /// expires with the login's live life: created + pending TTL + approved TTL, on Redis's clock
    /// like every deadline of the login (the gateway allows for clock skew when it checks).
    fn gateway_token(&self, status: &Status) -> Option<Secret> {
        let config = self.client.config();
        let secret = config.gateway_secret.as_ref()?;
        let live = config
            .login_pending_ttl
            .saturating_add(config.login_approved_ttl)
            .as_millis();
        let expires_at_ms = status
            .created_at_ms
            .saturating_add(i64::try_from(live).unwrap_or(i64::MAX));
        let key = gateway_token::Key::new(secret.expose().as_bytes());
        Some(Secret::new(gateway_token::issue(
            &key,
            &status.id,
            expires_at_ms,
        )))
    }

    /// The phone scanned `qr`: binds the login to `user_id` (pending → scanned).
    pub fn scan(&self, qr: &str, user_id: &str, device_info: &str) -> Result<ScanInfo> {
        check_user_id(user_id)?;
        check_len(device_info, MAX_DEVICE_INFO).map_err(|e| e.about(Subject::DeviceInfo))?;
        let Some((id, qr_token)) = random::split_qr(qr) else {
            return Err(refused(LoginError::NotFound, Operation::Scan, None));
        };
        let qr_hash = random::hash(qr_token.as_bytes());
        let (status, browser): (_, Browser) = self.call(
            id,
            Operation::Scan,
            &[
                qr_hash.as_bytes(),
                user_id.as_bytes(),
                device_info.as_bytes(),
            ],
        )?;
        Ok(ScanInfo {
            status,
            browser_ip: browser.ip,
            browser_user_agent: browser.user_agent,
        })
    }

    /// The scanning user confirms (scanned → approved): publishes the new one-time ticket.
    pub fn approve(&self, id: &str, user_id: &str) -> Result<Status> {
        check_user_id(user_id)?;
        let id = known_id(id, Operation::Approve)?;
        let ticket = random::new_secret()?;
        let ticket_hash = random::hash(ticket.as_bytes());
        let (status, ()) = self.call(
            id,
            Operation::Approve,
            &[
                user_id.as_bytes(),
                ticket.as_bytes(),
                ticket_hash.as_bytes(),
            ],
        )?;
        Ok(status)
    }

    /// The scanning user declines (scanned → rejected).
    pub fn reject(&self, id: &str, user_id: &str) -> Result<Status> {
        check_user_id(user_id)?;
        let id = known_id(id, Operation::Reject)?;
        let (status, ()) = self.call(id, Operation::Reject, &[user_id.as_bytes()])?;
        Ok(status)
    }

    /// The browser trades the ticket and its secret for the user id, once (approved → redeemed).
    pub fn redeem(&self, id: &str, ticket: &str, browser_secret: &str) -> Result<Redeemed> {
        let id = known_id(id, Operation::Redeem)?;
        let ticket_hash = random::hash(ticket.as_bytes());
        let secret_hash = random::hash(browser_secret.as_bytes());
        let (status, redeemer): (_, Redeemer) = self.call(
            id,
            Operation::Redeem,
            &[ticket_hash.as_bytes(), secret_hash.as_bytes()],
        )?;
        Ok(Redeemed {
            status,
            user_id: redeemer.user_id,
            device_info: redeemer.device_info,
        })
    }

    /// The browser gives up (pending/scanned/approved → cancelled).
    pub fn cancel(&self, id: &str, browser_secret: &str) -> Result<Status> {
        let id = known_id(id, Operation::Cancel)?;
        let secret_hash = random::hash(browser_secret.as_bytes());
        let (status, ()) = self.call(id, Operation::Cancel, &[secret_hash.as_bytes()])?;
        Ok(status)
    }

    /// The current state. A live login whose deadline passed becomes `expired` here (and the
    /// `expired` event is published). With the browser secret, an approved login also returns a
    /// new ticket (replacing the one of the `approved` event), so a browser that missed the
    /// event can still redeem.
    pub fn status(&self, id: &str, browser_secret: Option<&str>) -> Result<Status> {
        let id = known_id(id, Operation::Status)?;
        // Without the secret both are empty: the script then neither checks nor stores anything.
        let (secret_hash, ticket) = match browser_secret {
            Some(s) => (random::hash(s.as_bytes()), random::new_secret()?),
            None => (String::new(), String::new()),
        };
        let ticket_hash = if ticket.is_empty() {
            String::new()
        } else {
            random::hash(ticket.as_bytes())
        };
        let (mut status, TicketStored(stored)) = self.call(
            id,
            Operation::Status,
            &[secret_hash.as_bytes(), ticket_hash.as_bytes()],
        )?;
        if stored {
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
        format!("{KEY_PREFIX}{}", random::hash(id.as_bytes()))
    }

    /// Runs `operation` on login `id` with its own arguments `op_args`: the login's status after
    /// it and what it returns besides, or the refusal.
    fn call<R: Returned>(
        &self,
        id: &str,
        operation: Operation,
        op_args: &[&[u8]],
    ) -> Result<(Status, R)> {
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
            id.as_bytes(),
            channel.as_bytes(),
            with_session_id,
            pending.as_bytes(),
            approved.as_bytes(),
            terminal.as_bytes(),
        ];
        args.extend_from_slice(op_args);
        match script::run(self.client, operation, &Self::key(id), &args)? {
            Reply::Accepted(Accepted {
                state,
                version,
                created_ms,
                deadline_ms,
                returned,
            }) => {
                let status = Status {
                    id: id.to_string(),
                    state,
                    version,
                    created_at_ms: created_ms,
                    expires_at_ms: (state.is_live() && deadline_ms > 0).then_some(deadline_ms),
                    channel,
                    ticket: None,
                };
                Ok((status, returned))
            }
            Reply::Refused { why, state } => Err(refused(why, operation, state)),
        }
    }
}

/// The error of a refused call. Messages name the operation and the state, never a secret.
fn refused(why: LoginError, operation: Operation, state: Option<State>) -> Error {
    let op = operation.name();
    let message = match why {
        LoginError::NotFound => {
            format!("{op}: no such login (unknown or forged id or QR code, or expired and removed)")
        }
        LoginError::Expired => format!("{op}: the login expired"),
        LoginError::WrongState => {
            let state = state.map(State::as_str).unwrap_or_default();
            let needs = operation.needs();
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
fn known_id(id: &str, operation: Operation) -> Result<&str> {
    if random::is_id(id) {
        Ok(id)
    } else {
        Err(refused(LoginError::NotFound, operation, None))
    }
}

/// A user id: non-empty, at most [`MAX_USER_ID`] bytes, no control characters. Errors are about
/// [`Subject::UserId`].
fn check_user_id(user_id: &str) -> Result<()> {
    let check = || {
        if user_id.is_empty() {
            return Err(Error::invalid("must not be empty"));
        }
        check_len(user_id, MAX_USER_ID)?;
        if user_id.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(Error::invalid("must not contain control characters"));
        }
        Ok(())
    };
    check().map_err(|e| e.about(Subject::UserId))
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
