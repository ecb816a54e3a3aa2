//! `final class QrPush\SocketIo`: emits to Socket.IO servers that use `@socket.io/redis-adapter`
//! (Pub/Sub) or `@socket.io/redis-streams-adapter` (a stream), with the shape of
//! `@socket.io/redis-emitter` (`$io->of('/chat')->to('room')->emit('event', ...$args)`). Every
//! method but `emit()` returns a new object, as the JavaScript emitter's operators do: a `$io`
//! kept around is never changed by a call made on it.
//!
//! Rooms, namespaces and the event are copied into Rust strings when they are given; the
//! arguments are collected into a new PHP list holding counted references and walked to JSON by
//! `message.rs` (as a published message is), which the core turns into MessagePack.

use std::sync::Arc;

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ArrayKey, ZendClassObject, ZendHashTable, Zval};
use qrpush_core::durable::socketio::StreamOptions;
use qrpush_core::formats::socketio::{self, Adapter, Flag, SubscriptionMode, Target};
use qrpush_core::{Client as CoreClient, Error, Subject};

use crate::arguments::{strings, utf8};
use crate::client::Client;
use crate::exceptions::{to_php, Argument, Holds};
use crate::facade;
use crate::message::{to_payload, type_name};

#[php_class]
#[php(name = "QrPush\\SocketIo")]
#[php(flags = ClassFlags::Final)]
pub struct SocketIo {
    /// The client given to the constructor; `None`: the default client (php.ini), looked up at
    /// every emit like the facade's calls.
    client: Option<Arc<CoreClient>>,
    target: Target,
}

/// `__construct(?QrPush\Client $client = null, ?array $options = null)`.
const CONSTRUCT: &[Argument] = &[Argument::new(2, "options", Holds::Options)];
/// `of(string $namespace)`.
const OF: &[Argument] = &[Argument::new(1, "namespace", Holds::Namespace)];
/// `to(mixed $rooms)`, `in(...)` and `except(...)`.
const ROOMS: &[Argument] = &[Argument::new(1, "rooms", Holds::Rooms)];
/// `emit(string $event, mixed ...$args)`.
const EMIT: &[Argument] = &[
    Argument::new(1, "event", Holds::Event),
    Argument::new(2, "args", Holds::Data),
];

#[php_impl]
impl SocketIo {
    /// `$options`: `adapter` ("classic", "sharded" or "streams"), `key` (the Pub/Sub adapters'
    /// `key` / `channelPrefix`, "socket.io"), `subscription_mode` (sharded: "dynamic", "static",
    /// "dynamic-private"), `stream`, `stream_count`, `max_len` (streams: the adapter's
    /// `streamName`, `streamCount`, `maxLen`).
    #[php(optional = client)]
    pub fn __construct(
        client: Option<&ZendClassObject<Client>>,
        options: Option<&ZendHashTable>,
    ) -> PhpResult<Self> {
        let target = target_of(options)
            .map_err(|e| to_php(e, "QrPush\\SocketIo::__construct", CONSTRUCT))?;
        let client = client.map(|c| Arc::new(CoreClient::new(c.core().config().clone())));
        Ok(SocketIo { client, target })
    }

    pub fn of(&self, namespace: BinarySlice<u8>) -> PhpResult<Self> {
        let func = "QrPush\\SocketIo::of";
        let namespace = utf8(&namespace, Subject::Namespace).map_err(|e| to_php(e, func, OF))?;
        let target = self.target.of(namespace).map_err(|e| to_php(e, func, OF))?;
        Ok(self.with(target))
    }

    pub fn to(&self, rooms: &Zval) -> PhpResult<Self> {
        self.rooms(rooms, "QrPush\\SocketIo::to", Target::to::<String>)
    }

    #[php(name = "in")]
    pub fn in_(&self, rooms: &Zval) -> PhpResult<Self> {
        self.rooms(rooms, "QrPush\\SocketIo::in", Target::to::<String>)
    }

    pub fn except(&self, rooms: &Zval) -> PhpResult<Self> {
        self.rooms(rooms, "QrPush\\SocketIo::except", Target::except::<String>)
    }

    pub fn volatile(&self) -> Self {
        self.with(self.target.flag(Flag::Volatile, true))
    }

    #[php(defaults(compress = true))]
    pub fn compress(&self, compress: bool) -> Self {
        self.with(self.target.flag(Flag::Compress, compress))
    }

    pub fn emit(&self, event: BinarySlice<u8>, args: &[&Zval]) -> PhpResult<i64> {
        let emit = |client: &CoreClient| -> Result<i64, Error> {
            let event = utf8(&event, Subject::Event)?.to_string();
            socketio::check_event(&event)?;
            let mut list = ZendHashTable::new();
            for arg in args {
                list.push(arg.dereference().shallow_clone()).map_err(|e| {
                    Error::invalid(format!("could not be copied: {e}")).about(Subject::Message)
                })?;
            }
            let mut list_value = Zval::new();
            list_value.set_hashtable(list);
            let json = to_payload(&list_value, client.config().max_payload)
                .map_err(|e| e.about(Subject::Message))?;
            self.target.emit_json_args(client, &event, json.as_ref())
        };
        let result = match &self.client {
            Some(client) => emit(client),
            None => facade::with_client(emit),
        };
        result.map_err(|e| to_php(e, "QrPush\\SocketIo::emit", EMIT))
    }
}

impl SocketIo {
    fn with(&self, target: Target) -> Self {
        SocketIo {
            client: self.client.clone(),
            target,
        }
    }

    /// `to`, `in` or `except` (`add`) with the rooms of `$rooms`: a string or a list of strings.
    fn rooms(
        &self,
        rooms: &Zval,
        func: &str,
        add: fn(&Target, &[String], bool) -> qrpush_core::Result<Target>,
    ) -> PhpResult<Self> {
        let run = || -> Result<Target, Error> {
            let (rooms, single) = strings(rooms, Subject::Room, Subject::RoomAt)?;
            let names = rooms
                .iter()
                .enumerate()
                .map(|(index, room)| {
                    let subject = if single {
                        Subject::Room
                    } else {
                        Subject::RoomAt(index)
                    };
                    utf8(room, subject).map(str::to_string)
                })
                .collect::<Result<Vec<_>, _>>()?;
            add(&self.target, &names, single)
        };
        let target = run().map_err(|e| to_php(e, func, ROOMS))?;
        Ok(self.with(target))
    }
}

/// The target `$options` describe (see `__construct`).
fn target_of(options: Option<&ZendHashTable>) -> Result<Target, Error> {
    let mut adapter = "classic".to_string();
    let mut key = None;
    let mut mode = None;
    let mut stream = None;
    let mut stream_count = None;
    let mut max_len = None;
    for (name, value) in options.into_iter().flat_map(|o| o.iter()) {
        let name = match name {
            ArrayKey::Long(n) => n.to_string(),
            other => other.to_string(),
        };
        let value = value.dereference();
        match name.as_str() {
            "adapter" => adapter = text_option(&name, value)?,
            "key" => key = Some(text_option(&name, value)?),
            "subscription_mode" => mode = Some(text_option(&name, value)?),
            "stream" => stream = Some(text_option(&name, value)?),
            "stream_count" => stream_count = Some(count_option(&name, value, u32::MAX.into())?),
            "max_len" => max_len = Some(count_option(&name, value, i64::MAX as u64)?),
            _ => {
                return Err(settings(format!(
                    "unknown option '{name}' (known: adapter, key, subscription_mode, stream, stream_count, max_len)"
                )))
            }
        }
    }
    let only_for = |option: &str, which: &str| {
        settings(format!("option '{option}' is for the {which} adapter only"))
    };
    let streams_options = [
        ("stream", stream.is_some()),
        ("stream_count", stream_count.is_some()),
        ("max_len", max_len.is_some()),
    ];
    if adapter != "streams" {
        if let Some((option, _)) = streams_options.iter().find(|(_, set)| *set) {
            return Err(only_for(option, "streams"));
        }
    }
    if adapter != "sharded" && mode.is_some() {
        return Err(only_for("subscription_mode", "sharded"));
    }
    let key = key.as_deref();
    let adapter = match adapter.as_str() {
        "classic" => Adapter::Classic,
        "sharded" => {
            let mode = mode.as_deref().unwrap_or("dynamic");
            Adapter::Sharded(SubscriptionMode::parse(mode).ok_or_else(|| {
                settings(format!(
                    "option 'subscription_mode' must be 'dynamic', 'static' or 'dynamic-private', got '{mode}'"
                ))
            })?)
        }
        "streams" => {
            if key.is_some() {
                return Err(settings(
                    "option 'key' is for the Pub/Sub adapters (classic, sharded); the streams adapter's stream is option 'stream'",
                ));
            }
            let defaults = StreamOptions::default();
            let options = StreamOptions::new(
                stream.as_deref().unwrap_or(&defaults.stream),
                stream_count.map_or(defaults.stream_count, |n| n as u32),
                max_len.unwrap_or(defaults.max_len),
            )?;
            return Ok(Target::streams(options));
        }
        other => {
            return Err(settings(format!(
                "option 'adapter' must be 'classic', 'sharded' or 'streams', got '{other}'"
            )))
        }
    };
    Target::new(adapter, key.unwrap_or("socket.io"))
}

fn settings(message: impl Into<String>) -> Error {
    Error::invalid(message.into()).about(Subject::Settings)
}

/// A string option's value.
fn text_option(name: &str, value: &Zval) -> Result<String, Error> {
    value.str().map(str::to_string).ok_or_else(|| {
        Error::invalid_type(format!(
            "option '{name}' must be of type string, {} given",
            type_name(value)
        ))
        .about(Subject::Settings)
    })
}

/// A count option's value: an int from 1 to `max`.
fn count_option(name: &str, value: &Zval, max: u64) -> Result<u64, Error> {
    let n = value.long().filter(|_| value.is_long()).ok_or_else(|| {
        Error::invalid_type(format!(
            "option '{name}' must be of type int, {} given",
            type_name(value)
        ))
        .about(Subject::Settings)
    })?;
    match u64::try_from(n) {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(settings(format!(
            "option '{name}' must be from 1 to {max}, got {n}"
        ))),
    }
}
