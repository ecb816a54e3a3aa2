//! One Redis connection: open (connect + AUTH + SELECT + CLIENT SETNAME + the role check in one
//! round trip), send pipelined commands before a deadline, read their replies, and say whether it
//! may be reused.
//!
//! RESP is the `redis` crate's job (command packing, reply decoding) except on the publish hot
//! path, where PUBLISH is packed straight into the reused output buffer (`Packer::publish`)
//! and replies are framed in `reply.rs` (which says why). This layer owns the socket because the
//! guarantees QrPush makes live here: a liveness check before writing, the caller's deadline on
//! every read and write, and knowing whether command bytes may have reached the server (a PUBLISH
//! that may have been delivered is never re-sent).
//!
//! **Only through a primary.** A replica accepts PUBLISH and hands it to its own subscribers only:
//! after a failover, a connection left on the demoted primary would "succeed" with 0 receivers
//! while the subscribers listen on the new one. So a new connection asks `ROLE` during the
//! handshake and refuses a replica (or a Sentinel) with a `Replica` error. A pooled connection can
//! be demoted under our feet (`REPLICAOF` does not close clients), so every PUBLISH request also
//! carries `WAIT 0 0` behind it, in the same write: on a primary it answers at once (`:<replicas>`),
//! on a replica it is an error. Its reply is one more integer to frame, no syscall and no round
//! trip; a PUBLISH that a replica answered with 0 receivers reached nobody and may be sent again on
//! another connection. A user the ACL denies `ROLE` or `WAIT` (the documented least-privilege line
//! grants both) gets neither check on its connections.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use redis::Value;

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::reply::ReplyBuffer;
use crate::resolve;
use crate::stream::Stream;

/// A blocking read or write may end this much after the deadline: the socket timeouts are only
/// changed (a syscall each) when they differ from the time left by more than this, which on a
/// warm connection they never do.
pub const SOCKET_TIMEOUT_SLACK: Duration = Duration::from_millis(2);
/// A batch's commands are written whenever this much is packed, so the output buffer never holds
/// a whole large batch at once.
const WRITE_CHUNK: usize = 64 * 1024;
/// After a request that grew the output buffer past this, the memory is given back.
const OUT_KEPT: usize = 2 * WRITE_CHUNK;
const OUT_INITIAL: usize = 256;
/// A request this small goes out in one write that cannot block on a live connection (nothing of
/// ours is queued behind it), so the read after it may use the socket bound set just before.
const QUICK_WRITE: usize = 4096;
/// `WAIT 0 0`: the primary check sent behind every publish request (see the module's notes).
const PRIMARY_PROBE: &[u8] = b"*3\r\n$4\r\nWAIT\r\n$1\r\n0\r\n$1\r\n0\r\n";

pub struct Connection {
    stream: Stream,
    /// Bytes read and not yet consumed as replies.
    input: ReplyBuffer,
    /// The packed commands of the current request, and the command being built: both reused,
    /// so a publish on a warm connection allocates nothing for the command.
    out: Vec<u8>,
    cmd: redis::Cmd,
    /// What SO_RCVTIMEO and SO_SNDTIMEO are both set to now; changed only when a deadline needs
    /// another bound (see `bound_io`).
    io_timeout: Duration,
    /// Endpoint label for messages (no credentials).
    label: String,
    /// The process that opened the socket: after fork() only that process may use it.
    pid: u32,
    /// When it was last lent (the borrowing call's start): how long it has been idle.
    last_used: Instant,
    /// Publish requests carry the primary check (the server answered `WAIT` during the handshake).
    primary_probe_enabled: bool,
    /// Cleared when the connection must not carry another command although no error was returned
    /// (a publish delivered by a server that turned out to be a replica).
    usable: bool,
}

/// Commands written by [`Connection::write_request`], whose replies are still to be read.
#[must_use = "the replies must be read, or the connection discarded"]
pub(crate) struct Sent {
    deadline: Instant,
    /// One quick write: the socket's bound is still fresh for the first read.
    quick: bool,
}

impl Sent {
    /// For replies read after other work (other connections' writes and reads): the socket's
    /// bound, set when writing, would let the first read run past the deadline; it is set again.
    pub(crate) fn read_later(self) -> Sent {
        Sent {
            quick: false,
            ..self
        }
    }
}

/// The reply to one PUBLISH request, and whether the server is still the primary.
pub struct Published<T> {
    pub replies: T,
    /// False when the primary check failed: the server is a replica now, or its answer was lost.
    /// The connection is then unusable.
    pub on_primary: bool,
}

/// The replies of a pipelined batch, as far as they could be read.
pub struct BatchReplies {
    /// The replies read, in order; fewer than the commands when `failure` is set.
    pub values: Vec<Value>,
    /// Why the remaining replies could not be read (the connection failed, `maybe_sent`).
    pub failure: Option<Error>,
}

impl Connection {
    /// Connects and logs in, all before `deadline` (the call's `connect_timeout`): the name lookup,
    /// the TCP or Unix connect, TLS, and the handshake replies.
    pub fn open(endpoint: &Endpoint, deadline: Instant) -> Result<Self> {
        Self::open_checked(endpoint, deadline, true)
    }

    /// `open` without the role checks, for a server that is no data node: a Sentinel, which
    /// answers ROLE with `sentinel` and is only asked where the primary is.
    pub fn open_to_sentinel(endpoint: &Endpoint, deadline: Instant) -> Result<Self> {
        Self::open_checked(endpoint, deadline, false)
    }

    fn open_checked(endpoint: &Endpoint, deadline: Instant, primary_only: bool) -> Result<Self> {
        let label = endpoint.label();
        let stream = Stream::connect(&endpoint.address, deadline).map_err(|e| {
            let err = Error::io(&e, "connecting to Redis at", &label);
            if err.kind() != ErrorKind::Timeout {
                return err.with_hint("is redis-server running and is qrpush.url right?");
            }
            // Our own timeouts say which step ran out of time (the name lookup, a full listen
            // backlog, the TLS handshake); the OS's say nothing more than "timed out".
            let err = match e.get_ref() {
                Some(why) => Error::new(
                    ErrorKind::Timeout,
                    format!("connecting to Redis at {label} timed out: {why}"),
                ),
                None => err,
            };
            if resolve::is_unanswered(&e) {
                err.with_hint("qrpush.connect_timeout; is the DNS server reachable?")
            } else {
                err.with_hint("raise qrpush.connect_timeout if Redis is just slow")
            }
        })?;
        let pid = crate::process::current_pid();
        let now = Instant::now();
        let mut conn = Connection {
            stream,
            input: ReplyBuffer::new(),
            out: Vec::with_capacity(OUT_INITIAL),
            cmd: redis::Cmd::new(),
            io_timeout: Duration::ZERO,
            label,
            pid,
            last_used: now,
            primary_probe_enabled: false,
            usable: true,
        };
        // The handshake is part of connecting: a timeout here is about connect_timeout.
        let label = conn.label.clone();
        let handshake_error = |e: Error| match e.kind() {
            ErrorKind::Timeout => Error::new(
                ErrorKind::Timeout,
                format!("Redis at {label} did not complete the login in time"),
            )
            .with_hint("qrpush.connect_timeout; is the server overloaded or stopped?"),
            _ => e,
        };
        conn.handshake(endpoint, deadline, now, primary_only)
            .map_err(handshake_error)?;
        Ok(conn)
    }

    /// One round trip: AUTH, SELECT, CLIENT SETNAME, ROLE and WAIT 0 0 (the last two when
    /// `primary_only`); the replies come back in order.
    fn handshake(
        &mut self,
        endpoint: &Endpoint,
        deadline: Instant,
        now: Instant,
        primary_only: bool,
    ) -> Result<()> {
        let mut steps = Vec::with_capacity(5);
        if let Some(password) = &endpoint.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &endpoint.username {
                auth.arg(user);
            }
            auth.arg(password.expose());
            auth.write_packed_command(&mut self.out);
            steps.push(Step::Auth);
        }
        if endpoint.db != 0 {
            redis::cmd("SELECT")
                .arg(endpoint.db)
                .write_packed_command(&mut self.out);
            steps.push(Step::Select);
        }
        // Lets operators spot QrPush's connections (and which worker holds them) in CLIENT LIST.
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("qrpush-{}", self.pid))
            .write_packed_command(&mut self.out);
        steps.push(Step::SetName);
        if primary_only {
            redis::cmd("ROLE").write_packed_command(&mut self.out);
            steps.push(Step::Role);
            self.out.extend_from_slice(PRIMARY_PROBE);
            steps.push(Step::PrimaryProbe);
        }

        self.bound_io(deadline, now, Bound::Start)?;
        self.flush_out(deadline, true)?;
        for step in steps {
            let reply = self.read_reply(deadline, true)?;
            match (step, reply) {
                // A least-privilege ACL user may lack CLIENT, ROLE or WAIT (NOPERM), and some
                // Redis-compatible servers lack a command: naming is a courtesy, and without the
                // role checks the connection is used as before. Any other error (e.g. "max number
                // of clients reached") is the real reason the login failed.
                (Step::SetName | Step::Role | Step::PrimaryProbe, Value::ServerError(e))
                    if is_optional_refusal(&e) => {}
                (Step::Role, Value::Array(items)) => self.check_role(&items)?,
                (Step::PrimaryProbe, Value::Int(_)) => self.primary_probe_enabled = true,
                (Step::PrimaryProbe, Value::ServerError(e)) if e.code() == "ERR" => {
                    // "WAIT cannot be used with replica instances", ROLE already said so unless
                    // it was refused.
                    return Err(self.not_primary(&format!(
                        "it refused WAIT as a replica does ({})",
                        e.details().unwrap_or("")
                    )));
                }
                (step, Value::ServerError(e)) => {
                    return Err(server_error(
                        &e,
                        &format!("{} to {}", step.name(), self.label),
                    ));
                }
                _ => {}
            }
        }
        self.shrink_out();
        Ok(())
    }

    /// Refuses anything but a primary, from its `ROLE` reply.
    fn check_role(&self, items: &[Value]) -> Result<()> {
        let text = |i: usize| match items.get(i) {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            Some(Value::Int(n)) => n.to_string(),
            _ => String::new(),
        };
        match text(0).as_str() {
            "master" => Ok(()),
            "slave" | "replica" => {
                Err(self.not_primary(&format!("it is a replica of {}:{}", text(1), text(2))))
            }
            other => Err(self.not_primary(&format!("its role is {other}"))),
        }
    }

    fn not_primary(&self, why: &str) -> Error {
        Error::new(
            ErrorKind::Replica,
            format!(
                "Redis at {} is not the primary: {why}; QrPush publishes only through a primary",
                self.label
            ),
        )
        .with_hint("point qrpush.url at the primary, or at a name that follows failovers")
    }

    /// True when this connection may carry the next command: opened by this process, nothing
    /// unexplained happened on it, and still connected (checked without a round trip).
    pub fn is_reusable(&self) -> bool {
        self.usable
            && self.pid == crate::process::current_pid()
            && !self.input.has_unread()
            && self.stream.is_alive()
    }

    /// Keeps the connection from carrying another command: the pool closes it instead of lending
    /// it again (after a reply in `RETIRING_CODES` read as a value, e.g. a Cluster redirect).
    pub(crate) fn retire(&mut self) {
        self.usable = false;
    }

    /// True once the connection must not carry another command (see `retire`); no syscall.
    pub(crate) fn is_retired(&self) -> bool {
        !self.usable
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The endpoint, for messages (no credentials).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// When the pool last lent it.
    pub fn last_used(&self) -> Instant {
        self.last_used
    }

    pub(crate) fn set_last_used(&mut self, at: Instant) {
        self.last_used = at;
    }

    /// Sends the commands that `pack` adds, then reads `replies` replies, all before `deadline`.
    /// Error replies are returned as `Value::ServerError` values: they leave the connection
    /// usable, and the caller decides what they mean.
    pub fn request(
        &mut self,
        deadline: Instant,
        replies: usize,
        pack: impl FnOnce(&mut Packer<'_>),
    ) -> Result<Vec<Value>> {
        let sent = self.write_request(deadline, pack)?;
        self.read_replies(sent, replies)
    }

    /// The first half of `request`: sends the commands that `pack` adds, before `deadline`.
    /// Several connections can each be sent their commands before any reply is read (one Redis
    /// Cluster batch over many nodes: the nodes work at the same time).
    pub(crate) fn write_request(
        &mut self,
        deadline: Instant,
        pack: impl FnOnce(&mut Packer<'_>),
    ) -> Result<Sent> {
        let quick = self.send(deadline, pack)?;
        Ok(Sent { deadline, quick })
    }

    /// The second half of `request`: `replies` replies to what `write_request` sent. A failure
    /// is `maybe_sent`: the commands were written.
    pub(crate) fn read_replies(&mut self, sent: Sent, replies: usize) -> Result<Vec<Value>> {
        let mut values = Vec::with_capacity(replies);
        for i in 0..replies {
            values.push(
                self.read_reply(sent.deadline, sent.quick && i == 0)
                    .map_err(Error::mark_maybe_sent)?,
            );
        }
        Ok(values)
    }

    /// Same as `request` for exactly one reply, without the Vec.
    pub fn request_one(
        &mut self,
        deadline: Instant,
        pack: impl FnOnce(&mut Packer<'_>),
    ) -> Result<Value> {
        let quick = self.send(deadline, pack)?;
        self.read_reply(deadline, quick)
            .map_err(Error::mark_maybe_sent)
    }

    /// [`Connection::request_one`], after `ASKING` when `asking`: a Redis Cluster node importing
    /// a slot runs a command on it only right after ASKING (an ASK redirect). ASKING's own
    /// reply (OK) is dropped; the command's is returned.
    pub fn request_one_asking(
        &mut self,
        deadline: Instant,
        asking: bool,
        pack: impl FnOnce(&mut Packer<'_>),
    ) -> Result<Value> {
        if !asking {
            return self.request_one(deadline, pack);
        }
        let mut replies = self.request(deadline, 2, |p| {
            p.command(|cmd| {
                cmd.arg("ASKING");
            });
            pack(p);
        })?;
        Ok(replies.pop().unwrap_or(Value::Nil))
    }

    /// One PUBLISH (`pack` adds it), with the primary check behind it when the server allows it.
    pub fn publish_one(
        &mut self,
        deadline: Instant,
        pack: impl FnOnce(&mut Packer<'_>),
    ) -> Result<Published<Value>> {
        let probe = self.primary_probe_enabled;
        let quick = self.send(deadline, |p| {
            pack(p);
            if probe {
                p.out.extend_from_slice(PRIMARY_PROBE);
            }
        })?;
        let reply = self
            .read_reply(deadline, quick)
            .map_err(Error::mark_maybe_sent)?;
        let on_primary = !probe || self.read_primary_probe(deadline);
        Ok(Published {
            replies: reply,
            on_primary,
        })
    }

    /// Many PUBLISHes: `pack(p, i)` adds the `i`th of `count`. They are written in chunks of
    /// about `WRITE_CHUNK` bytes as they are packed, then every reply is read, then the primary
    /// check's. A failure while reading keeps the replies read so far (`BatchReplies::failure`).
    pub fn publish_batch(
        &mut self,
        deadline: Instant,
        count: usize,
        mut pack: impl FnMut(&mut Packer<'_>, usize),
    ) -> Result<Published<BatchReplies>> {
        let probe = self.primary_probe_enabled;
        self.out.clear();
        self.bound_io(deadline, Instant::now(), Bound::Start)?;
        let mut sent_any = false;
        for i in 0..count {
            pack(
                &mut Packer {
                    cmd: &mut self.cmd,
                    out: &mut self.out,
                },
                i,
            );
            if self.out.len() >= WRITE_CHUNK {
                let sent = self.flush_out(deadline, !sent_any);
                self.out.clear();
                sent.map_err(|e| if sent_any { e.mark_maybe_sent() } else { e })?;
                sent_any = true;
            }
        }
        if probe {
            self.out.extend_from_slice(PRIMARY_PROBE);
        }
        let quick = !sent_any && self.out.len() <= QUICK_WRITE;
        let sent = self.flush_out(deadline, !sent_any);
        self.shrink_out();
        sent.map_err(|e| if sent_any { e.mark_maybe_sent() } else { e })?;

        let mut values = Vec::with_capacity(count);
        for i in 0..count {
            match self.read_reply(deadline, quick && i == 0) {
                Ok(v) => values.push(v),
                Err(e) => {
                    self.usable = false;
                    return Ok(Published {
                        replies: BatchReplies {
                            values,
                            failure: Some(e.mark_maybe_sent()),
                        },
                        on_primary: false,
                    });
                }
            }
        }
        let on_primary = !probe || self.read_primary_probe(deadline);
        Ok(Published {
            replies: BatchReplies {
                values,
                failure: None,
            },
            on_primary,
        })
    }

    /// The primary check's reply: true for an integer. Anything else, or no reply, makes the
    /// connection unusable (its commands were answered: only the check is in doubt).
    fn read_primary_probe(&mut self, deadline: Instant) -> bool {
        // Usually already read with the reply before it: consumed without decoding.
        if self.input.skip_integer() {
            return true;
        }
        let primary = matches!(self.read_reply(deadline, false), Ok(Value::Int(_)));
        if !primary {
            self.usable = false;
        }
        primary
    }

    /// Packs what `pack` adds and writes it all, the socket bounded by `deadline`. Returns whether
    /// it was one quick write (see `QUICK_WRITE`).
    fn send(&mut self, deadline: Instant, pack: impl FnOnce(&mut Packer<'_>)) -> Result<bool> {
        self.out.clear();
        pack(&mut Packer {
            cmd: &mut self.cmd,
            out: &mut self.out,
        });
        self.bound_io(deadline, Instant::now(), Bound::Start)?;
        let quick = self.out.len() <= QUICK_WRITE;
        let sent = self.flush_out(deadline, true);
        self.shrink_out();
        sent.map(|()| quick)
    }

    /// Gives back the memory of an output buffer that a large request grew.
    fn shrink_out(&mut self) {
        if self.out.capacity() > OUT_KEPT {
            self.out = Vec::with_capacity(OUT_INITIAL);
        }
    }

    /// Writes the whole buffer. Fails with `maybe_sent` once any byte was accepted by the kernel.
    /// `fresh_bound`: `bound_io` bounded the socket for `deadline` just before, so the first write
    /// needs no new bound; every other write re-bounds it to what is left.
    fn flush_out(&mut self, deadline: Instant, fresh_bound: bool) -> Result<()> {
        let mut written = 0;
        let mut bounded = fresh_bound;
        while written < self.out.len() {
            if !std::mem::take(&mut bounded) {
                if let Err(e) = self.bound_io(deadline, Instant::now(), Bound::Again) {
                    let err = if e.kind() == ErrorKind::Timeout {
                        Error::new(
                            ErrorKind::Timeout,
                            format!("sending to Redis at {} timed out", self.label),
                        )
                    } else {
                        e
                    };
                    return Err(if written > 0 {
                        err.mark_maybe_sent()
                    } else {
                        err
                    });
                }
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
                // SO_SNDTIMEO expired with nothing written; the loop checks the deadline.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) && Instant::now() < deadline => {}
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

    /// The next reply, reading as much as it takes before `deadline`. `bounded`: the socket was
    /// bounded for this deadline just now, so the first read needs no new bound.
    fn read_reply(&mut self, deadline: Instant, mut bounded: bool) -> Result<Value> {
        loop {
            match self.input.next_reply() {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {
                    if !std::mem::take(&mut bounded) {
                        self.bound_io(deadline, Instant::now(), Bound::Again)?;
                    }
                    self.read_more(deadline)?;
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

    /// One `read()` into the input buffer. A read that the socket timeout or a signal ended
    /// before the deadline returns without data: the caller bounds the socket again.
    fn read_more(&mut self, deadline: Instant) -> Result<()> {
        match self.stream.read(self.input.spare()) {
            Ok(0) => Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "connection to Redis at {} lost: closed by the server",
                    self.label
                ),
            )),
            Ok(n) => {
                self.input.filled(n);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            // SO_RCVTIMEO expired: WouldBlock on Unix, TimedOut on Windows. Early (the bound
            // allows some slack either way) or late, `bound_io` decides on the next turn.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= deadline {
                    return Err(self.no_answer());
                }
                Ok(())
            }
            Err(e) => Err(Error::new(
                ErrorKind::Connection,
                format!("connection to Redis at {} lost: {e}", self.label),
            )),
        }
    }

    fn no_answer(&self) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!("Redis at {} did not answer in time", self.label),
        )
        .with_hint("qrpush.timeout; is the server overloaded or stopped?")
    }

    /// Bounds the socket's timeouts by the time left until `deadline`, so no single read or write
    /// can block past it, whatever an earlier deadline or another client's timeout on this shared
    /// connection left behind. A setsockopt costs a syscall, so at the start of a request (`Start`)
    /// the timeouts are only lowered, and only when they exceed the time left by more than
    /// `SOCKET_TIMEOUT_SLACK`: a shorter bound is harmless there, since a read or write it ends
    /// before the deadline is simply made again (`Again`), and then the bound is set to the time
    /// left whenever it is off by more than the slack. On a warm connection with one timeout no
    /// request makes the syscall.
    fn bound_io(&mut self, deadline: Instant, now: Instant, when: Bound) -> Result<()> {
        let remaining = deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return Err(self.no_answer());
        }
        let off = match when {
            Bound::Start => {
                self.io_timeout.is_zero() || self.io_timeout > remaining + SOCKET_TIMEOUT_SLACK
            }
            Bound::Again => self.io_timeout.abs_diff(remaining) > SOCKET_TIMEOUT_SLACK,
        };
        if off {
            let io_err = |e: io::Error| Error::io(&e, "configuring the socket to", &self.label);
            self.stream.set_read_timeout(remaining).map_err(io_err)?;
            self.stream.set_write_timeout(remaining).map_err(io_err)?;
            self.io_timeout = remaining;
        }
        Ok(())
    }
}

/// When `bound_io` runs: at the start of a request, or before a read or write after another one.
#[derive(Clone, Copy)]
enum Bound {
    Start,
    Again,
}

/// A step of the handshake, in the order its replies come back.
#[derive(Clone, Copy)]
enum Step {
    Auth,
    Select,
    SetName,
    Role,
    PrimaryProbe,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Auth => "AUTH",
            Step::Select => "SELECT",
            Step::SetName => "CLIENT SETNAME",
            Step::Role => "ROLE",
            Step::PrimaryProbe => "WAIT",
        }
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
        self.publish_as(b"*3\r\n$7\r\nPUBLISH\r\n", prefix, channel, payload);
    }

    /// `SPUBLISH <prefix><channel> <payload>` (sharded Pub/Sub on Redis Cluster), packed the same way.
    pub fn spublish(&mut self, prefix: &[u8], channel: &[u8], payload: &[u8]) {
        self.publish_as(b"*3\r\n$8\r\nSPUBLISH\r\n", prefix, channel, payload);
    }

    /// `HEAD` is the array header and the command name, already packed.
    fn publish_as(&mut self, head: &[u8], prefix: &[u8], channel: &[u8], payload: &[u8]) {
        let mut channel_len = itoa::Buffer::new();
        let channel_len = channel_len.format(prefix.len() + channel.len()).as_bytes();
        let mut payload_len = itoa::Buffer::new();
        let payload_len = payload_len.format(payload.len()).as_bytes();
        let out = &mut *self.out;
        out.reserve(
            head.len()
                + 2 * 5
                + channel_len.len()
                + prefix.len()
                + channel.len()
                + payload_len.len()
                + payload.len(),
        );
        out.extend_from_slice(head);
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
///
/// The replies that mean "this server cannot run the command now, and did not" — a demoted
/// primary's READONLY, a replica's MASTERDOWN, LOADING during a restart, a cluster's MOVED, ASK,
/// TRYAGAIN or CLUSTERDOWN — retire the connection: the next call opens a new one, which may reach
/// the new primary (or learns the server is a replica). Nothing ran, so that call may be retried.
pub fn server_error(e: &redis::ServerError, context: &str) -> Error {
    let detail = e.details().map(|d| format!(" {d}")).unwrap_or_default();
    let err = Error::new(
        ErrorKind::Server,
        format!("{}{detail} ({context})", e.code()),
    );
    let err = err.with_server_reply(format!("{}{detail}", e.code()));
    if RETIRING_CODES.contains(&e.code()) {
        err.mark_retire()
    } else {
        err
    }
}

/// Error codes after which a connection is not used again (see `server_error`).
pub const RETIRING_CODES: &[&str] = &[
    "READONLY",
    "MASTERDOWN",
    "LOADING",
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_error(line: &str) -> redis::ServerError {
        match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap() {
            Value::ServerError(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_replies_that_mean_wrong_server_retire_the_connection() {
        for line in [
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "LOADING Redis is loading the dataset in memory",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
        ] {
            let e = server_error(&reply_error(line), "PUBLISH");
            assert_eq!(e.kind(), ErrorKind::Server, "{line}");
            assert!(e.breaks_connection(), "{line}");
            assert!(!e.maybe_sent(), "{line}: nothing ran, a retry is safe");
        }
        for line in [
            "NOPERM User app has no permissions to access the 'x' channel",
            "ERR unknown command",
            "NOSCRIPT No matching script",
            "BUSY Redis is busy running a script",
        ] {
            let e = server_error(&reply_error(line), "PUBLISH");
            assert!(
                !e.breaks_connection(),
                "{line}: the connection stays usable"
            );
        }
    }

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
            for name in ["PUBLISH", "SPUBLISH"] {
                let mut scratch = redis::Cmd::new();
                let mut out = Vec::new();
                let mut packer = Packer {
                    cmd: &mut scratch,
                    out: &mut out,
                };
                if name == "PUBLISH" {
                    packer.publish(prefix, channel, payload);
                } else {
                    packer.spublish(prefix, channel, payload);
                }
                let want = redis::cmd(name)
                    .arg(*joined)
                    .arg(*payload)
                    .get_packed_command();
                assert_eq!(out, want, "{name}");
            }
        }
    }
}
