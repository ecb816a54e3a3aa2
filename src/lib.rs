//! The `qrpush` PHP extension: a thin ext-php-rs binding over `qrpush-core`.
//!
//! # Layout
//! - `facade`: `final class QrPush`, static methods over the default client of the request's
//!   `qrpush.*` directives.
//! - `client`: `final class QrPush\Client`, the same methods with per-instance URL and options.
//! - `api`: the operations both share: convert arguments, call the core, map errors.
//! - `durable`: durable publishes and the gateway's subscription tokens, for both classes.
//! - `message`: a PHP `$message` into bytes (strings as is, arrays/objects as PHP-identical JSON).
//! - `engine`: what walking PHP values while user code runs needs from the Zend engine (recursion
//!   flags, property tables, catching a fatal error raised by `jsonSerialize()`).
//! - `arguments`: other arguments into owned Rust values (UTF-8 text, a string or a list of them).
//! - `laravel`: `broadcast()` of the facade and the client: Laravel's Redis broadcast format.
//! - `socketio`: `final class QrPush\SocketIo`, emits to Socket.IO servers' Redis adapter.
//! - `exceptions`: the exception classes and the one mapping from core errors to them.
//! - `login`: `final class QrPush\Login`, the QR-login state machine over the default client.
//! - `ini`: the `qrpush.*` directives, registered from the core's settings table.
//! - `info`: the phpinfo() section.
//!
//! Module startup registers classes and INI entries only: no connection is opened before a
//! call needs one (php-fpm forks its workers after startup).
#![cfg_attr(windows, feature(abi_vectorcall))]

mod api;
mod arguments;
mod client;
mod durable;
mod engine;
mod exceptions;
mod facade;
mod info;
mod ini;
mod internal_class;
mod laravel;
mod login;
mod message;
mod socketio;

use ext_php_rs::prelude::*;

fn startup(_ty: i32, module_number: i32) -> i32 {
    // Nothing in here may unwind into the engine.
    let ok = std::panic::catch_unwind(|| {
        ini::register(module_number);
        ini::warn_invalid();
        exceptions::register()
    });
    match ok {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            let message = format!("qrpush: cannot register the exception classes: {e}");
            ext_php_rs::error::php_error(&ext_php_rs::flags::ErrorType::CoreWarning, &message);
            -1
        }
        Err(_) => -1,
    }
}

/// Request startup: the request's `qrpush.*` values may differ from the last request's.
unsafe extern "C" fn request_startup(_ty: i32, _module_number: i32) -> i32 {
    // Nothing in here may unwind into the engine.
    let ok = std::panic::catch_unwind(|| {
        facade::forget_request_client();
        engine::reset();
    });
    if ok.is_ok() {
        0
    } else {
        -1
    }
}

#[php_module]
#[php(startup = startup)]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    module
        .name("qrpush")
        .version(qrpush_core::VERSION)
        .request_startup_function(request_startup)
        .class::<facade::QrPush>()
        .class::<client::Client>()
        .class::<login::Login>()
        .class::<socketio::SocketIo>()
        .info_function(info::module_info)
}
