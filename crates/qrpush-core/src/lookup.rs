//! A topology lookup: one question (a Redis Cluster's slot map, a Sentinel service's primary)
//! asked of the servers that may know, one after another, within the deadline of the call that
//! needs the answer. Written once so that both topologies lease, bound, give up and fail their
//! lookups the same way.

use std::time::Instant;

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::{Lease, LeaseTerms, Pool};

/// Asks each of `servers` in turn until one answers, starting no question once `deadline` has
/// passed. `ask` gets the server, the time its question starts and how many servers are left
/// to ask, this one included (to give each its share of the time left, when one that does not
/// answer must not use up the others' time). The first answer; else a `Connection` error
/// saying `what()` could not be done, with the last server's own message, or, when time ran out
/// before any question, the call's time bound.
pub fn ask_in_turn<S, T>(
    servers: impl ExactSizeIterator<Item = S>,
    deadline: Instant,
    config: &Config,
    what: impl FnOnce() -> String,
    mut ask: impl FnMut(S, Instant, usize) -> Result<T>,
) -> Result<T> {
    let mut left = servers.len();
    let mut last = None;
    for server in servers {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match ask(server, now, left) {
            Ok(answer) => return Ok(answer),
            Err(e) => last = Some(e),
        }
        left -= 1;
    }
    let why = last
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| format!("no time left within {:?}", config.call_bound()));
    Err(Error::new(
        ErrorKind::Connection,
        format!("{}: {why}", what()),
    ))
}

/// A connection of `pool` for one question that must be answered by `deadline`: getting it
/// takes at most `connect_timeout` and never more than is left, and the question then has
/// `timeout` from when the connection was ready, again never past `deadline`. Returns the
/// lease and when the question's reply must be in.
pub fn lease_for_question<'p>(
    pool: &'p Pool,
    config: &Config,
    deadline: Instant,
) -> Result<(Lease<'p>, Instant)> {
    let now = Instant::now();
    let terms = LeaseTerms {
        connect_timeout: config
            .connect_timeout
            .min(deadline.saturating_duration_since(now)),
        ..LeaseTerms::for_call(config, now)
    };
    let lease = pool.lease_within(&terms)?;
    let reply_by = (lease.ready_at.unwrap_or(now) + config.timeout).min(deadline);
    Ok((lease, reply_by))
}
