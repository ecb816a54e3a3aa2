//! `final class QrPush`: static methods over the process's default client, configured from the
//! `qrpush.*` directives the first time it is needed (in the php-fpm worker, never the master).

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use once_cell::sync::OnceCell;
use qrpush_core::Client;

use crate::{api, ini};

/// The default client: created on first use, then shared by every request (and thread) of the
/// process. Its pool handles fork() itself.
static DEFAULT: OnceCell<Client> = OnceCell::new();

pub(crate) fn client() -> &'static Client {
    DEFAULT.get_or_init(|| Client::new(ini::config()))
}

/// The default client if a call already created it. phpinfo uses this: it must not create one,
/// which would fix the configuration in the php-fpm master.
pub fn default_client_if_created() -> Option<&'static Client> {
    DEFAULT.get()
}

#[php_class]
#[php(name = "QrPush")]
#[php(flags = ClassFlags::Final)]
pub struct QrPush;

#[php_impl]
impl QrPush {
    const VERSION: &'static str = qrpush_core::VERSION;

    pub fn publish(channel: BinarySlice<u8>, message: &Zval) -> PhpResult<i64> {
        let result = api::publish(client(), "QrPush::publish", &channel, message);
        api::finish(result)
    }

    pub fn publish_many(messages: &ZendHashTable) -> PhpResult<Vec<i64>> {
        let result = api::publish_many(client(), "QrPush::publishMany", messages);
        api::finish(result)
    }

    pub fn ping() -> PhpResult<f64> {
        api::ping(client(), "QrPush::ping")
    }

    pub fn stats() -> PhpResult<ZBox<ZendHashTable>> {
        api::stats(client())
    }
}
