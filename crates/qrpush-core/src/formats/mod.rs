//! The message formats of real-time servers other people wrote, so that PHP can publish to them
//! what their own publishers would, through QrPush's pool:
//! - [`laravel`]: Laravel's Redis broadcaster (`{"event":…,"data":…,"socket":…}`), read by
//!   Laravel Echo Server;
//! - [`socketio`]: `@socket.io/redis-adapter`'s messages (MessagePack), classic (PUBLISH) and
//!   sharded (SPUBLISH), read by Socket.IO servers;
//! - `msgpack`: the MessagePack writer behind it, spelled as `notepack.io` spells it.
//!
//! Each format is a pure encoder (values in, bytes and channels out, tested without Redis) and a
//! small send function over [`Client`](crate::Client).

pub mod laravel;
mod msgpack;
pub mod socketio;
