//! Running the login script: EVALSHA first, EVAL when Redis does not know the script yet, on one
//! pooled connection within the client's time bound.
//!
//! The fallback is never a duplicate: a NOSCRIPT reply means the script did not run at all.

use std::sync::OnceLock;

use redis::Value;
use sha1::{Digest, Sha1};

use crate::client::Client;
use crate::connection::server_error;
use crate::error::{Error, ErrorKind, Result};

/// The state machine (see the file for its protocol).
pub const SOURCE: &str = include_str!("login.lua");

/// The script's SHA-1 in lowercase hex, as EVALSHA names it.
pub fn sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| {
        Sha1::digest(SOURCE.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// What the script answered.
#[derive(Debug)]
pub enum Reply {
    /// `{"ok", state, version, created_ms, deadline_ms, a, b}`
    Ok {
        state: String,
        version: i64,
        created_ms: i64,
        deadline_ms: i64,
        a: String,
        b: String,
    },
    /// `{"err", reason, state}`: the call was refused and nothing changed.
    Refused { reason: String, state: String },
}

/// Runs the script on `key` with `args` (ARGV) and decodes its reply.
pub fn run(client: &Client, key: &str, args: &[&[u8]]) -> Result<Reply> {
    let reply = client.run(0, |conn, timeout| {
        let reply = conn.request_one(timeout, |p| {
            p.command(|cmd| {
                cmd.arg("EVALSHA").arg(sha()).arg(1).arg(key);
                for a in args {
                    cmd.arg(*a);
                }
            })
        })?;
        match reply {
            Value::ServerError(e) if e.code() == "NOSCRIPT" => conn.request_one(timeout, |p| {
                p.command(|cmd| {
                    cmd.arg("EVAL").arg(SOURCE).arg(1).arg(key);
                    for a in args {
                        cmd.arg(*a);
                    }
                })
            }),
            other => Ok(other),
        }
    })?;
    decode(reply)
}

fn decode(reply: Value) -> Result<Reply> {
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
    match text(0)?.as_str() {
        "ok" if items.len() == 7 => Ok(Reply::Ok {
            state: text(1)?,
            version: int(2)?,
            created_ms: int(3)?,
            deadline_ms: int(4)?,
            a: text(5)?,
            b: text(6)?,
        }),
        "err" if items.len() == 3 => Ok(Reply::Refused {
            reason: text(1)?,
            state: text(2)?,
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
    }
}
