//! One Redis connection: open (connect + AUTH + SELECT + CLIENT SETNAME in one round trip), send
//! pipelined commands within a deadline, read their replies, and say whether it may be reused.
//!
//! RESP is the `redis` crate's job (command packing, reply decoding) except on the publish hot
//! path, where PUBLISH is packed straight into the reused output buffer (`Packer::publish`)
//! and replies are framed in `reply.rs` (which says why). This layer owns the socket because the
//! guarantees QrPush makes live here: a liveness check before writing, a deadline on every read,
//! and knowing whether command bytes may have reached the server (a PUBLISH that may have been
//! delivered is never re-sent).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use redis::Value;

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::reply::ReplyBuffer;
use crate::stream::Stream;

pub struct Connection {
    stream: Stream,
    /// Bytes read and not yet consumed as replies.
    input: ReplyBuffer,
    /// The packed commands of the current request, and the command being built: both reused,
    /// so a publish on a warm connection allocates nothing for the command.
    out: Vec<u8>,
    cmd: redis::Cmd,
    /// What SO_RCVTIMEO is set to now; changed only when a deadline needs a shorter bound.
    read_timeout: Duration,
    /// Endpoint label for messages (no credentials).
    label: String,
    /// The process that opened the socket: after fork() only that process may use it.
    pid: u32,
}

impl Connection {
    /// Connects and logs in. The whole of it — TCP connect and the handshake replies — is bounded
    /// by `connect_timeout`; later commands by `timeout` each.
    pub fn open(endpoint: &Endpoint, connect_timeout: Duration, timeout: Duration) -> Result<Self> {
        let start = Instant::now();
        let label = endpoint.label();
        let stream = Stream::connect(&endpoint.address, connect_timeout).map_err(|e| {
            let err = Error::io(&e, "connecting to Redis at", &label);
            match err.kind() {
                ErrorKind::Timeout => {
                    err.with_hint("raise qrpush.connect_timeout if Redis is just slow")
                }
                _ => err.with_hint("is redis-server running and is qrpush.url right?"),
            }
        })?;
        let io_err = |e: io::Error| Error::io(&e, "configuring the socket to", &label);
        stream.set_write_timeout(timeout).map_err(io_err)?;
        stream.set_read_timeout(timeout).map_err(io_err)?;
        let pid = crate::process::current_pid();
        let label_for_errors = label.clone();
        let mut conn = Connection {
            stream,
            input: ReplyBuffer::new(),
            out: Vec::with_capacity(256),
            cmd: redis::Cmd::new(),
            read_timeout: timeout,
            label,
            pid,
        };

        // One round trip for the whole handshake: the replies come back in order.
        let mut steps = Vec::with_capacity(3);
        if let Some(password) = &endpoint.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &endpoint.username {
                auth.arg(user);
            }
            auth.arg(password.expose());
            auth.write_packed_command(&mut conn.out);
            steps.push("AUTH");
        }
        if endpoint.db != 0 {
            redis::cmd("SELECT")
                .arg(endpoint.db)
                .write_packed_command(&mut conn.out);
            steps.push("SELECT");
        }
        // Lets operators spot QrPush's connections (and which worker holds them) in CLIENT LIST.
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("qrpush-{pid}"))
            .write_packed_command(&mut conn.out);
        steps.push("CLIENT SETNAME");

        let deadline = start + connect_timeout;
        // The handshake is part of connecting: a timeout here is about connect_timeout.
        let handshake_error = |e: Error| match e.kind() {
            ErrorKind::Timeout => Error::new(
                ErrorKind::Timeout,
                format!("Redis at {label_for_errors} did not complete the login in time"),
            )
            .with_hint("qrpush.connect_timeout; is the server overloaded or stopped?"),
            _ => e,
        };
        conn.flush_out(deadline).map_err(handshake_error)?;
        for step in steps {
            match conn.read_reply(deadline).map_err(handshake_error)? {
                // A least-privilege ACL user may lack CLIENT (NOPERM), and some Redis-compatible
                // servers lack the command: naming is a courtesy, not a need. Any other error
                // (e.g. "max number of clients reached") is the real reason the login failed.
                Value::ServerError(e) if step == "CLIENT SETNAME" && is_optional_refusal(&e) => {}
                Value::ServerError(e) => {
                    return Err(server_error(&e, &format!("{step} to {}", conn.label)));
                }
                _ => {}
            }
        }
        Ok(conn)
    }

    /// True when this connection may carry the next command: opened by this process and still
    /// connected (checked without a round trip).
    pub fn is_reusable(&self) -> bool {
        self.pid == crate::process::current_pid()
            && !self.input.has_unread()
            && self.stream.is_alive()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends the commands that `pack` adds, then reads `replies` replies, all within `timeout`
    /// from now. Error replies are returned as `Value::ServerError` values: they leave the
    /// connection usable, and the caller decides what they mean.
    pub fn request(
        &mut self,
        timeout: Duration,
        replies: usize,
        pack: impl FnOnce(&mut Packer<'_>),
    ) -> Result<Vec<Value>> {
        self.pack(pack);
        let deadline = Instant::now() + timeout;
        self.flush_out(deadline)?;
        let mut values = Vec::with_capacity(replies);
        for _ in 0..replies {
            values.push(self.read_reply(deadline).map_err(Error::mark_maybe_sent)?);
        }
        Ok(values)
    }

    /// Same as `request` for exactly one reply, without the Vec.
    pub fn request_one(
        &mut self,
        timeout: Duration,
        pack: impl FnOnce(&mut Packer<'_>),
    ) -> Result<Value> {
        self.pack(pack);
        let deadline = Instant::now() + timeout;
        self.flush_out(deadline)?;
        self.read_reply(deadline).map_err(Error::mark_maybe_sent)
    }

    fn pack(&mut self, pack: impl FnOnce(&mut Packer<'_>)) {
        self.out.clear();
        pack(&mut Packer {
            cmd: &mut self.cmd,
            out: &mut self.out,
        });
    }

    /// Writes the whole buffer. Fails with `maybe_sent` once any byte was accepted by the kernel.
    fn flush_out(&mut self, deadline: Instant) -> Result<()> {
        let mut written = 0;
        // The first write needs no clock read: the deadline was just set (for the handshake, the
        // bounded connect just ended), and every write is bounded by SO_SNDTIMEO. Only a second
        // write, after a short or interrupted one, checks it.
        let mut first_write = true;
        while written < self.out.len() {
            if !std::mem::take(&mut first_write) && Instant::now() >= deadline {
                let err = Error::new(
                    ErrorKind::Timeout,
                    format!("sending to Redis at {} timed out", self.label),
                );
                return Err(if written > 0 {
                    err.mark_maybe_sent()
                } else {
                    err
                });
            }
            match self.stream.write(&self.out[written..]) {
                Ok(0) => {
                    let err = Error::new(
                        ErrorKind::Connection,
                        format!("connection to Redis at {} closed while sending", self.label),
                    );
                    return Err(if written > 0 {
                        err.mark_maybe_sent()
                    } else {
                        err
                    });
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let err = Error::io(&e, "sending to Redis at", &self.label);
                    return Err(if written > 0 {
                        err.mark_maybe_sent()
                    } else {
                        err
                    });
                }
            }
        }
        Ok(())
    }

    /// The next reply, reading as much as it takes, each read bounded by `deadline`.
    fn read_reply(&mut self, deadline: Instant) -> Result<Value> {
        loop {
            match self.input.next_reply() {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {
                    self.bound_reads(deadline)?;
                    self.read_more()?;
                }
                Err(why) => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("invalid reply from Redis at {}: {why}", self.label),
                    ))
                }
            }
        }
    }

    /// One `read()` into the input buffer.
    fn read_more(&mut self) -> Result<()> {
        loop {
            match self.stream.read(self.input.spare()) {
                Ok(0) => {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!(
                            "connection to Redis at {} lost: closed by the server",
                            self.label
                        ),
                    ))
                }
                Ok(n) => {
                    self.input.filled(n);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // SO_RCVTIMEO expired: WouldBlock on Unix, TimedOut on Windows.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!("Redis at {} did not answer in time", self.label),
                    )
                    .with_hint("qrpush.timeout; is the server overloaded or stopped?"))
                }
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        format!("connection to Redis at {} lost: {e}", self.label),
                    ))
                }
            }
        }
    }

    /// Makes the socket's read timeout match the time left until `deadline`, so no single read
    /// can block past it (nor give up early because an earlier, shorter deadline left a smaller
    /// bound behind). A setsockopt costs a syscall, so it is only made when the two differ by more
    /// than an eighth: on a warm connection the configured timeout already fits.
    fn bound_reads(&mut self, deadline: Instant) -> Result<()> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("Redis at {} did not answer in time", self.label),
            ));
        }
        let slack = self.read_timeout / 8;
        if remaining + slack < self.read_timeout || remaining > self.read_timeout + slack {
            self.stream
                .set_read_timeout(remaining)
                .map_err(|e| Error::io(&e, "configuring the socket to", &self.label))?;
            self.read_timeout = remaining;
        }
        Ok(())
    }
}

/// Appends packed commands to a connection's output buffer, reusing one `redis::Cmd`.
pub struct Packer<'a> {
    cmd: &'a mut redis::Cmd,
    out: &'a mut Vec<u8>,
}

impl Packer<'_> {
    /// Adds `PUBLISH <prefix><channel> <payload>`, packed straight into the output buffer: the
    /// hot-path twin of `command`. `redis::Cmd` would copy every argument once more and cost ~700
    /// instructions per PUBLISH; a test checks that both pack the same bytes.
    pub fn publish(&mut self, prefix: &[u8], channel: &[u8], payload: &[u8]) {
        const HEAD: &[u8] = b"*3\r\n$7\r\nPUBLISH\r\n";
        let mut channel_len = itoa::Buffer::new();
        let channel_len = channel_len.format(prefix.len() + channel.len()).as_bytes();
        let mut payload_len = itoa::Buffer::new();
        let payload_len = payload_len.format(payload.len()).as_bytes();
        let out = &mut *self.out;
        out.reserve(
            HEAD.len()
                + 2 * 5
                + channel_len.len()
                + prefix.len()
                + channel.len()
                + payload_len.len()
                + payload.len(),
        );
        out.extend_from_slice(HEAD);
        out.push(b'$');
        out.extend_from_slice(channel_len);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(prefix);
        out.extend_from_slice(channel);
        out.extend_from_slice(b"\r\n$");
        out.extend_from_slice(payload_len);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }

    /// Adds one command: `build` receives an empty command to add the name and arguments to.
    pub fn command(&mut self, build: impl FnOnce(&mut redis::Cmd)) {
        self.cmd.clear();
        build(self.cmd);
        self.cmd.write_packed_command(self.out);
    }
}

/// Refusals of an optional command that leave the connection fine to use.
fn is_optional_refusal(e: &redis::ServerError) -> bool {
    let detail = e.details().unwrap_or("");
    e.code() == "NOPERM" || (e.code() == "ERR" && detail.starts_with("unknown"))
}

/// A Redis error reply as our error. The message starts with Redis's error code, so callers can
/// match on it: "NOPERM User app has no permissions ... (PUBLISH to 127.0.0.1:6379)".
pub fn server_error(e: &redis::ServerError, context: &str) -> Error {
    let detail = e.details().map(|d| format!(" {d}")).unwrap_or_default();
    Error::new(
        ErrorKind::Server,
        format!("{}{detail} ({context})", e.code()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_packs_exactly_like_redis_cmd() {
        let long = vec![b'p'; 70_000];
        // (prefix, channel, payload, the channel argument redis::Cmd gets)
        type Case<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a str);
        let cases: &[Case] = &[
            (b"env:", b"chan", b"", "env:chan"),
            (b"", b"c", &long, "c"),
            (b"", b"x", b"hello", "x"),
        ];
        for (prefix, channel, payload, joined) in cases {
            let mut scratch = redis::Cmd::new();
            let mut out = Vec::new();
            Packer {
                cmd: &mut scratch,
                out: &mut out,
            }
            .publish(prefix, channel, payload);
            let want = redis::cmd("PUBLISH")
                .arg(*joined)
                .arg(*payload)
                .get_packed_command();
            assert_eq!(out, want);
        }
    }
}
