//! The PHP-facing operations shared by the `QrPush` facade and `QrPush\Client`: convert the
//! arguments, call the core, map the error. Nothing else happens here.

use ext_php_rs::boxed::ZBox;
use ext_php_rs::exception::PhpResult;
use ext_php_rs::types::{ZendHashTable, Zval};
use qrpush_core::{Client, Error, ItemPart, StatsSnapshot, Subject};

use crate::engine::{self, HeldString};
use crate::exceptions::{to_php, Argument, Holds};
use crate::message::{to_held_payload, to_payload, type_name};

/// `publish(string $channel, mixed $message)`.
const PUBLISH: &[Argument] = &[
    Argument::new(1, "channel", Holds::Channel),
    Argument::new(2, "message", Holds::Message),
];

/// `publishMany(array $messages)`.
const PUBLISH_MANY: &[Argument] = &[Argument::new(1, "messages", Holds::Messages)];

pub fn publish(client: &Client, func: &str, channel: &[u8], message: &Zval) -> PhpResult<i64> {
    let max_payload = client.config().max_payload;
    client
        .publish_encoded(channel, || to_payload(message, max_payload))
        .map_err(|e| to_php(e, func, PUBLISH))
}

/// Every pair is read (its channel and message held by counted references) before its message is
/// encoded, and nothing of it is borrowed afterwards: encoding can run user code
/// (`jsonSerialize()`), which can reassign what the pairs refer to, through PHP references.
pub fn publish_many(client: &Client, func: &str, messages: &ZendHashTable) -> PhpResult<Vec<i64>> {
    let max_payload = client.config().max_payload;
    let publish = || {
        let mut batch = client.batch(messages.len());
        for (index, pair) in messages.values().enumerate() {
            let (channel, message) = held_pair(index, pair)?;
            batch.push_encoded(channel, || to_held_payload(message, max_payload))?;
        }
        batch.publish()
    };
    publish().map_err(|e| to_php(e, func, PUBLISH_MANY))
}

/// Item `index` of a publishMany batch, a `[string $channel, $message]` pair: its channel and its
/// message, each held by a counted reference, so nothing of the pair is borrowed while the
/// message is encoded (encoding can run user code that reassigns what the pair refers to).
pub fn held_pair(index: usize, pair: &Zval) -> Result<(HeldString, Zval), Error> {
    let about = |part| Subject::Item { index, part };
    let Some((channel, message)) = pair_parts(pair) else {
        return Err(Error::invalid("must be a [string $channel, $message] pair").about(about(None)));
    };
    let Some(channel) = HeldString::new(channel) else {
        return Err(Error::invalid_type(format!(
            "must be of type string, {} given",
            type_name(channel)
        ))
        .about(about(Some(ItemPart::Channel))));
    };
    Ok((channel, message.dereference().shallow_clone()))
}

/// The channel and message of a `[string $channel, $message]` pair, dereferenced.
fn pair_parts(pair: &Zval) -> Option<(&Zval, &Zval)> {
    let pair = pair.dereference().array()?;
    match (pair.get_index(0), pair.get_index(1), pair.len()) {
        (Some(channel), Some(message), 2) => Some((channel.dereference(), message)),
        _ => None,
    }
}

/// Ends `publish` or `publishMany`: returns `result`, unless a fatal error in user code
/// (`jsonSerialize()`) interrupted the call. That error was caught where the user code was
/// entered, so that the call could release everything it held; it is resumed here, `result`
/// dropped first, so the bailout skips no frame that owns anything.
pub fn finish<T>(result: PhpResult<T>) -> PhpResult<T> {
    // Only a failed call can have been interrupted: the success path reads no thread-local.
    if result.is_err() && engine::fatal_pending() {
        drop(result);
        engine::resume_fatal();
    }
    result
}

pub fn ping(client: &Client, func: &str) -> PhpResult<f64> {
    client
        .ping()
        .map(|d| d.as_secs_f64())
        .map_err(|e| to_php(e, func, &[]))
}

pub fn stats(client: &Client) -> PhpResult<ZBox<ZendHashTable>> {
    stats_array(&client.stats()).map_err(|e| format!("stats(): {e}").into())
}

/// The stats snapshot as the documented PHP array (see the stub's `stats()`).
pub fn stats_array(s: &StatsSnapshot) -> ext_php_rs::error::Result<ZBox<ZendHashTable>> {
    let mut latency = ZendHashTable::new();
    latency.insert("p50", s.latency.p50_us as i64)?;
    latency.insert("p90", s.latency.p90_us as i64)?;
    latency.insert("p99", s.latency.p99_us as i64)?;
    latency.insert("max", s.latency.max_us as i64)?;
    latency.insert("count", s.latency.count as i64)?;
    let mut a = ZendHashTable::new();
    a.insert("published", s.published as i64)?;
    a.insert("failed", s.failed as i64)?;
    a.insert("reconnects", s.reconnects as i64)?;
    a.insert("connections_created", s.connections_created as i64)?;
    a.insert(qrpush_core::config::name::POOL_SIZE, s.pool_size as i64)?;
    a.insert("pool_idle", s.pool_idle as i64)?;
    a.insert("pool_in_use", s.pool_in_use as i64)?;
    a.insert("last_error", s.last_error.clone())?;
    a.insert("latency_us", latency)?;
    a.insert("endpoint", s.endpoint.clone())?;
    a.insert("pid", s.pid as i64)?;
    let mut breaker = ZendHashTable::new();
    breaker.insert("state", s.breaker.state.as_str())?;
    breaker.insert("opened_at", s.breaker.opened_at)?;
    breaker.insert("fast_failures", s.breaker.fast_failures as i64)?;
    breaker.insert("trips", s.breaker.trips as i64)?;
    a.insert("breaker", breaker)?;
    let mut topology = ZendHashTable::new();
    topology.insert("kind", s.topology.kind)?;
    topology.insert("service", s.topology.service.clone())?;
    topology.insert("primary", s.topology.primary.clone())?;
    topology.insert("failovers", s.topology.failovers as i64)?;
    topology.insert("redirects", s.topology.redirects as i64)?;
    a.insert("topology", topology)?;
    Ok(a)
}
