//! Benchmark helper (bench/gateway/run): how many idle sockets one gateway holds, and its RSS per
//! 1,000 of them. Not a test.
//!
//! Creates `--count` real logins (through the core, as PHP would: each with its gateway token),
//! opens one socket per login to the gateway in steps of `--step`, keeps every socket answering
//! pings (a task per socket reads it), and after each step prints the gateway's open connections
//! (from its /metrics) and its RSS (from /proc/<pid>/status). Then it holds them over a few ping
//! rounds and checks that none was dropped.
//!
//! ```text
//! cargo run --release -p qrpush-bench --bin idle_sockets -- \
//!   --gateway 127.0.0.1:8090 --pid <gateway pid> --redis redis://127.0.0.1:6390 \
//!   --secret-file <file> [--count 19000] [--step 1000] [--hold 12]
//! ```

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use qrpush_core::login::Login;
use qrpush_core::{Client, Config};
use tokio_tungstenite::tungstenite::Message;

struct Options {
    gateway: String,
    pid: u32,
    redis: String,
    secret: String,
    count: usize,
    step: usize,
    hold: u64,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        gateway: "127.0.0.1:8090".into(),
        pid: 0,
        redis: "redis://127.0.0.1:6379".into(),
        secret: String::new(),
        count: 19_000,
        step: 1_000,
        hold: 12,
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
            "--count" => o.count = value.parse().expect("--count"),
            "--step" => o.step = value.parse().expect("--step"),
            "--hold" => o.hold = value.parse().expect("--hold"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(o.pid > 0, "--pid is required");
    o
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

/// The gateway's `qrpush_gateway_connections` gauge.
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = options();
    let mut config = Config::default();
    config.set("url", &o.redis).unwrap();
    config.set("gateway_secret", &o.secret).unwrap();
    config.set("pool_size", "4").unwrap();
    let client = Arc::new(Client::new(config));

    let t0 = Instant::now();
    let per_thread = o.count.div_ceil(4);
    let mut handles = Vec::new();
    for t in 0..4 {
        let client = client.clone();
        let n = per_thread.min(o.count.saturating_sub(t * per_thread));
        handles.push(std::thread::spawn(move || {
            (0..n)
                .map(|_| {
                    let started = Login::new(&client).start("127.0.0.1", "bench").unwrap();
                    started.gateway_token.unwrap().expose().to_string()
                })
                .collect::<Vec<_>>()
        }));
    }
    let tokens: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    eprintln!(
        "created {} logins in {:.1} s",
        tokens.len(),
        t0.elapsed().as_secs_f64()
    );

    let baseline = rss_kib(o.pid);
    println!("| idle sockets | gateway RSS (MiB) | RSS above the empty gateway, per 1,000 sockets (MiB) |");
    println!("|---:|---:|---:|");
    println!("| 0 | {:.1} | – |", baseline as f64 / 1024.0);
    let alive = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut opened = 0;
    let t_open = Instant::now();
    let mut last_row = (0usize, baseline);
    'steps: for chunk in tokens.chunks(o.step) {
        let mut connecting = Vec::new();
        for token in chunk {
            let url = format!("ws://{}/ws/?token={token}", o.gateway);
            let alive = alive.clone();
            let failed = failed.clone();
            connecting.push(tokio::spawn(async move {
                match tokio_tungstenite::connect_async(url).await {
                    Ok((mut ws, _)) => {
                        alive.fetch_add(1, Relaxed);
                        // Read forever: tungstenite answers the gateway's pings while reading.
                        while let Some(Ok(message)) = ws.next().await {
                            if let Message::Close(_) = message {
                                break;
                            }
                        }
                        alive.fetch_sub(1, Relaxed);
                    }
                    Err(e) => {
                        if failed.fetch_add(1, Relaxed) == 0 {
                            eprintln!("first failed connection: {e}");
                        }
                    }
                }
            }));
            // Bounded handshake concurrency: a burst of thousands would only measure the backlog.
            if connecting.len() % 200 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        opened += chunk.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (connections(&o.gateway) as usize) < opened - failed.load(Relaxed) {
            if Instant::now() > deadline {
                eprintln!("the gateway holds {} of {opened}", connections(&o.gateway));
                break 'steps;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if failed.load(Relaxed) > 0 {
            eprintln!("{} connections failed: stopping", failed.load(Relaxed));
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss = rss_kib(o.pid);
        let held = connections(&o.gateway) as usize;
        println!(
            "| {held} | {:.1} | {:.2} |",
            rss as f64 / 1024.0,
            (rss - baseline) as f64 / 1024.0 / (held as f64 / 1000.0)
        );
        last_row = (held, rss);
    }
    let open_secs = t_open.elapsed().as_secs_f64();
    eprintln!(
        "opened {} sockets in {open_secs:.1} s; holding them for {} s (pings keep running)",
        last_row.0, o.hold
    );
    tokio::time::sleep(Duration::from_secs(o.hold)).await;
    let held = connections(&o.gateway) as usize;
    let rss = rss_kib(o.pid);
    println!();
    println!(
        "after {} s idle: {held} sockets held ({} alive client-side), RSS {:.1} MiB, {:.2} MiB per 1,000 sockets above the empty gateway",
        o.hold,
        alive.load(Relaxed),
        rss as f64 / 1024.0,
        (rss - baseline) as f64 / 1024.0 / (held.max(1) as f64 / 1000.0)
    );
    if held < last_row.0 {
        eprintln!("{} sockets were dropped while idle", last_row.0 - held);
        std::process::exit(1);
    }
}
