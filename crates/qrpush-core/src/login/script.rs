//! Running the login script: EVALSHA first, EVAL when Redis does not know the script yet, on one
//! pooled connection within the client's time bound.
//!
//! The fallback is never a duplicate: a NOSCRIPT reply means the script did not run at all.

use std::sync::OnceLock;

use redis::Value;
use sha1::{Digest, Sha1};

use super::State;
use crate::client::Client;
use crate::cluster::slot;
use crate::connection::{server_error, Packer};
use crate::error::{Error, ErrorKind, LoginError, Result};

/// The state machine (see the file for its protocol and its replies).
pub const SOURCE: &str = include_str!("login.lua");

/// The script's SHA-1 in lowercase hex, as EVALSHA names it.
pub fn sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| sha1_hex(SOURCE))
}

/// The script's operations (its ARGV[1]): one per transition, and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Scan,
    Approve,
    Reject,
    Redeem,
    Cancel,
    Status,
}

impl Operation {
    /// The name the script and the messages use.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Scan => "scan",
            Operation::Approve => "approve",
            Operation::Reject => "reject",
            Operation::Redeem => "redeem",
            Operation::Cancel => "cancel",
            Operation::Status => "status",
        }
    }

    /// The states the operation accepts a login in, for the message that refuses another one.
    pub fn needs(self) -> &'static str {
        match self {
            Operation::Scan => "pending",
            Operation::Approve | Operation::Reject => "scanned",
            Operation::Redeem => "approved",
            Operation::Start | Operation::Cancel | Operation::Status => {
                "pending, scanned or approved"
            }
        }
    }
}

/// The script's answer to an accepted call: the login after it, and what the operation returns
/// besides (`R`: see [`Returned`]).
#[derive(Debug)]
pub struct Accepted<R> {
    pub state: State,
    pub version: i64,
    pub created_ms: i64,
    /// The deadline of a live login (Redis time, ms); 0 once it is finished.
    pub deadline_ms: i64,
    pub returned: R,
}

/// What the script answered.
#[derive(Debug)]
pub enum Reply<R> {
    Accepted(Accepted<R>),
    /// The call was refused and nothing changed; `state` is the login's, when it has one.
    Refused {
        why: LoginError,
        state: Option<State>,
    },
}

/// What an operation returns besides the login's state: the last two fields of the script's
/// `ok` reply, which mean something else per operation (empty where they mean nothing).
pub trait Returned: Sized {
    fn from_fields(first: String, second: String) -> Self;
}

/// Nothing (start, approve, reject, cancel).
impl Returned for () {
    fn from_fields(_: String, _: String) -> Self {}
}

/// What `scan` returns: the browser that asks to log in, for the phone to show.
#[derive(Debug)]
pub struct Browser {
    pub ip: String,
    pub user_agent: String,
}

impl Returned for Browser {
    fn from_fields(ip: String, user_agent: String) -> Self {
        Browser { ip, user_agent }
    }
}

/// What `redeem` returns: who logged in.
#[derive(Debug)]
pub struct Redeemer {
    pub user_id: String,
    pub device_info: String,
}

impl Returned for Redeemer {
    fn from_fields(user_id: String, device_info: String) -> Self {
        Redeemer {
            user_id,
            device_info,
        }
    }
}

/// What `status` returns to the browser of an approved login (asked with its secret): that it
/// stored a new ticket, and the approver's display name. `None` otherwise.
#[derive(Debug)]
pub struct ForBrowser(pub Option<String>);

impl Returned for ForBrowser {
    fn from_fields(stored: String, approver_name: String) -> Self {
        ForBrowser((stored == "1").then_some(approver_name))
    }
}

/// Runs `operation` on the login hash and the other keys it declares (`keys`, the login's
/// first): ARGV is the operation's name, then `args` (the login id, channel and TTLs, then the
/// operation's own). Decodes the reply.
pub fn run<R: Returned>(
    client: &Client,
    operation: Operation,
    keys: &[&str],
    args: &[&[u8]],
) -> Result<Reply<R>> {
    let mut argv: Vec<&[u8]> = Vec::with_capacity(args.len() + 1);
    argv.push(operation.name().as_bytes());
    argv.extend_from_slice(args);
    let reply = eval(
        client,
        (SOURCE, sha()),
        keys,
        &argv,
        "the QrPush login script failed",
        event_reached_nobody,
    )?;
    decode(reply)
}

/// The per-user scan limit (see `scans.lua`).
pub const SCANS_SOURCE: &str = include_str!("scans.lua");

/// `scans.lua`'s SHA-1 in lowercase hex.
pub fn scans_sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| sha1_hex(SCANS_SOURCE))
}

/// A scan reserved under the per-user limit: the time `scans.lua` recorded (its `release` needs it).
#[derive(Debug, Clone)]
pub struct Reservation(String);

/// Reserves one scan of the user whose recent scans are in `key`, under `limit` per `window_ms`;
/// `None` when the user is at the limit (nothing changed).
pub fn reserve_scan(
    client: &Client,
    key: &str,
    limit: &str,
    window_ms: &str,
) -> Result<Option<Reservation>> {
    let reply = eval(
        client,
        (SCANS_SOURCE, scans_sha()),
        &[key],
        &[b"reserve", limit.as_bytes(), window_ms.as_bytes()],
        "the QrPush scan limit script failed",
        |_| false,
    )?;
    match reply {
        Value::BulkString(b) if b == b"rate_limited" => Ok(None),
        Value::BulkString(b) if !b.is_empty() && b.iter().all(u8::is_ascii_digit) => {
            Ok(Some(Reservation(String::from_utf8_lossy(&b).into_owned())))
        }
        other => Err(unexpected(&other)),
    }
}

/// Gives back a scan reserved by [`reserve_scan`] whose login transition was refused.
pub fn release_scan(client: &Client, key: &str, reservation: &Reservation) -> Result<()> {
    let reply = eval(
        client,
        (SCANS_SOURCE, scans_sha()),
        &[key],
        &[b"release", reservation.0.as_bytes()],
        "the QrPush scan limit script failed",
        |_| false,
    )?;
    match reply {
        Value::Int(_) => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// Runs a script (EVALSHA, then EVAL on NOSCRIPT, on the same connection) whose keys share
/// `keys[0]`'s slot: on Redis Cluster on that slot's primary (see [`Client::run_in_slot`]).
/// An error reply is an error, about `context`. A reply `unreceived` says published an event to
/// nobody asks, through Sentinel, whether the node is still the primary (see
/// [`Client::run_published`]).
fn eval(
    client: &Client,
    (source, sha): (&str, &str),
    keys: &[&str],
    argv: &[&[u8]],
    context: &str,
    unreceived: fn(&Value) -> bool,
) -> Result<Value> {
    let slot = slot::slot(keys[0].as_bytes());
    let op = |conn: &mut crate::connection::Connection, deadline, asking| {
        let script = |p: &mut Packer<'_>, by_sha: bool| {
            p.command(|cmd| {
                if by_sha {
                    cmd.arg("EVALSHA").arg(sha);
                } else {
                    cmd.arg("EVAL").arg(source);
                }
                cmd.arg(keys.len());
                for key in keys {
                    cmd.arg(*key);
                }
                for a in argv {
                    cmd.arg(*a);
                }
            })
        };
        let reply = conn.request_one_asking(deadline, asking, |p| script(p, true))?;
        let reply = match reply {
            Value::ServerError(e) if e.code() == "NOSCRIPT" => {
                conn.request_one_asking(deadline, asking, |p| script(p, false))?
            }
            other => other,
        };
        // An error reply fails the call inside the request, so that it counts in the stats and
        // a demoted primary's READONLY or a Cluster redirect retires the connection (and the
        // call goes to the right node, once).
        match reply {
            Value::ServerError(e) => Err(server_error(&e, context)),
            other => Ok(other),
        }
    };
    client.run_in_slot_published(slot, 0, op, unreceived, |_, e| e)
}

/// Whether `login.lua`'s reply says its event reached no subscriber (its last item is the
/// PUBLISH's count, -1 when the call published nothing).
fn event_reached_nobody(reply: &Value) -> bool {
    let Value::Array(items) = reply else {
        return false;
    };
    match items.last() {
        Some(Value::BulkString(b)) => b == b"0",
        Some(Value::Int(n)) => *n == 0,
        _ => false,
    }
}

fn sha1_hex(source: &str) -> String {
    Sha1::digest(source.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode<R: Returned>(reply: Value) -> Result<Reply<R>> {
    let items = match reply {
        Value::Array(items) => items,
        Value::ServerError(e) => return Err(server_error(&e, "the QrPush login script failed")),
        other => return Err(unexpected(&other)),
    };
    let text = |i: usize| -> Result<String> {
        match items.get(i) {
            Some(Value::BulkString(b)) => String::from_utf8(b.clone())
                .map_err(|_| protocol("the login script returned invalid UTF-8")),
            Some(Value::SimpleString(s)) => Ok(s.clone()),
            Some(Value::Int(n)) => Ok(n.to_string()),
            _ => Err(protocol("the login script returned a malformed reply")),
        }
    };
    let int = |i: usize| -> Result<i64> {
        text(i)?
            .parse()
            .map_err(|_| protocol("the login script returned a malformed number"))
    };
    let state = |i: usize| -> Result<State> {
        State::parse(&text(i)?)
            .ok_or_else(|| protocol("the login script returned an unknown state"))
    };
    match text(0)?.as_str() {
        "ok" if items.len() == 8 => Ok(Reply::Accepted(Accepted {
            state: state(1)?,
            version: int(2)?,
            created_ms: int(3)?,
            deadline_ms: int(4)?,
            returned: R::from_fields(text(5)?, text(6)?),
        })),
        "err" if items.len() == 4 => Ok(Reply::Refused {
            why: LoginError::from_name(&text(1)?)
                .ok_or_else(|| protocol("the login script refused a call for an unknown reason"))?,
            state: match text(2)?.as_str() {
                "" => None,
                _ => Some(state(2)?),
            },
        }),
        _ => Err(protocol("the login script returned a malformed reply")),
    }
}

fn protocol(message: &str) -> Error {
    Error::new(ErrorKind::Protocol, message)
}

fn unexpected(value: &Value) -> Error {
    // The reply is ours (no secrets in it), but keep the message short.
    let mut text = format!("{value:?}");
    text.truncate(120);
    Error::new(
        ErrorKind::Protocol,
        format!("unexpected reply to the login script: {text}"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha_is_sha1_hex() {
        assert_eq!(super::sha().len(), 40);
        assert!(super::sha().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(super::scans_sha().len(), 40);
        assert_ne!(super::sha(), super::scans_sha());
    }
}
