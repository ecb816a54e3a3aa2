//! `final class QrPush\Client`: the same operations on an instance with its own URL/options.

use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use qrpush_core::{Client as CoreClient, Error};

use crate::exceptions::to_php;
use crate::message::type_name;
use crate::{api, ini};

#[php_class]
#[php(name = "QrPush\\Client")]
#[php(flags = ClassFlags::Final)]
pub struct Client {
    inner: CoreClient,
}

const CTOR: &str = "QrPush\\Client::__construct()";

#[php_impl]
impl Client {
    /// php.ini settings first, then `$url`, then `$options` — each validated strictly.
    #[php(optional = url)]
    pub fn __construct(
        url: Option<BinarySlice<u8>>,
        options: Option<&ZendHashTable>,
    ) -> PhpResult<Self> {
        let mut config = ini::config();
        if let Some(url) = url {
            // Taken as bytes: a PHP string that is not UTF-8 is a bad value (ValueError), not a
            // bad type (ext-php-rs's String conversion throws an unexplained TypeError for it).
            let url = std::str::from_utf8(&url).map_err(|_| {
                to_php(
                    Error::invalid("the Redis URL is not valid UTF-8"),
                    &format!("{CTOR}: Argument #1 ($url)"),
                )
            })?;
            config
                .set("url", url)
                .map_err(|e| to_php(strip_name(e), &format!("{CTOR}: Argument #1 ($url)")))?;
        }
        for (key, value) in options.into_iter().flat_map(|o| o.iter()) {
            let argument = format!("{CTOR}: Argument #2 ($options)");
            let key = match key {
                ext_php_rs::types::ArrayKey::Long(n) => n.to_string(),
                other => other.to_string(),
            };
            let text =
                option_text(value).map_err(|e| to_php(e, &format!("{argument} option '{key}'")))?;
            config.set(&key, &text).map_err(|e| to_php(e, &argument))?;
        }
        Ok(Client {
            inner: CoreClient::new(config),
        })
    }

    pub fn publish(&self, channel: BinarySlice<u8>, message: &Zval) -> PhpResult<i64> {
        api::publish(&self.inner, "QrPush\\Client::publish", channel, message)
    }

    pub fn publish_many(&self, messages: &ZendHashTable) -> PhpResult<Vec<i64>> {
        api::publish_many(&self.inner, "QrPush\\Client::publishMany", messages)
    }

    pub fn ping(&self) -> PhpResult<f64> {
        api::ping(&self.inner, "QrPush\\Client::ping")
    }

    pub fn stats(&self) -> PhpResult<ZBox<ZendHashTable>> {
        api::stats(&self.inner)
    }
}

/// An option value as the text a php.ini line would hold.
fn option_text(value: &Zval) -> Result<String, Error> {
    let value = value.dereference();
    if let Some(s) = value.str() {
        Ok(s.to_string())
    } else if value.zend_str().is_some() {
        Err(Error::invalid("must be valid UTF-8"))
    } else if let Some(n) = value.long() {
        Ok(n.to_string())
    } else if let Some(f) = value.double() {
        Ok(f.to_string())
    } else {
        Err(Error::invalid_type(format!(
            "must be of type string|int|float, {} given",
            type_name(value)
        )))
    }
}

/// "url: the Redis URL ..." → "the Redis URL ...": the argument name already says which.
fn strip_name(e: Error) -> Error {
    let message = e
        .message()
        .strip_prefix("url: ")
        .unwrap_or(e.message())
        .to_string();
    Error::new(e.kind(), message)
}
