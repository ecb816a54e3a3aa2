//! `broadcast()`, shared by the `QrPush` facade and `QrPush\Client`: publishes what Laravel's
//! Redis broadcaster publishes for an event (`qrpush_core::formats::laravel` says what that is).
//!
//! The binding's part is PHP's: the arguments are copied out first (channels, event, socket id),
//! then the payload is made the way Laravel's `BroadcastEvent` makes it, `array_merge($data,
//! ['socket' => $socket])` (integer keys renumbered, an existing `socket` entry replaced where it
//! is), as a new PHP array that holds counted references to `$data`'s values, so the JSON walk
//! (which may run `jsonSerialize()`) never reads memory user code could free.

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::exception::PhpResult;
use ext_php_rs::flags::DataType;
use ext_php_rs::types::{ArrayKey, ZendHashTable, Zval};
use qrpush_core::formats::laravel;
use qrpush_core::{Client, Error, Subject};

use crate::arguments::{strings, utf8};
use crate::exceptions::{to_php, Argument, Holds};
use crate::message::to_payload;

/// `broadcast(mixed $channels, string $event, ?array $data = null, ?string $socket = null)`.
const BROADCAST: &[Argument] = &[
    Argument::new(1, "channels", Holds::Channels),
    Argument::new(2, "event", Holds::Event),
    Argument::new(3, "data", Holds::Data),
    Argument::new(4, "socket", Holds::SocketId),
];

pub fn broadcast(
    client: &Client,
    func: &str,
    channels: &Zval,
    event: BinarySlice<u8>,
    data: Option<&ZendHashTable>,
    socket: Option<BinarySlice<u8>>,
) -> PhpResult<i64> {
    let run = || -> Result<i64, Error> {
        let (channels, _) = strings(channels, Subject::Channel, Subject::ChannelAt)?;
        if channels.is_empty() {
            // Laravel returns before encoding anything.
            return Ok(0);
        }
        let event = utf8(&event, Subject::Event)?.to_string();
        let socket = socket
            .map(|s| utf8(&s, Subject::SocketId).map(str::to_string))
            .transpose()?;
        let payload = with_socket(data, socket.as_deref())?;
        let json = to_payload(&payload, client.config().max_payload)
            .map_err(|e| e.about(Subject::Message))?;
        let message = laravel::message(&event, json.as_ref(), socket.as_deref())?;
        laravel::broadcast(client, &channels, &message)
    };
    run().map_err(|e| to_php(e, func, BROADCAST))
}

/// `array_merge($data, ['socket' => $socket])`, holding counted references to the values.
fn with_socket(data: Option<&ZendHashTable>, socket: Option<&str>) -> Result<Zval, Error> {
    let failed = |e: ext_php_rs::error::Error| {
        Error::invalid(format!("could not be copied: {e}")).about(Subject::Message)
    };
    let mut socket_value = Zval::new();
    match socket {
        Some(socket) => socket_value.set_string(socket, false).map_err(failed)?,
        None => socket_value.set_null(),
    }
    let mut merged = ZendHashTable::new();
    let mut socket_value = Some(socket_value);
    if let Some(data) = data {
        let mut entries = data.iter();
        while let Some((key, value)) = entries.next_zval() {
            let value = value.indirect().unwrap_or(value).dereference();
            if value.get_type() == DataType::Undef {
                continue;
            }
            match key.zend_str() {
                None => merged.push(value.shallow_clone()).map_err(failed)?,
                Some(name) if name.as_bytes() == b"socket" => {
                    // A key appears once in a PHP array: this takes the value the first time.
                    if let Some(socket) = socket_value.take() {
                        merged
                            .insert(ArrayKey::ZendString(name), socket)
                            .map_err(failed)?;
                    }
                }
                Some(name) => merged
                    .insert(ArrayKey::ZendString(name), value.shallow_clone())
                    .map_err(failed)?,
            }
        }
    }
    if let Some(socket) = socket_value {
        merged.insert("socket", socket).map_err(failed)?;
    }
    let mut payload = Zval::new();
    payload.set_hashtable(merged);
    Ok(payload)
}
