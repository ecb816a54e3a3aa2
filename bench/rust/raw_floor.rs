//! The Rust floor for `bench/run`: the least a blocking client can do per PUBLISH.
//!
//! One `std::net::TcpStream` (TCP_NODELAY), AUTH once, then a loop of one `write` of a prebuilt RESP
//! `PUBLISH` and `read`s until the `:N\r\n` reply is complete: two syscalls per publish, no
//! allocation, no parsing beyond the reply's first byte. Nothing from qrpush-core is used.
//!
//!   cargo run --release -p qrpush-bench --bin raw_floor -- HOST PORT PASSWORD N SIZE [CHANNEL]
//!
//! PASSWORD may be empty (no AUTH). Prints one JSON object on stdout with the same fields as the
//! PHP loops of bench/php/cli.php: ops/s, p50/p99 latency, wall and CPU (getrusage) µs per publish.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raw_floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        return Err("usage: raw_floor HOST PORT PASSWORD N SIZE [CHANNEL]".into());
    }
    let host = &args[0];
    let port: u16 = args[1].parse().map_err(|e| format!("port: {e}"))?;
    let password = &args[2];
    let n: usize = args[3].parse().map_err(|e| format!("N: {e}"))?;
    let size: usize = args[4].parse().map_err(|e| format!("SIZE: {e}"))?;
    let channel = args.get(5).map(String::as_str).unwrap_or("bench:events");
    if n == 0 {
        return Err("N must be at least 1".into());
    }

    let mut s = TcpStream::connect((host.as_str(), port)).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];

    if !password.is_empty() {
        let auth = resp(&[b"AUTH", password.as_bytes()]);
        s.write_all(&auth).map_err(|e| format!("AUTH: {e}"))?;
        let reply = read_line(&mut s, &mut buf)?;
        if !reply.starts_with(b"+OK") {
            return Err(format!(
                "AUTH failed: {}",
                String::from_utf8_lossy(reply).trim_end()
            ));
        }
    }

    let payload = payload(size);
    let cmd = resp(&[b"PUBLISH", channel.as_bytes(), &payload]);
    let publish = |s: &mut TcpStream, buf: &mut [u8; 512]| -> Result<(), String> {
        s.write_all(&cmd).map_err(|e| format!("write: {e}"))?;
        let reply = read_line(s, buf)?;
        if reply.first() != Some(&b':') {
            return Err(format!(
                "PUBLISH failed: {}",
                String::from_utf8_lossy(reply).trim_end()
            ));
        }
        Ok(())
    };

    for _ in 0..(n / 10).clamp(1, 1000) {
        publish(&mut s, &mut buf)?;
    }

    let mut lat = vec![0u64; n];
    let cpu0 = cpu_us();
    let t0 = Instant::now();
    for slot in lat.iter_mut() {
        let t = Instant::now();
        publish(&mut s, &mut buf)?;
        *slot = t.elapsed().as_nanos() as u64;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_us();
    let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    lat.sort_unstable();
    let pct =
        |p: f64| lat[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0;
    println!(
        "{{\"contender\":\"rust_floor\",\"n\":{n},\"ops\":{:.1},\"p50_us\":{:.2},\"p99_us\":{:.2},\"wall_us\":{:.3},\"cpu_us\":{:.3},\"user_us\":{:.3},\"sys_us\":{:.3}}}",
        n as f64 / wall,
        pct(50.0),
        pct(99.0),
        wall * 1e6 / n as f64,
        (user + sys) / n as f64,
        user / n as f64,
        sys / n as f64,
    );
    Ok(())
}

/// Reads until the buffer holds one whole line (a RESP simple reply), returns it.
fn read_line<'a>(s: &mut TcpStream, buf: &'a mut [u8; 512]) -> Result<&'a [u8], String> {
    let mut len = 0;
    loop {
        let got = s.read(&mut buf[len..]).map_err(|e| format!("read: {e}"))?;
        if got == 0 {
            return Err("connection closed by the server".into());
        }
        len += got;
        if len >= 2 && buf[len - 2] == b'\r' && buf[len - 1] == b'\n' {
            return Ok(&buf[..len]);
        }
        if len == buf.len() {
            return Err("reply too long".into());
        }
    }
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The same payload as bench/php/common.php's `bench_payload()`: printable, `size` bytes.
fn payload(size: usize) -> Vec<u8> {
    let pattern = b"{\"type\":\"qr.login\",\"status\":\"confirmed\",\"pad\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}";
    pattern.iter().copied().cycle().take(size).collect()
}

/// (user, system) CPU time of this process in µs (getrusage(RUSAGE_SELF)), std only.
#[cfg(target_os = "linux")]
fn cpu_us() -> (f64, f64) {
    #[repr(C)]
    struct Timeval {
        sec: i64,
        usec: i64,
    }
    #[repr(C)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        rest: [i64; 14],
    }
    extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    let mut r = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        rest: [0; 14],
    };
    // SAFETY: RUSAGE_SELF (0) and a properly sized, writable struct rusage (x86_64/aarch64 layout).
    if unsafe { getrusage(0, &mut r) } != 0 {
        return (f64::NAN, f64::NAN);
    }
    (
        r.utime.sec as f64 * 1e6 + r.utime.usec as f64,
        r.stime.sec as f64 * 1e6 + r.stime.usec as f64,
    )
}

#[cfg(not(target_os = "linux"))]
fn cpu_us() -> (f64, f64) {
    (f64::NAN, f64::NAN)
}
