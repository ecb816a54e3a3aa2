//! `final class QrPush`: static methods over the default client, the one the `qrpush.*`
//! directives in effect for the current request describe.
//!
//! Those directives can differ from one request to the next in one process (php-fpm's
//! `PHP_ADMIN_VALUE` per nginx location, Apache's per-vhost `php_admin_value`, `.user.ini`): a
//! request of tenant B must never publish with tenant A's prefix, Redis or gateway secret. So the
//! default client is looked up once per request (the values cannot change during a request:
//! PERDIR values are applied before the script starts and `ini_set()` cannot change them), in a
//! small cache of clients keyed by the values. Clients share the process's pools, which are per
//! endpoint: another prefix or TTL makes another client, not another connection.

use std::cell::RefCell;
use std::sync::Arc;

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use qrpush_core::Client;

use crate::ini::{self, Recent, Values};
use crate::{api, durable, laravel};

/// The default clients of the last configurations met, shared by every thread of the process.
static CLIENTS: Lazy<Mutex<Recent<Arc<Client>>>> = Lazy::new(Default::default);

thread_local! {
    /// The default client of the request running on this thread; forgotten when the next
    /// request starts ([`forget_request_client`]).
    static REQUEST_CLIENT: RefCell<Option<Arc<Client>>> = const { RefCell::new(None) };
}

/// The default client for the current request, created the first time its configuration is met
/// (in the php-fpm worker, never the master).
pub(crate) fn client() -> Arc<Client> {
    if let Some(client) = REQUEST_CLIENT.with(|c| c.borrow().clone()) {
        return client;
    }
    let client = match ini::with_raw_values(|raw| CLIENTS.lock().get(raw)) {
        Some(client) => client,
        None => {
            let values = Values::current();
            // Built without the lock held: parsing may warn, and a warning can run user code.
            let client = Arc::new(Client::new(ini::config()));
            CLIENTS.lock().insert(values, Arc::clone(&client));
            client
        }
    };
    REQUEST_CLIENT.with(|c| *c.borrow_mut() = Some(Arc::clone(&client)));
    client
}

/// Runs `f` with the default client of the current request, without taking a reference of its
/// own when the request already has one (the publish path).
pub(crate) fn with_client<R>(f: impl FnOnce(&Client) -> R) -> R {
    match REQUEST_CLIENT.with(|c| c.borrow().as_ref().map(Arc::as_ptr)) {
        // SAFETY: the request's client is kept until the next request starts
        // (`forget_request_client`), which cannot happen during this call.
        Some(client) => f(unsafe { &*client }),
        None => f(&client()),
    }
}

/// Called at the start of every request: its directives may differ from the last one's.
pub fn forget_request_client() {
    REQUEST_CLIENT.with(|c| c.borrow_mut().take());
}

/// The default client of the current configuration if a call already created it. phpinfo uses
/// this: showing the configuration must not create a client.
pub fn default_client_if_created() -> Option<Arc<Client>> {
    REQUEST_CLIENT
        .with(|c| c.borrow().clone())
        .or_else(|| ini::with_raw_values(|raw| CLIENTS.lock().get(raw)))
}

#[php_class]
#[php(name = "QrPush")]
#[php(flags = ClassFlags::Final)]
pub struct QrPush;

#[php_impl]
impl QrPush {
    const VERSION: &'static str = qrpush_core::VERSION;

    pub fn publish(channel: BinarySlice<u8>, message: &Zval) -> PhpResult<i64> {
        // The client is released at the end of this statement, before `finish` may end the
        // request (a fatal error in jsonSerialize()).
        let result = with_client(|c| api::publish(c, "QrPush::publish", &channel, message));
        api::finish(result)
    }

    pub fn publish_many(messages: &ZendHashTable) -> PhpResult<Vec<i64>> {
        let result = with_client(|c| api::publish_many(c, "QrPush::publishMany", messages));
        api::finish(result)
    }

    pub fn ping() -> PhpResult<f64> {
        with_client(|c| api::ping(c, "QrPush::ping"))
    }

    pub fn stats() -> PhpResult<ZBox<ZendHashTable>> {
        with_client(api::stats)
    }

    #[php(optional = data)]
    pub fn broadcast(
        channels: &Zval,
        event: BinarySlice<u8>,
        data: Option<&ZendHashTable>,
        socket: Option<BinarySlice<u8>>,
    ) -> PhpResult<i64> {
        with_client(|client| {
            laravel::broadcast(client, "QrPush::broadcast", channels, event, data, socket)
        })
    }

    pub fn publish_durable(
        channel: BinarySlice<u8>,
        message: &Zval,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        let result =
            with_client(|c| durable::publish(c, "QrPush::publishDurable", &channel, message));
        api::finish(result)
    }

    pub fn publish_many_durable(messages: &ZendHashTable) -> PhpResult<Vec<ZBox<ZendHashTable>>> {
        let result =
            with_client(|c| durable::publish_many(c, "QrPush::publishManyDurable", messages));
        api::finish(result)
    }

    #[php(optional = user)]
    pub fn subscription_token(
        channels: &ZendHashTable,
        ttl: i64,
        user: Option<BinarySlice<u8>>,
    ) -> PhpResult<String> {
        let func = "QrPush::subscriptionToken";
        with_client(|c| durable::subscription_token(c, func, channels, ttl, user))
    }
}
