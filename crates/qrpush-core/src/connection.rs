//! One Redis connection: open (connect + AUTH + SELECT + CLIENT SETNAME in one round trip), send
//! pipelined commands within a deadline, read their replies, and say whether it may be reused.
//!
//! RESP is the `redis` crate's job (command packing, reply parsing); this layer owns the socket
//! because the guarantees QrPush makes live here: a liveness check before writing, a deadline
//! on every read, and knowing whether command bytes may have reached the server (a PUBLISH that
//! may have been delivered is never re-sent).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use redis::Value;

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::stream::Stream;

pub struct Connection {
    stream: Stream,
    parser: redis::Parser,
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
            parser: redis::Parser::new(),
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
        self.pid == crate::process::current_pid() && self.stream.is_alive()
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
        while written < self.out.len() {
            if Instant::now() >= deadline {
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

    fn read_reply(&mut self, deadline: Instant) -> Result<Value> {
        self.bound_reads(deadline)?;
        self.parser.parse_value(&mut self.stream).map_err(|e| {
            if e.is_timeout() {
                Error::new(
                    ErrorKind::Timeout,
                    format!("Redis at {} did not answer in time", self.label),
                )
                .with_hint("qrpush.timeout; is the server overloaded or stopped?")
            } else if e.is_io_error() || e.is_connection_dropped() {
                Error::new(
                    ErrorKind::Connection,
                    format!("connection to Redis at {} lost: {e}", self.label),
                )
            } else {
                Error::new(
                    ErrorKind::Protocol,
                    format!("invalid reply from Redis at {}: {e}", self.label),
                )
            }
        })
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
