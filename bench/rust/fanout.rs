//! Benchmark helper (bench/gateway/fanout): one event fanned out to many sockets of one general
//! channel on one gateway; delivery time from the publish to each socket's read, and the
//! gateway's RSS per 1,000 sockets. Not a test.
//!
//! Opens `--sockets` WebSockets with one subscription token for channel `bench-fanout`, from
//! `--sources` loopback addresses (127.0.0.2, 127.0.0.3, ...: one source address has only the
//! ephemeral port range), waits until every socket got `ready`, then publishes `--events` durable
//! events (`{"e":<n>,"t":<publish time, Unix ms>}`) one at a time, each once every socket got the
//! previous one (or after 5 s), and prints the delivery time percentiles over every (event, socket)
//! pair, and per event the time until the last socket had it.
//!
//! ```text
//! fanout --gateway 127.0.0.1:18690 --pid <gateway pid> --redis redis://127.0.0.1:18670 \
//!   --secret-file <file> [--sockets 10000] [--events 20] [--sources 8]
//! ```

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use qrpush_core::{channel_token, Client, Config, Durable};
use tokio_tungstenite::tungstenite::Message;

const CHANNEL: &str = "bench-fanout";

struct Options {
    gateway: String,
    pid: u32,
    redis: String,
    secret: String,
    sockets: usize,
    events: usize,
    sources: u8,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        gateway: "127.0.0.1:8090".into(),
        pid: 0,
        redis: "redis://127.0.0.1:6379".into(),
        secret: String::new(),
        sockets: 10_000,
        events: 20,
        sources: 8,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--gateway" => o.gateway = value,
            "--pid" => o.pid = value.parse().expect("--pid"),
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

fn rss_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the gateway's /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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

fn connections(gateway: &str) -> i64 {
    let mut s = std::net::TcpStream::connect(gateway).expect("connect /metrics");
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {gateway}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("qrpush_gateway_connections "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the connections gauge")
}

/// The number after `"<key>":` in a small JSON text (the bench's own events: no parser needed).
fn number_after(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = options();
    let mut config = Config::default();
    config.set("url", &o.redis).unwrap();
    config.set("gateway_secret", &o.secret).unwrap();
    let client = Arc::new(Client::new(config));
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
    let url = format!("ws://{}/ws?token={token}", o.gateway);

    let baseline = rss_kib(o.pid);
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    // (event, delivery ms) of every socket's read.
    let samples: Arc<Mutex<Vec<(usize, f64)>>> = Arc::default();
    let received: Arc<Vec<AtomicUsize>> =
        Arc::new((0..o.events).map(|_| AtomicUsize::new(0)).collect());
    let t_open = Instant::now();
    for i in 0..o.sockets {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % o.sources as usize) as u8));
        let (url, ready_count, failed_count, samples, received) = (
            url.clone(),
            ready.clone(),
            failed.clone(),
            samples.clone(),
            received.clone(),
        );
        tokio::spawn(async move {
            let connect = async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(source, 0))?;
                let stream = socket.connect(gateway).await?;
                tokio_tungstenite::client_async(url, stream)
                    .await
                    .map_err(std::io::Error::other)
            };
            let mut ws = match connect.await {
                Ok((ws, _)) => ws,
                Err(e) => {
                    if failed_count.fetch_add(1, Relaxed) == 0 {
                        eprintln!("first failed connection: {e}");
                    }
                    return;
                }
            };
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let at = now_ms();
                if text.starts_with("{\"type\":\"ready\"") {
                    ready_count.fetch_add(1, Relaxed);
                } else if let (Some(e), Some(t)) =
                    (number_after(&text, "e"), number_after(&text, "t"))
                {
                    let e = e as usize;
                    samples.lock().unwrap().push((e, at - t));
                    if let Some(counter) = received.get(e) {
                        counter.fetch_add(1, Relaxed);
                    }
                }
            }
        });
        // Bounded handshake concurrency: a burst of thousands would only measure the backlog.
        if i % 200 == 199 {
            while i + 1 - ready.load(Relaxed) - failed.load(Relaxed) > 1000 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Relaxed) + failed.load(Relaxed) < o.sockets && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sockets = ready.load(Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = rss_kib(o.pid);
    println!(
        "{sockets} sockets ready on one gateway in {:.1} s ({} failed; gateway connections gauge {}), \
         from {} source addresses",
        t_open.elapsed().as_secs_f64(),
        failed.load(Relaxed),
        connections(&o.gateway),
        o.sources
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

    let mut spans = Vec::new();
    let (gateway_cpu, own_cpu) = (cpu_ms(&o.pid.to_string()), cpu_ms("self"));
    let t_events = Instant::now();
    for e in 0..o.events {
        let message = format!("{{\"e\":{e},\"t\":{:.3}}}", now_ms());
        let c = client.clone();
        tokio::task::spawn_blocking(move || {
            Durable::new(&c)
                .publish(CHANNEL.as_bytes(), message.as_bytes())
                .expect("publish")
        })
        .await
        .unwrap();
        let start = Instant::now();
        while received[e].load(Relaxed) < sockets && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        spans.push((received[e].load(Relaxed), start.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = t_events.elapsed().as_secs_f64() * 1000.0;
    let (gateway_cpu, own_cpu) = (
        cpu_ms(&o.pid.to_string()) - gateway_cpu,
        cpu_ms("self") - own_cpu,
    );
    let mut all: Vec<f64> = samples.lock().unwrap().iter().map(|(_, ms)| *ms).collect();
    all.sort_by(f64::total_cmp);
    let expected = sockets * o.events;
    println!(
        "{} events × {sockets} sockets: {} deliveries of {expected}; delivery time p50 {:.1} ms, \
         p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        o.events,
        all.len(),
        percentile(&all, 50.0),
        percentile(&all, 90.0),
        percentile(&all, 99.0),
        all.last().copied().unwrap_or(f64::NAN)
    );
    let complete: Vec<f64> = spans
        .iter()
        .map(|(_, d)| d.as_secs_f64() * 1000.0)
        .collect();
    println!(
        "per event, publish returned → last socket read: {}",
        complete
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
            + " ms"
    );
    println!(
        "CPU during the events ({wall:.0} ms of wall time, 100 ms pauses included): gateway {gateway_cpu:.0} ms \
         ({:.1} ms per event fanned out), this client {own_cpu:.0} ms ({:.1} ms per event): both share the machine's cores",
        gateway_cpu / o.events as f64,
        own_cpu / o.events as f64
    );
    if all.len() < expected {
        println!("MISSING: {} deliveries", expected - all.len());
    }
}
