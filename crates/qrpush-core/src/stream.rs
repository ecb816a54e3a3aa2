//! The byte stream under a connection: TCP everywhere, TLS over TCP (`rediss://`), Unix sockets on
//! Unix, and the one check that makes pooled connections cheap to trust — is the peer still there?
//!
//! Connecting is bounded by one deadline from the first step to the last: the name lookup
//! (`resolve`), the TCP connect to each address, the TLS handshake, and for Unix sockets the wait
//! for room in a server's full listen backlog.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::endpoint::Address;
use crate::resolve;
use crate::tls::{self, TlsStream};

/// TCP keepalive: after this long without traffic the kernel probes the peer...
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// ...every this long...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// ...and gives the connection up after this many unanswered probes (where the OS lets a socket
/// set it; elsewhere its default applies). A NAT or load balancer that forgot the flow answers
/// nothing, so an idle pooled connection is known dead within 45 s, and the liveness peek sees
/// the error.
const KEEPALIVE_PROBES: u32 = 3;

pub(crate) enum Stream {
    Tcp(TcpStream),
    /// Boxed: a rustls session is a few hundred bytes, the other variants one descriptor.
    Tls(Box<TlsStream>),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Stream {
    /// Connects before `deadline`. For TLS the handshake is part of the connect and of the bound.
    pub(crate) fn connect(address: &Address, deadline: Instant) -> io::Result<Stream> {
        match address {
            Address::Tcp { host, port } => Ok(Stream::Tcp(connect_tcp(host, *port, deadline)?)),
            Address::Tls {
                host,
                port,
                tls: options,
            } => {
                // A bad CA file fails here, before touching the network.
                let config = tls::prepare(options)?;
                let sock = connect_tcp(host, *port, deadline)?;
                let stream = tls::handshake(config, sock, host, options, deadline)?;
                Ok(Stream::Tls(Box::new(stream)))
            }
            #[cfg(unix)]
            Address::Unix { path } => Ok(Stream::Unix(connect_unix(path, deadline)?)),
            #[cfg(not(unix))]
            Address::Unix { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unix sockets are not available",
            )),
            // The client connects to the node owning a slot, never to the seed list itself.
            Address::Cluster { .. } | Address::Sentinel { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Redis Cluster or Sentinel list is not one server",
            )),
        }
    }

    pub(crate) fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
            Stream::Tls(s) => s.sock.set_read_timeout(Some(t)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
            Stream::Tls(s) => s.sock.set_write_timeout(Some(t)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
        }
    }

    /// True when the peer has neither closed the connection nor sent anything unasked.
    ///
    /// A server restart, `CLIENT KILL` or Redis's idle `timeout` closes the socket while it sits in
    /// the pool; the FIN is already queued locally, so a non-blocking peek sees it without a round
    /// trip (phpredis pays an ECHO round trip for the same knowledge). Unexpected bytes (an error
    /// Redis sent before closing, e.g. "max number of clients reached") would desynchronise the
    /// next reply, so they also mean "do not reuse".
    ///
    /// TLS peeks the TCP socket under the session the same way: a `close_notify` alert or a FIN
    /// shows as readable or EOF, and no TLS record is expected between two requests either (the
    /// server's session tickets arrive before the handshake's replies, which `open` reads). rustls'
    /// own state must be clean too: no `close_notify` already read, no unread plaintext, nothing
    /// left unsent.
    pub(crate) fn is_alive(&self) -> bool {
        match self {
            Stream::Tcp(s) => socket_alive(s),
            Stream::Tls(s) => s.conn.wants_read() && !s.conn.wants_write() && socket_alive(&s.sock),
            #[cfg(unix)]
            Stream::Unix(s) => unix_peek_alive(std::os::unix::io::AsRawFd::as_raw_fd(s)),
        }
    }
}

/// Connects to the first resolved address that answers before `deadline`.
fn connect_tcp(host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
    let mut last_err = None;
    for addr in resolve::socket_addrs(host, port, deadline)? {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(s) => {
                // Commands are small and latency-bound: never wait for Nagle.
                s.set_nodelay(true)?;
                keep_alive(&s);
                return Ok(s);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))
}

/// Turns TCP keepalive on, once per connection (a few setsockopt calls at connect time, nothing
/// per request): a pooled connection whose path silently forgot it is detected while idle.
///
/// Best effort, never a reason to fail the connect: a system that refuses an option (the probe
/// count is missing before Windows 10 1703 and under Wine: WSAENOPROTOOPT) gets what it accepts,
/// down to plain SO_KEEPALIVE with the OS's timings. `idle_check_after` covers a forgotten path
/// whatever keepalive could be set.
fn keep_alive(s: &TcpStream) {
    let socket = socket2::SockRef::from(s);
    let timing = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "illumos",
        target_os = "windows"
    ))]
    if socket
        .set_tcp_keepalive(&timing.clone().with_retries(KEEPALIVE_PROBES))
        .is_ok()
    {
        return;
    }
    if socket.set_tcp_keepalive(&timing).is_err() {
        // Ignored like the options above: the connection works without keepalive.
        let _ = socket.set_keepalive(true);
    }
}

/// Connects to a Unix socket before `deadline`.
///
/// A server that stopped accepting (SIGSTOP, a paused VM, a stall) lets the kernel queue
/// connections in its listen backlog until it is full; a blocking connect then sleeps until the
/// server accepts again, without a bound. Linux bounds that sleep by the socket's send timeout
/// (SO_SNDTIMEO) and then fails with EAGAIN, so the connect runs with the send timeout set to the
/// time left. (A non-blocking connect would not help: on Linux it fails at once with EAGAIN and
/// there is nothing to poll for until the backlog has room.) Where the kernel refuses at once
/// instead (the BSDs), the refusal is the answer.
#[cfg(unix)]
fn connect_unix(path: &str, deadline: Instant) -> io::Result<std::os::unix::net::UnixStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let addr = SockAddr::unix(path)?;
    let full = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "the server's listen backlog stayed full (is it stopped or overloaded?)",
        )
    };
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(full());
        }
        socket.set_write_timeout(Some(remaining))?;
        match socket.connect(&addr) {
            Ok(()) => {
                return Ok(std::os::unix::net::UnixStream::from(
                    std::os::fd::OwnedFd::from(socket),
                ))
            }
            // A signal during the wait: the socket is still unconnected, try again with what is left.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(full()),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(unix)]
fn socket_alive(s: &TcpStream) -> bool {
    unix_peek_alive(std::os::unix::io::AsRawFd::as_raw_fd(s))
}

#[cfg(not(unix))]
fn socket_alive(s: &TcpStream) -> bool {
    portable_peek_alive(s)
}

/// One `recv(MSG_PEEK | MSG_DONTWAIT)`: no mode switch, no round trip.
#[cfg(unix)]
fn unix_peek_alive(fd: std::os::unix::io::RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: fd is an open socket owned by the stream for the duration of this call, and the
    // buffer is one valid byte.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        );
    }
    false // 0: orderly shutdown by the peer; >0: unsolicited data
}

/// Windows has no per-call non-blocking flag: switch the socket to non-blocking for the peek.
#[cfg(not(unix))]
fn portable_peek_alive(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let alive = matches!(s.peek(&mut byte), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).is_ok() && alive
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            // rustls accepts the bytes into the session, then sends what it can; a send error
            // after that is reported by the next write or read (never as "nothing was sent":
            // part of the records may have reached Redis).
            Stream::Tls(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}
