//! Free loopback ports for the servers of a test.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// Ports no test server may take: `QRPUSH_RESERVED_PORTS` (space- or comma-separated), by default
/// 2024 (taken on the project's machines) and 6379 (a developer's own Redis). scripts/lib.sh and
/// the PHP harness read the same variable.
pub fn reserved_ports() -> &'static [u16] {
    static RESERVED: OnceLock<Vec<u16>> = OnceLock::new();
    RESERVED.get_or_init(|| {
        let list = std::env::var("QRPUSH_RESERVED_PORTS").unwrap_or_else(|_| "2024 6379".into());
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse()
                    .unwrap_or_else(|_| panic!("QRPUSH_RESERVED_PORTS: '{p}' is not a port"))
            })
            .collect()
    })
}

/// Ports handed out by this process, so two servers of one test binary never race for one.
fn claimed() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A free loopback port: the kernel picks one for a throw-away listener; never a reserved one, nor
/// one this process handed out and has not released.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        if reserved_ports().contains(&port) {
            continue;
        }
        if claimed().lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Gives a port from `free_port` back (its server is gone).
pub(crate) fn release(port: u16) {
    claimed().lock().unwrap().remove(&port);
}
