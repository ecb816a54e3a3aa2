//! `final class QrPush\Client`: the same operations on an instance with its own URL/options.

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ArrayKey, ZendHashTable, Zval};
use qrpush_core::{Client as CoreClient, Config, Error, Subject};

use crate::exceptions::{to_php, Argument, Holds};
use crate::message::type_name;
use crate::{api, durable, ini, laravel};

#[php_class]
#[php(name = "QrPush\\Client")]
#[php(flags = ClassFlags::Final)]
pub struct Client {
    inner: CoreClient,
}

/// `__construct(?string $url = null, ?array $options = null)`.
const CONSTRUCT: &[Argument] = &[
    Argument::new(1, "url", Holds::Url),
    Argument::new(2, "options", Holds::Options),
];

#[php_impl]
impl Client {
    /// php.ini settings first, then `$url`, then `$options` — each validated strictly.
    #[php(optional = url)]
    pub fn __construct(
        url: Option<BinarySlice<u8>>,
        options: Option<&ZendHashTable>,
    ) -> PhpResult<Self> {
        let mut config = ini::config();
        configure(&mut config, url.as_deref().copied(), options)
            .map_err(|e| to_php(e, "QrPush\\Client::__construct", CONSTRUCT))?;
        Ok(Client {
            inner: CoreClient::new(config),
        })
    }

    pub fn publish(&self, channel: BinarySlice<u8>, message: &Zval) -> PhpResult<i64> {
        let result = api::publish(&self.inner, "QrPush\\Client::publish", &channel, message);
        api::finish(result)
    }

    pub fn publish_many(&self, messages: &ZendHashTable) -> PhpResult<Vec<i64>> {
        let result = api::publish_many(&self.inner, "QrPush\\Client::publishMany", messages);
        api::finish(result)
    }

    pub fn ping(&self) -> PhpResult<f64> {
        api::ping(&self.inner, "QrPush\\Client::ping")
    }

    pub fn stats(&self) -> PhpResult<ZBox<ZendHashTable>> {
        api::stats(&self.inner)
    }

    #[php(optional = data)]
    pub fn broadcast(
        &self,
        channels: &Zval,
        event: BinarySlice<u8>,
        data: Option<&ZendHashTable>,
        socket: Option<BinarySlice<u8>>,
    ) -> PhpResult<i64> {
        let func = "QrPush\\Client::broadcast";
        laravel::broadcast(&self.inner, func, channels, event, data, socket)
    }

    pub fn publish_durable(
        &self,
        channel: BinarySlice<u8>,
        message: &Zval,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        let func = "QrPush\\Client::publishDurable";
        api::finish(durable::publish(&self.inner, func, &channel, message))
    }

    pub fn publish_many_durable(
        &self,
        messages: &ZendHashTable,
    ) -> PhpResult<Vec<ZBox<ZendHashTable>>> {
        let func = "QrPush\\Client::publishManyDurable";
        api::finish(durable::publish_many(&self.inner, func, messages))
    }

    #[php(optional = user)]
    pub fn subscription_token(
        &self,
        channels: &ZendHashTable,
        ttl: i64,
        user: Option<BinarySlice<u8>>,
    ) -> PhpResult<String> {
        let func = "QrPush\\Client::subscriptionToken";
        durable::subscription_token(&self.inner, func, channels, ttl, user)
    }
}

impl Client {
    /// The core client, for the classes that publish through a `QrPush\Client` (`SocketIo`).
    pub(crate) fn core(&self) -> &CoreClient {
        &self.inner
    }
}

/// Applies `$url`, then every option, to `config`.
fn configure(
    config: &mut Config,
    url: Option<&[u8]>,
    options: Option<&ZendHashTable>,
) -> Result<(), Error> {
    if let Some(url) = url {
        // Taken as bytes: a PHP string that is not UTF-8 is a bad value (ValueError), not a bad
        // type (ext-php-rs's String conversion throws an unexplained TypeError for it).
        let url = std::str::from_utf8(url)
            .map_err(|_| Error::invalid("the Redis URL is not valid UTF-8").about(Subject::Url))?;
        config.set_url(url)?;
    }
    for (key, value) in options.into_iter().flat_map(|o| o.iter()) {
        let key = match key {
            ArrayKey::Long(n) => n.to_string(),
            other => other.to_string(),
        };
        config.set(&key, &option_text(&key, value)?)?;
    }
    Ok(())
}

/// An option value as the text a php.ini line would hold.
fn option_text(key: &str, value: &Zval) -> Result<String, Error> {
    let value = value.dereference();
    if let Some(s) = value.str() {
        Ok(s.to_string())
    } else if value.zend_str().is_some() {
        Err(Error::invalid(format!("option '{key}' must be valid UTF-8")).about(Subject::Settings))
    } else if let Some(n) = value.long() {
        Ok(n.to_string())
    } else if let Some(f) = value.double() {
        Ok(f.to_string())
    } else {
        Err(Error::invalid_type(format!(
            "option '{key}' must be of type string|int|float, {} given",
            type_name(value)
        ))
        .about(Subject::Settings))
    }
}
