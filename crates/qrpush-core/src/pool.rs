//! The per-process connection pool: one per endpoint + credentials, shared by every client and,
//! under ZTS, by every thread; bounded by `pool_size`; aware of fork().
//!
//! Connections are opened lazily by the first call that needs one — never at module startup,
//! because php-fpm's master forks its workers after startup and a socket shared by two processes
//! corrupts both. A connection remembers the pid that opened it; a forked child drops the
//! inherited ones (closing its copy of the descriptor only) and opens its own.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex};

use crate::breaker::Breaker;
use crate::config::Config;
use crate::connection::Connection;
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::stats::{Stats, StatsSnapshot};

/// A pooled connection unused for this long is closed (when the pool is next used, or by the
/// sweep), and a pool no client holds any more is dropped once it has been unused for this long:
/// a process that served many tenants, each with its own `Client` and Redis, does not keep their
/// sockets and buffers for ever.
pub const IDLE_CLOSE_AFTER: Duration = Duration::from_secs(300);
/// How often `shared_pool` looks for such connections and pools.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct Pool {
    endpoint: Endpoint,
    size: usize,
    state: Mutex<PoolState>,
    /// Signalled when a connection is returned, for threads waiting on a full pool.
    returned: Condvar,
    pub stats: Stats,
    /// Fails calls fast after a slow connection failure (see `breaker`).
    pub breaker: Breaker,
    /// The connections go to a Sentinel, not a data node: they skip the primary check (a
    /// Sentinel answers ROLE with `sentinel`).
    to_sentinel: bool,
}

struct PoolState {
    /// The process these connections belong to.
    pid: u32,
    /// Most recently returned last: lending takes from the end, so surplus connections age at the
    /// front, where `release_slot` closes them.
    idle: Vec<Connection>,
    in_use: usize,
    /// The start of the last call that asked for a connection.
    last_lease: Instant,
}

/// What a call asks of the pool.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    /// The call's start: idle ages are measured from it (no clock read of its own).
    pub now: Instant,
    /// Waiting for a free connection, checking an idle one and opening a new one all end this long
    /// after `now` (computed only when one of them happens: a pooled connection lent at once
    /// costs no clock arithmetic).
    pub connect_timeout: Duration,
    /// The circuit breaker's cool-down; zero: no breaker for this call.
    pub breaker_cooldown: Duration,
    /// A connection idle at least this long answers a PING before it is lent; zero: never.
    pub idle_check_after: Duration,
}

impl LeaseTerms {
    /// Terms for a call starting now: `connect_timeout` to get a connection, no breaker, no idle
    /// check.
    pub fn from_now(connect_timeout: Duration) -> Self {
        LeaseTerms {
            now: Instant::now(),
            connect_timeout,
            breaker_cooldown: Duration::ZERO,
            idle_check_after: Duration::ZERO,
        }
    }

    /// The terms of a call made with `config` that started at `start`.
    pub fn for_call(config: &Config, start: Instant) -> Self {
        LeaseTerms {
            now: start,
            connect_timeout: config.connect_timeout,
            breaker_cooldown: config.breaker_cooldown,
            idle_check_after: config.idle_check_after,
        }
    }

    /// When getting a connection must be done.
    pub fn connect_by(&self) -> Instant {
        self.now + self.connect_timeout
    }
}

/// Every pool of this process, keyed by endpoint (address, credentials, db).
struct Pools {
    by_endpoint: HashMap<Endpoint, Arc<Pool>>,
    last_sweep: Option<Instant>,
}

static POOLS: Lazy<Mutex<Pools>> = Lazy::new(|| {
    Mutex::new(Pools {
        by_endpoint: HashMap::new(),
        last_sweep: None,
    })
});

/// The process-wide pool for `endpoint`. The first caller fixes its size. Every `SWEEP_EVERY`,
/// closes connections and drops pools unused for `IDLE_CLOSE_AFTER` (see `evict_idle`).
pub fn shared_pool(endpoint: &Endpoint, size: usize) -> Arc<Pool> {
    let now = Instant::now();
    let mut pools = POOLS.lock();
    if pools
        .last_sweep
        .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY)
    {
        pools.last_sweep = Some(now);
        sweep(&mut pools.by_endpoint, now);
    }
    if let Some(pool) = pools.by_endpoint.get(endpoint) {
        return Arc::clone(pool);
    }
    let pool = Arc::new(Pool::new(endpoint.clone(), size));
    pools
        .by_endpoint
        .insert(endpoint.clone(), Arc::clone(&pool));
    pool
}

/// Closes every pooled connection unused since `now - IDLE_CLOSE_AFTER`, and forgets every pool
/// that no client holds and no call used since then. `shared_pool` runs it every `SWEEP_EVERY`;
/// tests pass a `now` in the future.
pub fn evict_idle(now: Instant) {
    sweep(&mut POOLS.lock().by_endpoint, now);
}

fn sweep(pools: &mut HashMap<Endpoint, Arc<Pool>>, now: Instant) {
    pools.retain(|_, pool| {
        pool.close_idle(now, IDLE_CLOSE_AFTER);
        // Held only by this map: no client can lend from it until shared_pool hands it out again.
        Arc::strong_count(pool) > 1 || !pool.unused_since(now, IDLE_CLOSE_AFTER)
    });
}

/// A connection lent by the pool; goes back on drop unless `discard`ed.
pub struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
    /// True when opened for this lease (a failure on it is not a stale-connection problem).
    pub fresh: bool,
    /// When the connection was ready, if getting it took a clock read (a wait, an idle check, a
    /// new connection); `None`: at once, at the call's start.
    pub ready_at: Option<Instant>,
    /// The call's start.
    at: Instant,
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
                last_lease: Instant::now(),
            }),
            returned: Condvar::new(),
            stats: Stats::default(),
            breaker: Breaker::default(),
            to_sentinel: false,
        }
    }

    /// A pool of connections to one Sentinel (`endpoint` carries the Sentinels' own
    /// credentials): no primary check on them. Owned by its [`crate::sentinel::Sentinel`], not
    /// shared through `shared_pool`.
    pub fn to_sentinel(endpoint: Endpoint, size: usize) -> Self {
        Pool {
            to_sentinel: true,
            ..Pool::new(endpoint, size)
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Lends a live connection: an idle one if any is still connected, else a new one, within
    /// `connect_timeout` from now, without circuit breaker or idle check (see `lease_within`).
    pub fn lease(&self, connect_timeout: Duration) -> Result<Lease<'_>> {
        self.lease_within(&LeaseTerms::from_now(connect_timeout))
    }

    /// Lends a live connection by `terms.connect_by`: an idle one if any is still connected (and,
    /// after `idle_check_after` unused, answers a PING), else a new one. Waits for a free slot
    /// when `pool_size` connections are all in use. With a breaker cool-down, the circuit breaker
    /// stands in front of opening a connection: while it is open (after a slow connection
    /// failure), a call that needs a new connection fails at once; a live idle one is still lent.
    pub fn lease_within(&self, terms: &LeaseTerms) -> Result<Lease<'_>> {
        let mut state = self.state.lock();
        self.adopt_after_fork(&mut state);
        state.last_lease = terms.now;
        let mut waited = false;
        loop {
            if let Some(mut conn) = state.idle.pop() {
                state.in_use += 1;
                drop(state);
                let idle_for = terms.now.saturating_duration_since(conn.last_used());
                if idle_for < IDLE_CLOSE_AFTER && conn.is_reusable() {
                    let checked =
                        !terms.idle_check_after.is_zero() && idle_for >= terms.idle_check_after;
                    let ready_at = if checked {
                        match self.answers_ping(&mut conn, terms.connect_by()) {
                            Some(at) => Some(at),
                            None => {
                                self.stats.reconnects.fetch_add(1, Relaxed);
                                drop(conn);
                                return self.open_in_slot(terms);
                            }
                        }
                    } else if waited {
                        Some(Instant::now())
                    } else {
                        None
                    };
                    conn.set_last_used(terms.now);
                    return Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                        fresh: false,
                        ready_at,
                        at: terms.now,
                    });
                }
                // Closed by the server while idle (restart, CLIENT KILL, idle timeout), left
                // unusable, or unused for too long: replace it silently, before anything was
                // written.
                self.stats.reconnects.fetch_add(1, Relaxed);
                drop(conn);
                return self.open_in_slot(terms);
            }
            if state.in_use < self.size {
                state.in_use += 1;
                drop(state);
                return self.open_in_slot(terms);
            }
            waited = true;
            if self
                .returned
                .wait_until(&mut state, terms.connect_by())
                .timed_out()
            {
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

    /// Whether an idle connection still reaches Redis, asked with a PING that may take half of
    /// what is left until `connect_by` (the other half stays for opening a new connection when
    /// it does not answer). A path that dropped the connection silently (a NAT or load balancer
    /// that forgot an idle flow) accepts the PING and never answers; the liveness peek cannot
    /// tell. Any reply, even an error (an ACL without +ping), is an answer. Returns when it
    /// answered.
    fn answers_ping(&self, conn: &mut Connection, connect_by: Instant) -> Option<Instant> {
        let now = Instant::now();
        let probe_by = now + connect_by.saturating_duration_since(now) / 2;
        let answered = conn
            .request_one(probe_by, |p| {
                p.command(|cmd| {
                    cmd.arg("PING");
                })
            })
            .is_ok();
        answered.then(Instant::now)
    }

    /// Opens a connection for a slot already counted in `in_use`; gives the slot back on failure.
    fn open_in_slot(&self, terms: &LeaseTerms) -> Result<Lease<'_>> {
        let start = Instant::now();
        let permit = match self.breaker.admit(start, terms.breaker_cooldown) {
            Ok(permit) => permit,
            Err(open) => {
                self.release_slot(None, terms.now);
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
                .with_hint(&format!("qrpush.{}", crate::config::name::BREAKER_COOLDOWN)));
            }
        };
        let connect_by = terms.connect_by();
        let opened = if self.to_sentinel {
            Connection::open_to_sentinel(&self.endpoint, connect_by)
        } else {
            Connection::open(&self.endpoint, connect_by)
        };
        match opened {
            Ok(mut conn) => {
                permit.succeeded();
                self.stats.connections_created.fetch_add(1, Relaxed);
                conn.set_last_used(terms.now);
                Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                    fresh: true,
                    ready_at: Some(Instant::now()),
                    at: terms.now,
                })
            }
            Err(e) => {
                // Only a slow failure is worth failing fast for: a refusal costs microseconds.
                let now = Instant::now();
                let bound = connect_by.saturating_duration_since(start);
                let slow = e.kind() == ErrorKind::Timeout || now - start >= bound / 2;
                permit.failed(now, slow, e.message());
                self.release_slot(None, terms.now);
                Err(e)
            }
        }
    }

    /// Gives a slot back, with its connection to pool again if any. Then, when more than one is
    /// idle, the oldest is closed if it was unused for `IDLE_CLOSE_AFTER` at `now` (the returning
    /// call's start): a pool that once needed many connections shrinks back as the load drops.
    fn release_slot(&self, conn: Option<Connection>, now: Instant) {
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
        let expired = match state.idle.first() {
            Some(oldest)
                if now.saturating_duration_since(oldest.last_used()) >= IDLE_CLOSE_AFTER =>
            {
                Some(state.idle.remove(0))
            }
            _ => None,
        };
        drop(state);
        self.returned.notify_one();
        drop(expired);
    }

    /// Closes the idle connections unused for `age` at `now`.
    pub fn close_idle(&self, now: Instant, age: Duration) {
        let mut state = self.state.lock();
        self.adopt_after_fork(&mut state);
        let (keep, close): (Vec<_>, Vec<_>) = std::mem::take(&mut state.idle)
            .into_iter()
            .partition(|c| now.saturating_duration_since(c.last_used()) < age);
        state.idle = keep;
        drop(state);
        drop(close);
    }

    /// True when nothing is lent and no call asked for a connection for `age` at `now`.
    fn unused_since(&self, now: Instant, age: Duration) -> bool {
        let state = self.state.lock();
        state.in_use == 0 && now.saturating_duration_since(state.last_lease) >= age
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
            topology: crate::stats::TopologySnapshot {
                kind: "standalone",
                ..Default::default()
            },
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
        self.pool.stats.reconnects.fetch_add(1, Relaxed);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.pool.release_slot(self.conn.take(), self.at);
    }
}
