//! Host names to addresses within a deadline.
//!
//! The system resolver (`getaddrinfo`, behind std's `ToSocketAddrs`) takes no time bound: with a
//! name server that never answers it blocks for resolv.conf's `timeout × attempts`, for each
//! address family — ten seconds and more — while the caller promised to return within
//! `connect_timeout`. So a lookup runs on a helper thread and the caller waits for it only until
//! its deadline; the system resolver is kept (no resolver of our own): /etc/hosts, nsswitch and
//! resolv.conf mean what the administrator expects.
//!
//! - **One lookup per name at a time.** Callers that need a name while its lookup runs wait for
//!   that same lookup, so a dead name server costs one helper thread per name, never one per call:
//!   the threads a stall can leave behind are bounded by the names in use.
//! - **Results are kept briefly**: an answer for [`ANSWER_KEPT_FOR`], a quick failure (an unknown
//!   name) for [`FAILURE_KEPT_FOR`]. Connections are pooled, so lookups are rare anyway; the memory
//!   only spares a burst of new connections (a restart, a failover) one lookup each, and is short
//!   enough that a name moved to a new primary is followed within seconds. A failure that took the
//!   resolver's own timeout (the name server did not answer) is not kept: the next call asks again
//!   at once, so publishing resumes as soon as the name server answers.
//! - Literal IP addresses never reach the resolver.
//! - Fork: a lookup started by another process (the parent) has no thread here; it is ignored.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex};

/// How long an answer is reused.
pub const ANSWER_KEPT_FOR: Duration = Duration::from_secs(5);
/// How long a failed lookup (unknown name, resolver error) is reported again without asking.
pub const FAILURE_KEPT_FOR: Duration = Duration::from_secs(1);
/// A failed lookup that took longer than this was a name server not answering: not kept.
const QUICK_FAILURE: Duration = Duration::from_millis(100);
/// Names remembered at most; finished lookups beyond it are forgotten, oldest first.
const NAMES_KEPT: usize = 64;
/// getaddrinfo and the NSS modules it loads run on this stack.
const HELPER_STACK: usize = 256 * 1024;

/// The error inside an `io::Error` of kind `TimedOut` when the deadline passed before the name
/// server answered (so messages can say "resolving", not "connecting").
#[derive(Debug)]
pub struct Unanswered {
    host: String,
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no answer from the name server for {} in time",
            self.host
        )
    }
}

impl std::error::Error for Unanswered {}

/// True for the error `socket_addrs` returns when the name server did not answer in time.
pub fn is_unanswered(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Unanswered>())
}

/// The addresses of `host` (a name or a literal IP) with `port`, before `deadline`.
pub fn socket_addrs(host: &str, port: u16, deadline: Instant) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let ips = lookup(host, deadline)?;
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// What a lookup found: addresses, or the resolver's error (kind and text, an `io::Error` is not
/// `Clone`).
type Answer = Result<Vec<IpAddr>, (io::ErrorKind, String)>;

struct Lookup {
    /// The process whose helper thread answers it.
    pid: u32,
    /// The answer, and until when it may be reused.
    answer: Mutex<Option<(Answer, Instant)>>,
    answered: Condvar,
}

impl Lookup {
    /// Still usable at `now`: running, or answered recently enough.
    fn is_current(&self, now: Instant, pid: u32) -> bool {
        if self.pid != pid {
            return false;
        }
        match &*self.answer.lock() {
            None => true,
            Some((_, kept_until)) => now < *kept_until,
        }
    }

    fn is_finished(&self) -> bool {
        self.answer.lock().is_some()
    }
}

static LOOKUPS: Lazy<Mutex<HashMap<String, Arc<Lookup>>>> = Lazy::new(Default::default);

fn lookup(host: &str, deadline: Instant) -> io::Result<Vec<IpAddr>> {
    let now = Instant::now();
    let pid = crate::process::current_pid();
    let lookup = {
        let mut lookups = LOOKUPS.lock();
        match lookups.get(host) {
            Some(l) if l.is_current(now, pid) => Arc::clone(l),
            _ => {
                let l = Arc::new(Lookup {
                    pid,
                    answer: Mutex::new(None),
                    answered: Condvar::new(),
                });
                start_helper(host, Arc::clone(&l))?;
                if lookups.len() >= NAMES_KEPT {
                    // Another process's lookups (the parent's, before a fork) are dropped without
                    // touching their locks, which its helper thread may have held at the fork.
                    lookups.retain(|_, l| l.pid == pid && !l.is_finished());
                }
                lookups.insert(host.to_string(), Arc::clone(&l));
                l
            }
        }
    };
    let mut answer = lookup.answer.lock();
    while answer.is_none() {
        if lookup
            .answered
            .wait_until(&mut answer, deadline)
            .timed_out()
            && answer.is_none()
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                Unanswered {
                    host: host.to_string(),
                },
            ));
        }
    }
    match &answer.as_ref().expect("answered").0 {
        Ok(ips) if ips.is_empty() => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        )),
        Ok(ips) => Ok(ips.clone()),
        Err((kind, text)) => Err(io::Error::new(*kind, text.clone())),
    }
}

/// Runs the system resolver for `host` on a thread of its own, which records the answer and
/// wakes the waiters, however long after their deadlines that is.
fn start_helper(host: &str, lookup: Arc<Lookup>) -> io::Result<()> {
    let host = host.to_string();
    std::thread::Builder::new()
        .name("qrpush-resolve".into())
        .stack_size(HELPER_STACK)
        .spawn(move || {
            let started = Instant::now();
            let answer = (host.as_str(), 0)
                .to_socket_addrs()
                .map(|addrs| {
                    let mut ips: Vec<IpAddr> = Vec::new();
                    for a in addrs {
                        if !ips.contains(&a.ip()) {
                            ips.push(a.ip());
                        }
                    }
                    ips
                })
                .map_err(|e| (e.kind(), e.to_string()));
            let now = Instant::now();
            let kept_until = match &answer {
                Ok(_) => now + ANSWER_KEPT_FOR,
                Err(_) if now - started < QUICK_FAILURE => now + FAILURE_KEPT_FOR,
                Err(_) => now,
            };
            *lookup.answer.lock() = Some((answer, kept_until));
            lookup.answered.notify_all();
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn literal_addresses_are_not_looked_up() {
        let addrs = socket_addrs("127.0.0.1", 6379, Instant::now()).unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:6379".parse().unwrap()]);
        let addrs = socket_addrs("::1", 7000, Instant::now()).unwrap();
        assert_eq!(addrs, vec!["[::1]:7000".parse().unwrap()]);
    }

    #[test]
    fn a_name_resolves_and_the_answer_is_kept() {
        let addrs = socket_addrs("localhost", 6379, soon()).unwrap();
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 6379));
        let first = Arc::clone(LOOKUPS.lock().get("localhost").unwrap());
        // Asked again with another port and a deadline already past: the kept answer serves.
        let again = socket_addrs("localhost", 1, Instant::now()).unwrap();
        assert_eq!(again.len(), addrs.len());
        assert!(Arc::ptr_eq(
            &first,
            LOOKUPS.lock().get("localhost").unwrap()
        ));
    }

    #[test]
    fn a_lookup_that_has_not_answered_by_the_deadline_times_out() {
        // A lookup that never answers: a waiter gives up at its deadline.
        let host = "never.answers.test";
        LOOKUPS.lock().insert(
            host.to_string(),
            Arc::new(Lookup {
                pid: crate::process::current_pid(),
                answer: Mutex::new(None),
                answered: Condvar::new(),
            }),
        );
        let start = Instant::now();
        let err = socket_addrs(host, 6379, start + Duration::from_millis(100)).unwrap_err();
        let elapsed = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(is_unanswered(&err), "{err}");
        assert!(
            elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(600),
            "{elapsed:?}"
        );
        LOOKUPS.lock().remove(host);
    }
}
