//! Redis Sentinel: which server is the primary of a service now. A [`Sentinel`] (one per
//! Sentinel list + service and process, shared like the pools) asks the Sentinels with
//! `SENTINEL GET-MASTER-ADDR-BY-NAME`, caches the answer, and forgets it when a call finds a
//! replica or loses its connection, so the next call asks again.
//!
//! The answer is not trusted blindly (a Sentinel may not have seen a failover yet): every
//! connection to a data node makes the primary check of `connection.rs` (ROLE on a new
//! connection, the check behind each publish), and the client asks the Sentinels again after a
//! `Replica` error or a reply that retires the connection (READONLY...).
//!
//! A Sentinel is asked on a connection of its own, opened for the question and closed after it
//! (with the Sentinels' own credentials, `sentinel_user`/`sentinel_password`, never the URL's,
//! which are the data nodes'; without the primary check: a Sentinel is no data node). That happens once per process and after a failover. Asking is
//! bounded by the deadline of the call that needs the primary, across all the Sentinels tried.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use once_cell::sync::Lazy;
use parking_lot::{Mutex, RwLock};
use redis::Value;

use crate::cluster::Node;
use crate::config::Config;
use crate::connection::{server_error, Connection};
use crate::endpoint::{Address, Endpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::{shared_pool, Pool};
use crate::stats::{Stats, StatsSnapshot, TopologySnapshot};

pub struct Sentinel {
    endpoint: Endpoint,
    pool_size: usize,
    /// The verified primary; `None` until first needed and after it failed a call.
    primary: RwLock<Option<Node>>,
    /// The primary before the last one, to count changes once.
    last_primary: Mutex<Option<Node>>,
    /// The calls made through this service.
    pub stats: Stats,
    /// Times a different primary than the previous one was found (failovers followed).
    pub failovers: AtomicU64,
}

static SENTINELS: Lazy<Mutex<HashMap<Endpoint, Arc<Sentinel>>>> = Lazy::new(Default::default);

/// The process-wide [`Sentinel`] for a `redis-sentinel://` endpoint.
pub fn shared_sentinel(endpoint: &Endpoint, pool_size: usize) -> Arc<Sentinel> {
    let mut all = SENTINELS.lock();
    Arc::clone(all.entry(endpoint.clone()).or_insert_with(|| {
        Arc::new(Sentinel {
            endpoint: endpoint.clone(),
            pool_size,
            primary: RwLock::new(None),
            last_primary: Mutex::new(None),
            stats: Stats::default(),
            failovers: AtomicU64::new(0),
        })
    }))
}

impl Sentinel {
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn service(&self) -> &str {
        match &self.endpoint.address {
            Address::Sentinel { service, .. } => service,
            _ => "",
        }
    }

    /// The pool of a data node.
    pub fn node_pool(&self, node: &Node) -> Arc<Pool> {
        shared_pool(&self.endpoint.member(&node.host, node.port), self.pool_size)
    }

    /// The cached primary, if any (no network).
    pub fn current_primary(&self) -> Option<Node> {
        self.primary.read().clone()
    }

    /// The primary: cached, else asked of the Sentinels (within the deadline of the call that
    /// started at `start`).
    pub fn primary(&self, config: &Config, start: Instant) -> Result<Node> {
        let cached = self.primary.read().clone();
        match cached {
            Some(node) => Ok(node),
            None => self.discover(config, start),
        }
    }

    /// Forgets the primary (it turned out a replica, or its connection broke).
    pub fn forget_primary(&self) {
        *self.primary.write() = None;
    }

    /// Asks each Sentinel in turn for the primary and caches the first answer; bounded by the
    /// deadline of the call that started at `start` overall.
    pub fn discover(&self, config: &Config, start: Instant) -> Result<Node> {
        let deadline = start + config.call_bound();
        let Address::Sentinel { sentinels, .. } = &self.endpoint.address else {
            unreachable!("a Sentinel is made from a redis-sentinel:// endpoint");
        };
        let mut last = None;
        for (host, port) in sentinels {
            if Instant::now() >= deadline {
                break;
            }
            match self.ask(host, *port, config, deadline) {
                Ok(node) => {
                    let mut last_primary = self.last_primary.lock();
                    if last_primary.as_ref().is_some_and(|old| *old != node) {
                        self.failovers.fetch_add(1, Relaxed);
                    }
                    *last_primary = Some(node.clone());
                    *self.primary.write() = Some(node.clone());
                    return Ok(node);
                }
                Err(e) => last = Some(e),
            }
        }
        let why = last
            .map(|e| e.message().to_string())
            .unwrap_or_else(|| format!("no time left within {:?}", config.call_bound()));
        Err(Error::new(
            ErrorKind::Connection,
            format!(
                "no primary of the Sentinel service '{}' found through {}: {why}",
                self.service(),
                self.endpoint.label()
            ),
        ))
    }

    fn ask(&self, host: &str, port: u16, config: &Config, deadline: Instant) -> Result<Node> {
        let connect_by = (Instant::now() + config.connect_timeout).min(deadline);
        let mut conn =
            Connection::open_to_sentinel(&self.endpoint.sentinel(host, port), connect_by)?;
        let request_by = (Instant::now() + config.timeout).min(deadline);
        let service = self.service();
        let reply = conn.request_one(request_by, |p| {
            p.command(|cmd| {
                cmd.arg("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(service);
            })
        })?;
        let text = |v: &Value| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        match reply {
            Value::Array(addr) if addr.len() == 2 => {
                let primary_host = text(&addr[0]);
                let primary_port = text(&addr[1]).and_then(|p| p.parse::<u16>().ok());
                match (primary_host, primary_port) {
                    (Some(host), Some(port)) => Ok(Node { host, port }),
                    _ => Err(Error::new(
                        ErrorKind::Protocol,
                        format!("malformed address from the Sentinel at {host}:{port}"),
                    )),
                }
            }
            Value::Nil => Err(Error::new(
                ErrorKind::Server,
                format!(
                    "the Sentinel at {host}:{port} does not know the service '{}'",
                    self.service()
                ),
            )),
            Value::ServerError(e) => Err(server_error(&e, "SENTINEL GET-MASTER-ADDR-BY-NAME")),
            other => Err(Error::new(
                ErrorKind::Protocol,
                format!("unexpected reply to SENTINEL GET-MASTER-ADDR-BY-NAME: {other:?}"),
            )),
        }
    }

    /// The calls through this service, with the current primary's pool numbers.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut snapshot = StatsSnapshot {
            published: self.stats.published.load(Relaxed),
            failed: self.stats.failed.load(Relaxed),
            last_error: self.stats.last_error(),
            latency: self.stats.latency(),
            endpoint: self.endpoint.redacted_url(),
            pid: crate::process::current_pid(),
            ..StatsSnapshot::default()
        };
        let primary = self.current_primary();
        snapshot.topology = TopologySnapshot {
            kind: "sentinel",
            service: Some(self.service().to_string()),
            primary: primary
                .as_ref()
                .map(|n| self.endpoint.member(&n.host, n.port).label()),
            failovers: self.failovers.load(Relaxed),
            redirects: 0,
        };
        if let Some(node) = primary {
            let pool = self.node_pool(&node).snapshot();
            snapshot.reconnects = pool.reconnects;
            snapshot.connections_created = pool.connections_created;
            snapshot.pool_size = pool.pool_size;
            snapshot.pool_idle = pool.pool_idle;
            snapshot.pool_in_use = pool.pool_in_use;
            snapshot.breaker = pool.breaker;
        }
        snapshot
    }
}
