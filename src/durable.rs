//! Durable publishes (`publishDurable()`, `publishManyDurable()`) and the gateway's subscription
//! tokens (`subscriptionToken()`), shared by the `QrPush` facade and `QrPush\Client`: convert the
//! arguments, call the core (`qrpush_core::durable`, `qrpush_core::channel_token`), map the error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::exception::PhpResult;
use ext_php_rs::types::{ZendHashTable, Zval};
use qrpush_core::channel_token;
use qrpush_core::durable::Published;
use qrpush_core::{Client, Durable, Error, Subject};

use crate::api::held_pair;
use crate::exceptions::{to_php, Argument, Holds};
use crate::message::{to_held_payload, to_payload, type_name};

/// `publishDurable(string $channel, mixed $message)`.
const PUBLISH: &[Argument] = &[
    Argument::new(1, "channel", Holds::Channel),
    Argument::new(2, "message", Holds::Message),
];

/// `publishManyDurable(array $messages)`.
const PUBLISH_MANY: &[Argument] = &[Argument::new(1, "messages", Holds::Messages)];

/// `subscriptionToken(array $channels, int $ttl, ?string $user = null)`.
const TOKEN: &[Argument] = &[
    Argument::new(1, "channels", Holds::Channels),
    Argument::new(2, "ttl", Holds::Ttl),
    Argument::new(3, "user", Holds::UserId),
];

pub fn publish(
    client: &Client,
    func: &str,
    channel: &[u8],
    message: &Zval,
) -> PhpResult<ZBox<ZendHashTable>> {
    let max_payload = client.config().max_payload;
    let published = Durable::new(client)
        .publish_encoded(channel, || to_payload(message, max_payload))
        .map_err(|e| to_php(e, func, PUBLISH))?;
    published_array(&published).map_err(|e| format!("{func}(): {e}").into())
}

/// As `api::publish_many`: every pair is held by counted references before its message is
/// encoded (encoding can run user code that reassigns what the pairs refer to).
pub fn publish_many(
    client: &Client,
    func: &str,
    messages: &ZendHashTable,
) -> PhpResult<Vec<ZBox<ZendHashTable>>> {
    let max_payload = client.config().max_payload;
    let durable = Durable::new(client);
    let publish = || {
        let mut batch = durable.batch(messages.len());
        for (index, pair) in messages.values().enumerate() {
            let (channel, message) = held_pair(index, pair)?;
            batch.push_encoded(channel.as_ref(), || to_held_payload(message, max_payload))?;
        }
        batch.publish()
    };
    let published = publish().map_err(|e| to_php(e, func, PUBLISH_MANY))?;
    published
        .iter()
        .map(published_array)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{func}(): {e}").into())
}

pub fn subscription_token(
    client: &Client,
    func: &str,
    channels: &ZendHashTable,
    ttl: i64,
    user: Option<BinarySlice<u8>>,
) -> PhpResult<String> {
    let issue = || {
        let channels = channel_list(channels)?;
        let user = match user.as_deref() {
            Some(bytes) => Some(
                std::str::from_utf8(bytes)
                    .map_err(|_| Error::invalid("must be valid UTF-8").about(Subject::UserId))?,
            ),
            None => None,
        };
        // A negative ttl is refused by the core as 0 would be, but named as given.
        let ttl = u64::try_from(ttl).map_err(|_| {
            Error::invalid(format!(
                "must be 1 to {} seconds, got {ttl}",
                channel_token::MAX_TTL.as_secs()
            ))
            .about(Subject::Ttl)
        })?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        channel_token::issue_for(
            client.config(),
            &channels,
            Duration::from_secs(ttl),
            user,
            now_ms,
        )
    };
    issue()
        .map(|token| token.expose().to_string())
        .map_err(|e| to_php(e, func, TOKEN))
}

/// `$channels` as a list of UTF-8 strings (keys ignored, values in order).
fn channel_list(channels: &ZendHashTable) -> Result<Vec<String>, Error> {
    channels
        .values()
        .enumerate()
        .map(|(index, value)| {
            let value = value.dereference();
            let about = |e: Error| e.about(Subject::ChannelAt(index));
            match value.zend_str() {
                Some(s) => s
                    .as_str()
                    .map(str::to_string)
                    .map_err(|_| about(Error::invalid("must be valid UTF-8"))),
                None => Err(about(Error::invalid_type(format!(
                    "must be of type string, {} given",
                    type_name(value)
                )))),
            }
        })
        .collect()
}

/// `['offset' => '1712345678901-0', 'epoch' => '...', 'receivers' => 1]`.
fn published_array(p: &Published) -> ext_php_rs::error::Result<ZBox<ZendHashTable>> {
    let mut a = ZendHashTable::new();
    a.insert("offset", p.offset.to_string())?;
    a.insert("epoch", p.epoch.as_str())?;
    a.insert("receivers", p.receivers)?;
    Ok(a)
}
