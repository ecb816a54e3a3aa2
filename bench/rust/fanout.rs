//! Benchmark helper (bench/gateway/fanout): one event fanned out to many sockets of one general
//! channel on one gateway; delivery time from just before the publish to each socket's read of
//! the frame, the gateway's own fan-out time (its `/metrics`), CPU of each process, and the
//! gateway's RSS per 1,000 sockets. Not a test.
//!
//! Opens `--sockets` WebSockets with one subscription token for channel `bench-fanout`, from
//! `--sources` loopback addresses (127.0.0.2, 127.0.0.3, ...: one source address has only the
//! ephemeral port range), waits until every socket got `ready`, then publishes `--events` durable
//! events (`{"e":<n>,"t":<publish time, Unix ms>}`) one at a time: each once every socket got the
//! previous one (or after 5 s), then `--gap` ms of quiet.
//!
//! The client must not be what is measured: after the handshakes (tokio, written by hand: a GET
//! with `Upgrade: websocket`, the `101` checked, the accept key not), every socket is read by ONE
//! thread on one epoll set (mio, edge-triggered), with a shared read buffer, a header-only frame
//! parser (the gateway's frames are unmasked), and one clock read per socket read. Nothing else
//! runs on that thread while an event is in flight: the publish happens on it just before.
//!
//! ```text
//! fanout --gateway 127.0.0.1:18690 --pid <gateway pid> [--redis-pid <pid>] \
//!   --redis redis://127.0.0.1:18670 --secret-file <file> [--sockets 10000] [--events 20] \
//!   [--sources 8] [--gap 200] [--spin]
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use qrpush_core::{channel_token, Client, Config, Durable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHANNEL: &str = "bench-fanout";
/// The p99 delivery goal for 10,000 sockets (issue 15).
const GOAL_P99_MS: f64 = 100.0;
/// Handshakes in flight at once: a burst of thousands would only measure the accept backlog.
const HANDSHAKES_IN_FLIGHT: usize = 500;
/// No delivery of an event after this long: the event is reported with what arrived.
const EVENT_BOUND: Duration = Duration::from_secs(5);

struct Options {
    gateway: String,
    pid: u32,
    redis_pid: Option<u32>,
    redis: String,
    secret: String,
    sockets: usize,
    events: usize,
    sources: u8,
    gap: Duration,
    spin: bool,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        gateway: "127.0.0.1:8090".into(),
        pid: 0,
        redis_pid: None,
        redis: "redis://127.0.0.1:6379".into(),
        secret: String::new(),
        sockets: 10_000,
        events: 20,
        sources: 8,
        gap: Duration::from_millis(200),
        spin: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--spin" {
            o.spin = true;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--gateway" => o.gateway = value,
            "--pid" => o.pid = value.parse().expect("--pid"),
            "--redis-pid" => o.redis_pid = Some(value.parse().expect("--redis-pid")),
            "--redis" => o.redis = value,
            "--secret-file" => {
                o.secret = std::fs::read_to_string(&value)
                    .expect("--secret-file")
                    .trim()
                    .to_string()
            }
            "--sockets" => o.sockets = value.parse().expect("--sockets"),
            "--events" => o.events = value.parse().expect("--events"),
            "--sources" => o.sources = value.parse().expect("--sources"),
            "--gap" => o.gap = Duration::from_millis(value.parse().expect("--gap (ms)")),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(o.pid > 0, "--pid is required");
    assert!(o.sources >= 1, "--sources must be at least 1");
    o
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// A field of `/proc/<pid>/status` (`VmRSS`, `Cpus_allowed_list`), as text.
fn proc_status(pid: &str, field: &str) -> String {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn rss_kib(pid: u32) -> u64 {
    proc_status(&pid.to_string(), "VmRSS")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS")
}

/// CPU time (user + system) of process `pid` so far, in ms (`/proc/<pid>/stat`, in USER_HZ
/// ticks: 100 per second on Linux).
fn cpu_ms(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 * 10.0
}

/// The gateway's `/metrics` value of `name` (a line `name value`).
fn metric(gateway: &str, name: &str) -> f64 {
    let mut s = std::net::TcpStream::connect(gateway).expect("connect /metrics");
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {gateway}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in the gateway's /metrics"))
}

/// Opens one WebSocket from `source`: the socket (non-blocking) and the bytes that came after
/// the `101` response (frames already sent).
async fn open(
    gateway: SocketAddr,
    source: IpAddr,
    request: Arc<String>,
) -> std::io::Result<(std::net::TcpStream, Vec<u8>)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(gateway).await?;
    stream.set_nodelay(true)?;
    stream.write_all(request.as_bytes()).await?;
    let mut got = Vec::with_capacity(512);
    let end = loop {
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if got.len() > 8192 {
            return Err(std::io::Error::other("no end of the HTTP response"));
        }
    };
    if !got.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&got[..got.len().min(80)]).into_owned();
        return Err(std::io::Error::other(format!("not upgraded: {line}")));
    }
    Ok((stream.into_std()?, got.split_off(end)))
}

/// One socket in the measuring loop.
struct Conn {
    stream: TcpStream,
    /// The start of a frame not complete yet (empty nearly always).
    partial: Vec<u8>,
    ready: bool,
    closed: bool,
}

/// What the measuring loop has seen so far.
struct Tally {
    ready: usize,
    closed: usize,
    /// Per event, the receive time of each socket, in µs after `epoch` (`u64::MAX`: not yet).
    at: Vec<Vec<u64>>,
    received: Vec<usize>,
    epoch: Instant,
}

/// The event number in `{"type":"message",…,"data":{"e":<n>,…}}` (the bench's own frames).
fn event_of(payload: &[u8]) -> Option<usize> {
    let key = b"\"data\":{\"e\":";
    let at = payload.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = payload[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n = 0usize;
    let mut any = false;
    for d in digits {
        n = n * 10 + (d - b'0') as usize;
        any = true;
    }
    any.then_some(n)
}

/// Handles the complete frames at the start of `bytes` for socket `i` read at `at_us`; returns
/// how many bytes they took.
fn frames(
    bytes: &[u8],
    i: usize,
    at_us: u64,
    conn_ready: &mut bool,
    tally: &mut Tally,
) -> (usize, Option<Vec<u8>>) {
    let mut used = 0;
    let mut pong = None;
    loop {
        let rest = &bytes[used..];
        if rest.len() < 2 {
            break;
        }
        let opcode = rest[0] & 0x0f;
        let masked = rest[1] & 0x80 != 0;
        let (len, mut head) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if masked {
            head += 4; // a server never masks; skipped rather than trusted
        }
        if rest.len() < head + len {
            break;
        }
        let payload = &rest[head..head + len];
        match opcode {
            1 => {
                if payload.starts_with(b"{\"type\":\"ready\"") {
                    if !*conn_ready {
                        *conn_ready = true;
                        tally.ready += 1;
                    }
                } else if let Some(e) = event_of(payload) {
                    if let Some(slot) = tally.at.get_mut(e).and_then(|v| v.get_mut(i)) {
                        if *slot == u64::MAX {
                            *slot = at_us;
                            tally.received[e] += 1;
                        }
                    }
                }
            }
            9 => {
                // Pong with the ping's payload, masked with a zero key (as a client must mask).
                let mut frame = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                frame.extend_from_slice(payload);
                pong = Some(frame);
            }
            _ => {}
        }
        used += head + len;
    }
    (used, pong)
}

/// The measuring loop's sockets and what it reads them with.
struct Sockets {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    buf: Vec<u8>,
    /// Poll without sleeping: the gateway's writes then never pay for waking this thread (on
    /// loopback, the writer's system call does the reader's wake-up; a remote reader costs it
    /// nothing of the kind).
    spin: bool,
}

/// Reads every socket that has something until `done()` holds or `until`.
fn pump(s: &mut Sockets, tally: &mut Tally, until: Instant, done: &dyn Fn(&Tally) -> bool) {
    let Sockets {
        poll,
        events,
        conns,
        buf,
        spin,
    } = s;
    while !done(tally) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        let wait = if *spin { Duration::ZERO } else { until - now };
        poll.poll(events, Some(wait)).expect("epoll_wait");
        for event in events.iter() {
            let i = event.token().0;
            let conn = &mut conns[i];
            if conn.closed {
                continue;
            }
            loop {
                let n = match conn.stream.read(buf) {
                    Ok(0) => {
                        conn.closed = true;
                        tally.closed += 1;
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        conn.closed = true;
                        tally.closed += 1;
                        break;
                    }
                };
                let at_us = tally.epoch.elapsed().as_micros() as u64;
                let pong = if conn.partial.is_empty() {
                    let (used, pong) = frames(&buf[..n], i, at_us, &mut conn.ready, tally);
                    conn.partial.extend_from_slice(&buf[used..n]);
                    pong
                } else {
                    conn.partial.extend_from_slice(&buf[..n]);
                    let bytes = std::mem::take(&mut conn.partial);
                    let (used, pong) = frames(&bytes, i, at_us, &mut conn.ready, tally);
                    conn.partial = bytes[used..].to_vec();
                    pong
                };
                if let Some(pong) = pong {
                    let _ = conn.stream.write(&pong);
                }
                // A short read emptied the socket's buffer: the next byte is a new edge.
                if n < buf.len() {
                    break;
                }
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let o = options();
    let mut config = Config::default();
    config.set("url", &o.redis).unwrap();
    config.set("gateway_secret", &o.secret).unwrap();
    let client = Client::new(config);
    let token = channel_token::issue_for(
        client.config(),
        &[CHANNEL],
        Duration::from_secs(3600),
        None,
        now_ms() as i64,
    )
    .unwrap()
    .expose()
    .to_string();
    let gateway: SocketAddr = o.gateway.parse().expect("--gateway host:port");
    let request = Arc::new(format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        o.gateway
    ));
    let baseline = rss_kib(o.pid);

    // The handshakes, bounded in flight; the sockets then leave tokio for the measuring loop.
    let t_open = Instant::now();
    let failed = Arc::new(AtomicUsize::new(0));
    let opened: Vec<(std::net::TcpStream, Vec<u8>)> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut opened = Vec::with_capacity(o.sockets);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..o.sockets {
                if tasks.len() >= HANDSHAKES_IN_FLIGHT {
                    if let Some(Ok(Some(done))) = tasks.join_next().await {
                        opened.push(done);
                    }
                }
                let source =
                    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % o.sources as usize) as u8));
                let (request, failed) = (request.clone(), failed.clone());
                tasks.spawn(async move {
                    match open(gateway, source, request).await {
                        Ok(done) => Some(done),
                        Err(e) => {
                            if failed.fetch_add(1, Relaxed) == 0 {
                                eprintln!("first failed connection: {e}");
                            }
                            None
                        }
                    }
                });
            }
            while let Some(done) = tasks.join_next().await {
                if let Ok(Some(done)) = done {
                    opened.push(done);
                }
            }
            opened
        });

    let poll = Poll::new().expect("epoll");
    let mut tally = Tally {
        ready: 0,
        closed: 0,
        at: vec![vec![u64::MAX; opened.len()]; o.events],
        received: vec![0; o.events],
        epoch: Instant::now(),
    };
    let mut conns = Vec::with_capacity(opened.len());
    for (i, (stream, early)) in opened.into_iter().enumerate() {
        stream.set_nonblocking(true).unwrap();
        let mut stream = TcpStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .expect("epoll_ctl");
        let mut conn = Conn {
            stream,
            partial: Vec::new(),
            ready: false,
            closed: false,
        };
        let (used, _) = frames(&early, i, 0, &mut conn.ready, &mut tally);
        conn.partial = early[used..].to_vec();
        conns.push(conn);
    }
    let total = conns.len();
    let mut sockets_io = Sockets {
        poll,
        events: Events::with_capacity(1024),
        conns,
        buf: vec![0u8; 64 * 1024],
        spin: false,
    };
    pump(
        &mut sockets_io,
        &mut tally,
        Instant::now() + Duration::from_secs(120),
        &|t: &Tally| t.ready + t.closed >= total,
    );
    let sockets = tally.ready;
    // A moment for the gateway's replay reads (one per socket) to settle before RSS is read.
    let settle = Instant::now() + Duration::from_millis(500);
    pump(&mut sockets_io, &mut tally, settle, &|_| false);
    let rss = rss_kib(o.pid);
    let gateway_pid = o.pid.to_string();
    println!(
        "{sockets} sockets ready on one gateway in {:.1} s ({} failed, {} closed; gateway connections gauge {}), \
         from {} source addresses",
        t_open.elapsed().as_secs_f64(),
        failed.load(Relaxed),
        tally.closed,
        metric(&o.gateway, "qrpush_gateway_connections"),
        o.sources
    );
    println!(
        "CPUs: gateway {}, this client {}{}; the client {} while an event is in flight",
        proc_status(&gateway_pid, "Cpus_allowed_list"),
        proc_status("self", "Cpus_allowed_list"),
        o.redis_pid
            .map(|p| format!(
                ", redis-server {}",
                proc_status(&p.to_string(), "Cpus_allowed_list")
            ))
            .unwrap_or_default(),
        if o.spin {
            "polls without sleeping (--spin)"
        } else {
            "sleeps in epoll_wait"
        }
    );
    println!(
        "gateway RSS {:.1} MiB, {:.1} MiB empty: {:.2} MiB per 1,000 sockets",
        rss as f64 / 1024.0,
        baseline as f64 / 1024.0,
        rss.saturating_sub(baseline) as f64 / 1024.0 / (sockets.max(1) as f64 / 1000.0)
    );
    if o.events == 0 {
        return;
    }

    let cpu = |pid: &str| cpu_ms(pid);
    let redis_pid = o.redis_pid.map(|p| p.to_string());
    let (gateway_cpu, own_cpu) = (cpu(&gateway_pid), cpu("self"));
    let redis_cpu = redis_pid.as_deref().map(cpu);
    let t_events = Instant::now();
    // Per event: µs from just before the publish (on `tally.epoch`'s clock), the publish call's
    // own time, the last socket's delivery, and the gateway's fan-out time (its histogram's sum).
    let mut started = Vec::with_capacity(o.events);
    let mut publish_us = Vec::with_capacity(o.events);
    let mut last_ms = Vec::with_capacity(o.events);
    let mut gateway_ms = Vec::with_capacity(o.events);
    let fanout_sum = |gw: &str| metric(gw, "qrpush_gateway_fanout_seconds_sum") * 1000.0;
    let fanout_count = |gw: &str| metric(gw, "qrpush_gateway_fanout_seconds_count");
    for e in 0..o.events {
        let (sum0, count0) = (fanout_sum(&o.gateway), fanout_count(&o.gateway));
        let message = format!("{{\"e\":{e},\"t\":{:.3}}}", now_ms());
        let t0 = tally.epoch.elapsed().as_micros() as u64;
        Durable::new(&client)
            .publish(CHANNEL.as_bytes(), message.as_bytes())
            .expect("publish");
        publish_us.push(tally.epoch.elapsed().as_micros() as u64 - t0);
        started.push(t0);
        sockets_io.spin = o.spin;
        pump(
            &mut sockets_io,
            &mut tally,
            Instant::now() + EVENT_BOUND,
            &|t: &Tally| t.received[e] >= sockets,
        );
        let last = tally.at[e]
            .iter()
            .filter(|&&a| a != u64::MAX)
            .max()
            .copied();
        last_ms.push(last.map(|a| (a - t0) as f64 / 1000.0).unwrap_or(f64::NAN));
        // Quiet between events (pings still answered); then the gateway's account of this one.
        sockets_io.spin = false;
        pump(&mut sockets_io, &mut tally, Instant::now() + o.gap, &|_| {
            false
        });
        let (sum1, count1) = (fanout_sum(&o.gateway), fanout_count(&o.gateway));
        gateway_ms.push(if count1 - count0 == 1.0 {
            sum1 - sum0
        } else {
            f64::NAN
        });
    }
    let wall = t_events.elapsed().as_secs_f64() * 1000.0;
    let gateway_cpu = cpu(&gateway_pid) - gateway_cpu;
    let own_cpu = cpu("self") - own_cpu;
    let redis_cpu = redis_pid
        .as_deref()
        .map(cpu)
        .zip(redis_cpu)
        .map(|(a, b)| a - b);

    let mut all: Vec<f64> = Vec::with_capacity(sockets * o.events);
    for (e, t0) in started.iter().enumerate() {
        all.extend(
            tally.at[e]
                .iter()
                .filter(|&&a| a != u64::MAX)
                .map(|&a| (a - t0) as f64 / 1000.0),
        );
    }
    all.sort_by(f64::total_cmp);
    let expected = sockets * o.events;
    let p99 = percentile(&all, 99.0);
    let list = |v: &[f64]| {
        v.iter()
            .map(|ms| format!("{ms:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
            + " ms"
    };
    println!(
        "{} events × {sockets} sockets: {} deliveries of {expected}; delivery time (just before the publish → \
         the client read the frame) p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        o.events,
        all.len(),
        percentile(&all, 50.0),
        percentile(&all, 95.0),
        p99,
        all.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "per event, until the last socket read it: {}",
        list(&last_ms)
    );
    println!(
        "per event, the gateway's own fan-out (message in from Redis → last socket written, its /metrics): {}",
        list(&gateway_ms)
    );
    let mut publish: Vec<f64> = publish_us.iter().map(|&u| u as f64 / 1000.0).collect();
    publish.sort_by(f64::total_cmp);
    println!(
        "the publish call itself (EVALSHA round trip): median {:.2} ms",
        percentile(&publish, 50.0)
    );
    println!(
        "CPU during the events ({wall:.0} ms of wall time, {} ms gaps included): gateway {gateway_cpu:.0} ms \
         ({:.1} ms per event fanned out), this client {own_cpu:.0} ms ({:.1} ms per event){}",
        o.gap.as_millis(),
        gateway_cpu / o.events as f64,
        own_cpu / o.events as f64,
        redis_cpu
            .map(|c| format!(", redis-server {c:.0} ms"))
            .unwrap_or_default()
    );
    if all.len() < expected {
        println!("MISSING: {} deliveries", expected - all.len());
    }
    let verdict = if sockets < 10_000 {
        "not measured by this run (fewer sockets than the goal's)"
    } else if p99 <= GOAL_P99_MS && all.len() == expected {
        "✓ met"
    } else {
        "✗ missed"
    };
    println!(
        "goal p99 ≤ {GOAL_P99_MS:.0} ms for 10,000 sockets: {verdict} (p99 {p99:.1} ms at {sockets} sockets)"
    );
}
