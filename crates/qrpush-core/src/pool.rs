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
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Lends a live connection: an idle one if any is still connected, else a new one. Waits for
    /// a free slot when `pool_size` connections are all in use, at most `connect_timeout`.
    pub fn lease(&self, connect_timeout: Duration, timeout: Duration) -> Result<Lease<'_>> {
        let deadline = Instant::now() + connect_timeout;
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
                return self.open_in_slot(connect_timeout, timeout);
            }
            if state.in_use < self.size {
                state.in_use += 1;
                drop(state);
                return self.open_in_slot(connect_timeout, timeout);
            }
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
    fn open_in_slot(&self, connect_timeout: Duration, timeout: Duration) -> Result<Lease<'_>> {
        match Connection::open(&self.endpoint, connect_timeout, timeout) {
            Ok(conn) => {
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
