//! A circuit breaker in front of opening connections, so an unreachable Redis costs one
//! `connect_timeout` per cool-down instead of one per call.
//!
//! Without it, a Redis that accepts TCP connections but never answers (frozen, paused, or behind a
//! path that blackholes packets) makes every call that needs a new connection wait the whole
//! `connect_timeout`: php-fpm workers stay busy for that long each, and requests queue up behind
//! them. With it:
//!
//! - **closed** (normal): connections are opened as usual. A connection attempt that fails *slowly*
//!   (it timed out, or took at least half of `connect_timeout`) opens the breaker.
//! - **open**: for `breaker_cooldown` seconds, calls that need a new connection fail at once with a
//!   `Connection` error ("circuit open ..."); calls that find a live pooled connection still use it.
//! - **half-open**: after the cool-down, exactly one call (per process and endpoint) tries to
//!   connect — the trial — while other threads keep failing fast. Success closes the breaker; a slow
//!   failure opens it again for another cool-down; a fast failure closes it.
//!
//! Fast failures (connection refused, a Redis error reply such as "max number of clients reached")
//! never open it: they cost microseconds, so failing fast would save nothing, and it would only
//! delay the recovery after a restart by up to a cool-down. A `breaker_cooldown` of 0 disables it.
//!
//! The state lives in the per-process pool of an endpoint (so php-fpm workers each have their own,
//! and a forked child starts closed). Only connection attempts touch it: the hot path (a publish on
//! a pooled connection) never takes its lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// The breaker's state as `stats()` and phpinfo report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BreakerState {
    #[default]
    Closed,
    Open,
    /// The cool-down is over: the next call that needs a connection is the trial (or it is running).
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// A point-in-time copy of a breaker, part of the pool's `StatsSnapshot`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    /// When it last opened (Unix time, seconds), while it is not closed.
    pub opened_at: Option<f64>,
    /// Calls refused without trying to connect, since the process (or fork) started.
    pub fast_failures: u64,
    /// Times it opened (a failed trial opens it again).
    pub trips: u64,
}

#[derive(Default)]
pub struct Breaker {
    inner: Mutex<Inner>,
    fast_failures: AtomicU64,
    trips: AtomicU64,
}

#[derive(Default)]
struct Inner {
    open: Option<Opened>,
    /// A trial connection attempt is under way.
    trial: bool,
}

struct Opened {
    at: Instant,
    wall: SystemTime,
    cooldown: Duration,
    /// The failure that opened it (already free of secrets: an `Error` message).
    cause: String,
}

/// Why a call was refused: what the error message tells the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Time since the breaker opened.
    pub open_for: Duration,
    /// Time until the next trial may start (zero while a trial is under way).
    pub retry_in: Duration,
    pub trial_running: bool,
    pub cause: String,
}

/// Leave to attempt a connection; report the outcome with `succeeded` or `failed`. Dropping it
/// unreported (an early return, a panic) frees the trial slot and changes nothing else.
#[must_use = "report the connection attempt's outcome"]
pub struct Permit<'a> {
    breaker: Option<&'a Breaker>,
    cooldown: Duration,
    trial: bool,
}

impl Breaker {
    /// Asks to open a connection at `now`. `cooldown` zero disables the breaker for this call.
    pub fn admit(&self, now: Instant, cooldown: Duration) -> Result<Permit<'_>, Rejection> {
        if cooldown.is_zero() {
            return Ok(Permit {
                breaker: None,
                cooldown,
                trial: false,
            });
        }
        let mut inner = self.inner.lock();
        let Some(open) = &inner.open else {
            return Ok(Permit {
                breaker: Some(self),
                cooldown,
                trial: false,
            });
        };
        let retry_at = open.at + cooldown;
        if now >= retry_at && !inner.trial {
            inner.trial = true;
            return Ok(Permit {
                breaker: Some(self),
                cooldown,
                trial: true,
            });
        }
        let rejection = Rejection {
            open_for: now.saturating_duration_since(open.at),
            retry_in: retry_at.saturating_duration_since(now),
            trial_running: inner.trial,
            cause: open.cause.clone(),
        };
        drop(inner);
        self.fast_failures.fetch_add(1, Relaxed);
        Err(rejection)
    }

    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        let inner = self.inner.lock();
        let (state, opened_at) = match &inner.open {
            None => (BreakerState::Closed, None),
            Some(open) => {
                let state = if inner.trial || now >= open.at + open.cooldown {
                    BreakerState::HalfOpen
                } else {
                    BreakerState::Open
                };
                let unix = open
                    .wall
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                (state, Some(unix))
            }
        };
        BreakerSnapshot {
            state,
            opened_at,
            fast_failures: self.fast_failures.load(Relaxed),
            trips: self.trips.load(Relaxed),
        }
    }

    /// Closed, counters at zero (a forked child starts with its own state).
    pub fn reset(&self) {
        *self.inner.lock() = Inner::default();
        self.fast_failures.store(0, Relaxed);
        self.trips.store(0, Relaxed);
    }
}

impl Permit<'_> {
    /// True for the one attempt allowed after a cool-down.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// The connection was opened: Redis is reachable, the breaker closes.
    pub fn succeeded(mut self) {
        if let Some(breaker) = self.breaker.take() {
            let mut inner = breaker.inner.lock();
            inner.open = None;
            if self.trial {
                inner.trial = false;
            }
        }
    }

    /// The connection attempt failed at `now`. `slow`: it timed out or took long enough that
    /// failing fast is worth it — that opens the breaker (again). A fast failure closes it when it
    /// was the trial (Redis answers, if only to refuse) and changes nothing otherwise.
    pub fn failed(mut self, now: Instant, slow: bool, cause: &str) {
        let Some(breaker) = self.breaker.take() else {
            return;
        };
        let mut inner = breaker.inner.lock();
        if self.trial {
            inner.trial = false;
        }
        if slow {
            inner.open = Some(Opened {
                at: now,
                wall: SystemTime::now(),
                cooldown: self.cooldown,
                cause: cause.to_string(),
            });
            drop(inner);
            breaker.trips.fetch_add(1, Relaxed);
        } else if self.trial {
            inner.open = None;
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let (Some(breaker), true) = (self.breaker, self.trial) {
            breaker.inner.lock().trial = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_millis(500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A breaker opened at `t0` by one slow failure.
    fn opened(t0: Instant) -> Breaker {
        let b = Breaker::default();
        b.admit(t0, COOL)
            .unwrap()
            .failed(t0, true, "connecting timed out");
        b
    }

    #[test]
    fn closed_admits_and_fast_failures_do_not_open_it() {
        let b = Breaker::default();
        let t0 = Instant::now();
        for i in 0..100 {
            let permit = b.admit(t0 + ms(i), COOL).expect("closed admits");
            assert!(!permit.is_trial());
            permit.failed(t0 + ms(i), false, "connection refused");
        }
        let s = b.snapshot(t0 + ms(100));
        assert_eq!(s.state, BreakerState::Closed);
        assert_eq!((s.trips, s.fast_failures, s.opened_at), (0, 0, None));
    }

    #[test]
    fn a_slow_failure_opens_it_for_the_cooldown() {
        let t0 = Instant::now();
        let b = opened(t0);
        let s = b.snapshot(t0 + ms(1));
        assert_eq!(s.state, BreakerState::Open);
        assert_eq!(s.trips, 1);
        let opened_at = s.opened_at.expect("opened_at while open");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - opened_at).abs() < 5.0, "{opened_at} vs {now}");

        let r = b.admit(t0 + ms(100), COOL).err().expect("open rejects");
        assert_eq!(r.open_for, ms(100));
        assert_eq!(r.retry_in, ms(400));
        assert!(!r.trial_running);
        assert_eq!(r.cause, "connecting timed out");
        assert!(b.admit(t0 + ms(499), COOL).is_err());
        assert_eq!(b.snapshot(t0 + ms(499)).fast_failures, 2);
    }

    #[test]
    fn after_the_cooldown_exactly_one_trial_runs() {
        let t0 = Instant::now();
        let b = opened(t0);
        assert_eq!(b.snapshot(t0 + ms(500)).state, BreakerState::HalfOpen);
        let trial = b.admit(t0 + ms(500), COOL).expect("the trial");
        assert!(trial.is_trial());
        // Other threads keep failing fast while the trial runs, even long after the cool-down.
        let r = b
            .admit(t0 + ms(2000), COOL)
            .err()
            .expect("one trial at a time");
        assert!(r.trial_running);
        assert_eq!(r.retry_in, Duration::ZERO);
        assert_eq!(b.snapshot(t0 + ms(600)).state, BreakerState::HalfOpen);
        trial.succeeded();
        let s = b.snapshot(t0 + ms(600));
        assert_eq!(s.state, BreakerState::Closed);
        assert_eq!(s.opened_at, None);
        assert_eq!((s.trips, s.fast_failures), (1, 1));
        assert!(!b.admit(t0 + ms(601), COOL).unwrap().is_trial());
    }

    #[test]
    fn a_slow_trial_failure_opens_it_again_from_then() {
        let t0 = Instant::now();
        let b = opened(t0);
        b.admit(t0 + ms(500), COOL)
            .unwrap()
            .failed(t0 + ms(800), true, "handshake timed out");
        let r = b.admit(t0 + ms(900), COOL).err().expect("open again");
        assert_eq!(r.open_for, ms(100));
        assert_eq!(r.retry_in, ms(400));
        assert_eq!(r.cause, "handshake timed out");
        assert_eq!(b.snapshot(t0 + ms(900)).trips, 2);
        assert!(b.admit(t0 + ms(1300), COOL).unwrap().is_trial());
    }

    #[test]
    fn a_fast_trial_failure_closes_it() {
        let t0 = Instant::now();
        let b = opened(t0);
        b.admit(t0 + ms(500), COOL)
            .unwrap()
            .failed(t0 + ms(501), false, "connection refused");
        assert_eq!(b.snapshot(t0 + ms(502)).state, BreakerState::Closed);
        assert!(b.admit(t0 + ms(502), COOL).is_ok());
    }

    #[test]
    fn an_unreported_trial_frees_the_slot() {
        let t0 = Instant::now();
        let b = opened(t0);
        drop(b.admit(t0 + ms(500), COOL).unwrap());
        assert!(
            b.admit(t0 + ms(501), COOL).unwrap().is_trial(),
            "still open, next caller is the trial"
        );
    }

    #[test]
    fn a_success_while_closed_keeps_it_closed_and_a_late_success_closes_it() {
        let t0 = Instant::now();
        let b = Breaker::default();
        // Two threads admitted while closed: one fails slowly, the other then connects fine.
        let slow = b.admit(t0, COOL).unwrap();
        let fine = b.admit(t0, COOL).unwrap();
        slow.failed(t0 + ms(300), true, "timed out");
        assert_eq!(b.snapshot(t0 + ms(300)).state, BreakerState::Open);
        fine.succeeded();
        assert_eq!(b.snapshot(t0 + ms(301)).state, BreakerState::Closed);
    }

    #[test]
    fn zero_cooldown_disables_it() {
        let t0 = Instant::now();
        let b = Breaker::default();
        for i in 0..10 {
            b.admit(t0 + ms(i), Duration::ZERO)
                .expect("disabled never rejects")
                .failed(t0 + ms(i), true, "timed out");
        }
        assert_eq!(b.snapshot(t0 + ms(10)), BreakerSnapshot::default());
        // A disabled caller is not refused even when another client's cool-down opened it.
        let b = opened(t0);
        assert!(b.admit(t0 + ms(1), Duration::ZERO).is_ok());
        assert!(b.admit(t0 + ms(1), COOL).is_err());
    }

    #[test]
    fn the_callers_cooldown_decides_when_to_retry() {
        let t0 = Instant::now();
        let b = opened(t0);
        assert!(b.admit(t0 + ms(200), ms(1000)).is_err());
        assert!(b.admit(t0 + ms(200), ms(100)).unwrap().is_trial());
    }

    #[test]
    fn reset_forgets_everything() {
        let t0 = Instant::now();
        let b = opened(t0);
        let _ = b.admit(t0 + ms(1), COOL);
        b.reset();
        assert_eq!(b.snapshot(t0 + ms(2)), BreakerSnapshot::default());
        assert!(b.admit(t0 + ms(2), COOL).is_ok());
    }

    #[test]
    fn concurrent_callers_get_one_trial() {
        use std::sync::atomic::AtomicUsize;
        let t0 = Instant::now();
        let b = opened(t0);
        let trials = AtomicUsize::new(0);
        let rejected = AtomicUsize::new(0);
        let now = t0 + ms(600);
        let permits = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| match b.admit(now, COOL) {
                    Ok(p) => {
                        assert!(p.is_trial());
                        trials.fetch_add(1, Relaxed);
                        permits.lock().unwrap().push(p);
                    }
                    Err(_) => {
                        rejected.fetch_add(1, Relaxed);
                    }
                });
            }
        });
        assert_eq!(trials.load(Relaxed), 1);
        assert_eq!(rejected.load(Relaxed), 15);
        assert_eq!(b.snapshot(now).fast_failures, 15);
        permits.into_inner().unwrap().pop().unwrap().succeeded();
        assert_eq!(b.snapshot(now).state, BreakerState::Closed);
    }
}
