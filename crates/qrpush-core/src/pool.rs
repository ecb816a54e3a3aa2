//! The per-process connection pool: one per endpoint + credentials, shared by every client and,
//! under ZTS, by every thread; bounded by `pool_size`; aware of fork().
//!
//! Connections are opened lazily by the first call that needs one — never at module startup,
//! because php-fpm's master forks its workers after startup and a socket shared by two processes
//! corrupts both. A connection remembers the pid that opened it; a forked child drops the
//! inherited ones (closing its copy of the descriptor only) and opens its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex};

use crate::breaker::Breaker;
use crate::connection::Connection;
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::stats::{Stats, StatsSnapshot};

pub struct Pool {
    endpoint: Endpoint,
    size: usize,
    state: Mutex<PoolState>,
    /// Signalled when a connection is returned, for threads waiting on a full pool.
    returned: Condvar,
    pub stats: Stats,
    /// Fails calls fast after a slow connection failure (see `breaker`).
    pub breaker: Breaker,
}

struct PoolState {
    /// The process these connections belong to.
    pid: u32,
    idle: Vec<Connection>,
    in_use: usize,
}

/// Every pool of this process, keyed by endpoint (address, credentials, db).
static POOLS: Lazy<Mutex<HashMap<Endpoint, Arc<Pool>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// The process-wide pool for `endpoint`. The first caller fixes its size.
pub fn shared_pool(endpoint: &Endpoint, size: usize) -> Arc<Pool> {
    let mut pools = POOLS.lock();
    if let Some(pool) = pools.get(endpoint) {
        return Arc::clone(pool);
    }
    let pool = Arc::new(Pool::new(endpoint.clone(), size));
    pools.insert(endpoint.clone(), Arc::clone(&pool));
    pool
}

/// A connection lent by the pool; goes back on drop unless `discard`ed.
pub struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
    /// True when opened for this lease (a failure on it is not a stale-connection problem).
    pub fresh: bool,
}

impl Pool {
    pub fn new(endpoint: Endpoint, size: usize) -> Self {
        Pool {
            endpoint,
            size: size.max(1),
            state: Mutex::new(PoolState {
                pid: crate::process::current_pid(),
                idle: Vec::new(),
                in_use: 0,
            }),
            returned: Condvar::new(),
            stats: Stats::default(),
            breaker: Breaker::default(),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Lends a live connection: an idle one if any is still connected, else a new one. Waits for
    /// a free slot when `pool_size` connections are all in use, at most `connect_timeout`.
    /// No circuit breaker: see `lease_guarded`.
    pub fn lease(&self, connect_timeout: Duration, timeout: Duration) -> Result<Lease<'_>> {
        self.lease_guarded(connect_timeout, timeout, Duration::ZERO)
    }

    /// `lease`, with the circuit breaker in front of opening a connection: while it is open
    /// (`breaker_cooldown` after a slow connection failure), a call that needs a new connection
    /// fails at once. A live idle connection is still lent. A zero cool-down disables it.
    pub fn lease_guarded(
        &self,
        connect_timeout: Duration,
        timeout: Duration,
        breaker_cooldown: Duration,
    ) -> Result<Lease<'_>> {
        // Only needed when every connection is busy: no clock read on the common path.
        let mut deadline = None;
        let mut state = self.state.lock();
        self.adopt_after_fork(&mut state);
        loop {
            if let Some(conn) = state.idle.pop() {
                state.in_use += 1;
                drop(state);
                if conn.is_reusable() {
                    return Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                        fresh: false,
                    });
                }
                // Closed by the server while idle (restart, CLIENT KILL, idle timeout): replace it
                // silently, before anything was written.
                self.stats
                    .reconnects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(conn);
                return self.open_in_slot(connect_timeout, timeout, breaker_cooldown);
            }
            if state.in_use < self.size {
                state.in_use += 1;
                drop(state);
                return self.open_in_slot(connect_timeout, timeout, breaker_cooldown);
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + connect_timeout);
            if self.returned.wait_until(&mut state, deadline).timed_out() {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "all {} connections to Redis at {} are busy",
                        self.size,
                        self.endpoint.label()
                    ),
                )
                .with_hint("raise qrpush.pool_size"));
            }
            self.adopt_after_fork(&mut state);
        }
    }

    /// Opens a connection for a slot already counted in `in_use`; gives the slot back on failure.
    fn open_in_slot(
        &self,
        connect_timeout: Duration,
        timeout: Duration,
        breaker_cooldown: Duration,
    ) -> Result<Lease<'_>> {
        let start = Instant::now();
        let permit = match self.breaker.admit(start, breaker_cooldown) {
            Ok(permit) => permit,
            Err(open) => {
                self.release_slot(None);
                let label = self.endpoint.label();
                let why = if open.trial_running {
                    "a trial connection is under way".to_string()
                } else {
                    format!("retrying after {:.3} s", open.retry_in.as_secs_f64())
                };
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "circuit open for Redis at {label} since {:.3} s ago ({}); {why}",
                        open.open_for.as_secs_f64(),
                        open.cause
                    ),
                )
                .with_hint("qrpush.breaker_cooldown"));
            }
        };
        match Connection::open(&self.endpoint, connect_timeout, timeout) {
            Ok(conn) => {
                permit.succeeded();
                self.stats
                    .connections_created
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                    fresh: true,
                })
            }
            Err(e) => {
                // Only a slow failure is worth failing fast for: a refusal costs microseconds.
                let now = Instant::now();
                let slow = e.kind() == ErrorKind::Timeout || now - start >= connect_timeout / 2;
                permit.failed(now, slow, e.message());
                self.release_slot(None);
                Err(e)
            }
        }
    }

    fn release_slot(&self, conn: Option<Connection>) {
        let mut state = self.state.lock();
        match conn {
            // A connection from before a fork belongs to the other process: never pool it here.
            Some(conn) if conn.pid() == state.pid => {
                state.idle.push(conn);
                state.in_use = state.in_use.saturating_sub(1);
            }
            Some(_) => {}
            None => state.in_use = state.in_use.saturating_sub(1),
        }
        drop(state);
        self.returned.notify_one();
    }

    /// After fork(), the child inherits the parent's idle connections and counters: forget them.
    /// Dropping a connection only closes this process's copy of the descriptor; the parent's
    /// socket stays open and untouched (nothing is written to it).
    fn adopt_after_fork(&self, state: &mut PoolState) {
        let pid = crate::process::current_pid();
        if state.pid != pid {
            state.pid = pid;
            state.idle.clear();
            state.in_use = 0;
            self.stats.reset();
            self.breaker.reset();
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let (idle, in_use) = {
            let mut state = self.state.lock();
            self.adopt_after_fork(&mut state);
            (state.idle.len(), state.in_use)
        };
        use std::sync::atomic::Ordering::Relaxed;
        StatsSnapshot {
            published: self.stats.published.load(Relaxed),
            failed: self.stats.failed.load(Relaxed),
            reconnects: self.stats.reconnects.load(Relaxed),
            connections_created: self.stats.connections_created.load(Relaxed),
            pool_size: self.size,
            pool_idle: idle,
            pool_in_use: in_use,
            last_error: self.stats.last_error(),
            latency: self.stats.latency(),
            endpoint: self.endpoint.redacted_url(),
            pid: crate::process::current_pid(),
            breaker: self.breaker.snapshot(Instant::now()),
        }
    }
}

impl Lease<'_> {
    pub fn connection(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped or discarded")
    }

    /// Drops a connection that can no longer be trusted (I/O error, timeout, bad reply).
    pub fn discard(mut self) {
        self.conn = None;
        self.pool
            .stats
            .reconnects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.pool.release_slot(self.conn.take());
    }
}
