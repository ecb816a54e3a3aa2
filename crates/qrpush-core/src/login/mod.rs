//! QR login, the publisher side: an atomic state machine in Redis that publishes every transition.
//!
//! ```text
//!  browser (app)             Redis                       phone (app, user logged in)
//!  start ───────────────▶ pending  (QR shown)
//!                            │ ◀──────────────────────── scan(qr, user)    → "scanned"
//!                         scanned  (phone shows browser IP/UA, user decides)
//!                            │ ◀──────────────────────── approve(id, user, display name)
//!                            │                             → "approved" + ticket; the phone
//!                            │                               shows the confirmation code
//!                            │                           (or reject        → "rejected")
//!  status(id, secret) ───▶ approved → the approver's display name and a ticket: the browser
//!                            │        asks "continue as <name>?" and for the phone's code
//!  redeem(id, ticket, ───▶   │
//!   browser secret, code) redeemed → user id, exactly once
//!  cancel(id, browser secret) ends a live login ("cancelled"); a passed deadline "expired".
//! ```
//!
//! The confirmation is the defence against a QR code scanned by someone else first (shoulder
//! surfing, a photo of the screen): whoever scans binds the login, so without it an attacker
//! who approves would log the victim's browser into the attacker's account (login CSRF). The
//! browser's user must type the code shown by the approving phone, which an attacker's phone
//! does not show the victim; [`MAX_CODE_TRIES`] wrong codes cancel the login. Scans are limited
//! per user (`login_scan_limit` per `login_scan_window`), which bounds how many browsers' IP
//! address and user agent one account can collect. docs/LOGIN-THREAT-MODEL.md has the whole
//! threat model.
//!
//! Every call is one run of the Lua script (`login.lua`): it checks the state, writes the new state and
//! TTL, and PUBLISHes the event, so state and events never disagree and of two concurrent calls
//! only one can win a transition. A scan is preceded by a reservation under the per-user limit
//! (`scans.lua`, on the user's key: see [`Login::scan`]). A refused call fails with `ErrorKind::Login(`[`LoginError`]`)`
//! and changes nothing, publishes nothing, but for the count of wrong confirmation codes.
//! Invalid arguments are about [`Subject::UserId`], [`Subject::DisplayName`],
//! [`Subject::DeviceInfo`] or [`Subject::BrowserIp`].
//!
//! Redis holds per login one hash, `qrpush:login:<sha256(login id)>` (on Redis Cluster
//! [`Login::cluster_key`], in the event channel's slot, published to with SPUBLISH in the
//! `sharded` mode): state, version, creation
//! time, deadline, the scanning user, device and display name, the browser's IP and user agent,
//! and SHA-256 hashes of the QR token, the browser secret, the ticket and the confirmation code
//! (with the id) — never a secret itself, nor the id. Per scanning user, one more hash,
//! `qrpush:login:scans:<sha256(user id)>`, holds the times of their scans within the window.
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
use crate::cluster::slot;
use crate::config::{ClusterPublish, LoginChannelMode};
pub use crate::error::LoginError;
use crate::error::{Error, ErrorKind, Result, Subject};
use crate::secret::Secret;
use script::{Accepted, Browser, ForBrowser, Operation, Redeemer, Reply, Returned};

/// The key prefix of login hashes.
pub const KEY_PREFIX: &str = "qrpush:login:";
/// The key prefix of a user's recent scans (inside [`KEY_PREFIX`], so one ACL key pattern
/// covers both; a login key never has a `:` after the prefix).
pub const SCANS_KEY_PREFIX: &str = "qrpush:login:scans:";
/// Longest accepted display name, in bytes.
pub const MAX_DISPLAY_NAME: usize = 128;
/// Wrong confirmation codes a login survives: the last one cancels it. With two-digit codes a
/// browser that guesses wins with probability at most 3 in 100.
pub const MAX_CODE_TRIES: u32 = 3;
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
    /// Only from `status()` with the browser secret, in state approved: a new ticket and who
    /// approved.
    pub ticket: Option<Ticket>,
}

/// What `status()` hands the browser of an approved login (it knows the browser secret): a new
/// ticket, and the approving account's display name, which the browser shows ("continue as
/// ...?") before it asks for the confirmation code and redeems.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub value: Secret,
    pub approver_name: String,
}

/// An approved login, for the phone: show `confirmation_code` to its user, who types it into
/// the browser (never into the phone).
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    pub status: Status,
    /// [`random::CODE_DIGITS`] decimal digits.
    pub confirmation_code: Secret,
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
        let config = self.client.config();
        // The limit's key is the user's, in another Redis Cluster slot than the login's, so it
        // cannot share the login script's atomic step. The order keeps the limit exact: first a
        // scan is reserved under the limit (atomically, so concurrent scans by one user never
        // pass it), then the login moves; when the move is refused the reservation is given
        // back. Counting after the move instead would let concurrent scans all pass before any
        // is counted. A reservation whose release fails (or whose move has an unknown outcome)
        // stays until its window passes: the limit errs on the side of fewer scans, never more.
        let reservation = match config.login_scan_limit {
            0 => None,
            limit => {
                let reserved = script::reserve_scan(
                    self.client,
                    &Self::scans_key(user_id),
                    &limit.to_string(),
                    &ms(config.login_scan_window),
                )?;
                match reserved {
                    Some(reservation) => Some(reservation),
                    None => return Err(Error::new(
                        ErrorKind::Login(LoginError::RateLimited),
                        format!(
                            "scan: this user already scanned {limit} logins within {} s, the most login_scan_limit allows; try again later",
                            config.login_scan_window.as_secs_f64()
                        ),
                    )),
                }
            }
        };
        let scanned: Result<(Status, Browser)> = self.call(
            id,
            Operation::Scan,
            &[
                qr_hash.as_bytes(),
                user_id.as_bytes(),
                device_info.as_bytes(),
            ],
        );
        let (status, browser) = match (scanned, reservation) {
            (Ok(scanned), _) => scanned,
            (Err(e), Some(reservation)) => {
                // Refused (or never sent): the login did not move, so the scan is not counted.
                // The caller gets the scan's own error; a failed release only keeps the
                // reservation (see above).
                if matches!(e.kind(), ErrorKind::Login(_)) || !e.maybe_sent() {
                    let _ =
                        script::release_scan(self.client, &Self::scans_key(user_id), &reservation);
                }
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        };
        Ok(ScanInfo {
            status,
            browser_ip: browser.ip,
            browser_user_agent: browser.user_agent,
        })
    }

    /// The scanning user confirms (scanned → approved): publishes the new one-time ticket, and
    /// returns the confirmation code for the phone to show. `display_name` is what the browser
    /// will show of the approving account before it redeems: not a secret (the browser's user
    /// may be someone else), so a name, never an email address or the user id if those are
    /// private.
    pub fn approve(&self, id: &str, user_id: &str, display_name: &str) -> Result<Approved> {
        check_user_id(user_id)?;
        check_text(display_name, MAX_DISPLAY_NAME).map_err(|e| e.about(Subject::DisplayName))?;
        let id = known_id(id, Operation::Approve)?;
        let ticket = random::new_secret()?;
        let ticket_hash = random::hash(ticket.as_bytes());
        let code = random::new_code()?;
        let code_hash = random::code_hash(id, &code);
        let (status, ()) = self.call(
            id,
            Operation::Approve,
            &[
                user_id.as_bytes(),
                ticket.as_bytes(),
                ticket_hash.as_bytes(),
                display_name.as_bytes(),
                code_hash.as_bytes(),
            ],
        )?;
        Ok(Approved {
            status,
            confirmation_code: Secret::new(code),
        })
    }

    /// The scanning user declines (scanned → rejected).
    pub fn reject(&self, id: &str, user_id: &str) -> Result<Status> {
        check_user_id(user_id)?;
        let id = known_id(id, Operation::Reject)?;
        let (status, ()) = self.call(id, Operation::Reject, &[user_id.as_bytes()])?;
        Ok(status)
    }

    /// The browser trades the ticket, its secret and the confirmation code its user typed for
    /// the user id, once (approved → redeemed). A wrong code is refused ([`LoginError::WrongCode`])
    /// and counted; the last of [`MAX_CODE_TRIES`] wrong codes cancels the login.
    pub fn redeem(
        &self,
        id: &str,
        ticket: &str,
        browser_secret: &str,
        confirmation_code: &str,
    ) -> Result<Redeemed> {
        let id = known_id(id, Operation::Redeem)?;
        let ticket_hash = random::hash(ticket.as_bytes());
        let secret_hash = random::hash(browser_secret.as_bytes());
        let code_hash = random::code_hash(id, confirmation_code);
        let max_tries = MAX_CODE_TRIES.to_string();
        let (status, redeemer): (_, Redeemer) = self.call(
            id,
            Operation::Redeem,
            &[
                ticket_hash.as_bytes(),
                secret_hash.as_bytes(),
                code_hash.as_bytes(),
                max_tries.as_bytes(),
            ],
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
    /// event can still redeem, and the approver's display name, for the browser to confirm.
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
        let (mut status, ForBrowser(approver_name)) = self.call(
            id,
            Operation::Status,
            &[secret_hash.as_bytes(), ticket_hash.as_bytes()],
        )?;
        status.ticket = approver_name.map(|approver_name| Ticket {
            value: Secret::new(ticket),
            approver_name,
        });
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

    /// The Redis key of login `id` on one server or behind Sentinel.
    pub fn key(id: &str) -> String {
        format!("{KEY_PREFIX}{}", random::hash(id.as_bytes()))
    }

    /// The Redis key of login `id` on Redis Cluster, whose events go to `channel` (with
    /// `channel_prefix`): `{<tag>}` puts it in the channel's slot ([`slot::tag_for_slot`]), so
    /// one script run touches one slot (and its SPUBLISH is allowed there). The channel's name
    /// stays the same as anywhere else; the key holds no login id, as anywhere else.
    pub fn cluster_key(id: &str, channel: &str) -> String {
        let tag = slot::tag_for_slot(slot::slot(channel.as_bytes()));
        format!("{KEY_PREFIX}{{{tag}}}{}", random::hash(id.as_bytes()))
    }

    /// The Redis key of the recent scans of `user_id` (hashed: no user id in key names).
    pub fn scans_key(user_id: &str) -> String {
        format!("{SCANS_KEY_PREFIX}{}", random::hash(user_id.as_bytes()))
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
        let (pending, approved, terminal) = (
            ms(config.login_pending_ttl),
            ms(config.login_approved_ttl),
            ms(config.login_terminal_ttl),
        );
        let with_session_id: &[u8] = match config.login_channel_mode {
            LoginChannelMode::Single => b"1",
            LoginChannelMode::PerLogin => b"0",
        };
        // On Redis Cluster the key is in the channel's slot: SPUBLISH runs there, with the key.
        let publish: &[u8] =
            match self.client.is_cluster() && config.cluster_publish == ClusterPublish::Sharded {
                true => b"SPUBLISH",
                false => b"PUBLISH",
            };
        let mut args: Vec<&[u8]> = vec![
            id.as_bytes(),
            channel.as_bytes(),
            with_session_id,
            publish,
            pending.as_bytes(),
            approved.as_bytes(),
            terminal.as_bytes(),
        ];
        args.extend_from_slice(op_args);
        let key = match self.client.is_cluster() {
            true => Self::cluster_key(id, &channel),
            false => Self::key(id),
        };
        match script::run(self.client, operation, &[&key], &args)? {
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
        LoginError::WrongCode if state == Some(State::Cancelled) => format!(
            "{op}: wrong confirmation code, the last of {MAX_CODE_TRIES} tries: the login is cancelled"
        ),
        LoginError::WrongCode => format!(
            "{op}: wrong confirmation code (the code the approving phone shows; {MAX_CODE_TRIES} wrong codes cancel the login)"
        ),
        LoginError::RateLimited => format!("{op}: too many scans by this user"),
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
    check_text(user_id, MAX_USER_ID).map_err(|e| e.about(Subject::UserId))
}

/// Non-empty, at most `max` bytes, no control characters.
fn check_text(text: &str, max: usize) -> Result<()> {
    if text.is_empty() {
        return Err(Error::invalid("must not be empty"));
    }
    check_len(text, max)?;
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Error::invalid("must not contain control characters"));
    }
    Ok(())
}

/// Milliseconds as the script takes them: at least 1 (a zero TTL would expire at once).
fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
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
        let e = login
            .approve("AAAAAAAAAAAAAAAAAAAAAA", "", "Alice")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        for (name, detail) in [
            ("", "must not be empty"),
            ("A\nB", "must not contain control characters"),
            (&"x".repeat(129), "must be at most 128 bytes, got 129"),
        ] {
            let e = login
                .approve("AAAAAAAAAAAAAAAAAAAAAA", "alice", name)
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert_eq!(e.subject(), Some(Subject::DisplayName));
            assert_eq!(e.message(), format!("display name {detail}"));
        }
        let e = login.redeem("forged", "t", "s", "12").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Login(LoginError::NotFound));
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
