//! `final class QrPush\SocketIo`: emits to Socket.IO servers that use `@socket.io/redis-adapter`,
//! with the shape of `@socket.io/redis-emitter` (`$io->of('/chat')->to('room')->emit('event',
//! ...$args)`). Every method but `emit()` returns a new object, as the JavaScript emitter's
//! operators do: a `$io` kept around is never changed by a call made on it.
//!
//! Rooms, namespaces and the event are copied into Rust strings when they are given; the
//! arguments are collected into a new PHP list holding counted references and walked to JSON by
//! `message.rs` (as a published message is), which the core turns into MessagePack.

use std::sync::Arc;

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ArrayKey, ZendClassObject, ZendHashTable, Zval};
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
    /// `$options`: `adapter` ("classic" or "sharded"), `key` (the adapter's `key` /
    /// `channelPrefix`, "socket.io"), `subscription_mode` (sharded: "dynamic", "static",
    /// "dynamic-private").
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
            let encoded = self.target.encode_json_args(&event, json.as_ref())?;
            socketio::emit(client, &encoded)
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
    let mut key = "socket.io".to_string();
    let mut mode = None;
    for (name, value) in options.into_iter().flat_map(|o| o.iter()) {
        let name = match name {
            ArrayKey::Long(n) => n.to_string(),
            other => other.to_string(),
        };
        let text = value
            .dereference()
            .str()
            .map(str::to_string)
            .ok_or_else(|| {
                Error::invalid_type(format!(
                    "option '{name}' must be of type string, {} given",
                    type_name(value)
                ))
                .about(Subject::Settings)
            })?;
        match name.as_str() {
            "adapter" => adapter = text,
            "key" => key = text,
            "subscription_mode" => mode = Some(text),
            _ => {
                return Err(Error::invalid(format!(
                    "unknown option '{name}' (known: adapter, key, subscription_mode)"
                ))
                .about(Subject::Settings))
            }
        }
    }
    let adapter = match (adapter.as_str(), mode.as_deref()) {
        ("classic", None) => Adapter::Classic,
        ("classic", Some(_)) => {
            return Err(Error::invalid(
                "option 'subscription_mode' is for the sharded adapter only",
            )
            .about(Subject::Settings))
        }
        ("sharded", mode) => {
            let mode = mode.unwrap_or("dynamic");
            Adapter::Sharded(SubscriptionMode::parse(mode).ok_or_else(|| {
                Error::invalid(format!(
                    "option 'subscription_mode' must be 'dynamic', 'static' or 'dynamic-private', got '{mode}'"
                ))
                .about(Subject::Settings)
            })?)
        }
        (other, _) => {
            return Err(Error::invalid(format!(
                "option 'adapter' must be 'classic' or 'sharded', got '{other}'"
            ))
            .about(Subject::Settings))
        }
    };
    Target::new(adapter, &key)
}
