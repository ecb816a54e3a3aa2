//! QrPush's exception classes, and the one place where a core error becomes a PHP exception.
//!
//! `QrPush\Exception` extends `\RuntimeException` and roots every Redis-side failure; invalid
//! arguments are PHP's own `\ValueError` / `\TypeError`, as built-in functions throw them.

use ext_php_rs::class::RegisteredClass;
use ext_php_rs::exception::PhpException;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::{ce, ClassEntry};
use qrpush_core::{Error, ErrorKind};

/// Stable exception codes, one per kind, so callers can switch on `getCode()` too.
pub mod code {
    pub const CONNECTION: i32 = 1;
    pub const TIMEOUT: i32 = 2;
    pub const SERVER: i32 = 3;
    pub const PROTOCOL: i32 = 4;
}

fn runtime_exception() -> &'static ClassEntry {
    // SPL is part of every PHP 8 build and starts before any shared extension.
    crate::internal_class::find("runtimeexception").expect("RuntimeException is always registered")
}

#[php_class]
#[php(name = "QrPush\\Exception")]
#[php(extends(ce = runtime_exception, stub = "\\RuntimeException"))]
#[derive(Default)]
pub struct QrPushException;

#[php_class]
#[php(name = "QrPush\\ConnectionException")]
#[php(extends(QrPushException))]
#[derive(Default)]
pub struct ConnectionException;

#[php_class]
#[php(name = "QrPush\\TimeoutException")]
#[php(extends(QrPushException))]
#[derive(Default)]
pub struct TimeoutException;

#[php_class]
#[php(name = "QrPush\\ServerException")]
#[php(extends(QrPushException))]
#[derive(Default)]
pub struct ServerException;

/// Maps a core error to the PHP exception to throw. `argument` names the PHP argument an
/// invalid-value error is about (`"QrPush::publish(): Argument #1 ($channel)"`).
pub fn to_php(err: Error, argument: &str) -> PhpException {
    let message = err.message();
    match err.kind() {
        ErrorKind::InvalidArgument => {
            PhpException::new(format!("{argument} {message}"), 0, ce::value_error())
        }
        ErrorKind::InvalidType => {
            PhpException::new(format!("{argument} {message}"), 0, ce::type_error())
        }
        ErrorKind::Connection => of::<ConnectionException>(message, code::CONNECTION),
        ErrorKind::Timeout => of::<TimeoutException>(message, code::TIMEOUT),
        ErrorKind::Server => of::<ServerException>(message, code::SERVER),
        ErrorKind::Protocol => of::<QrPushException>(message, code::PROTOCOL),
    }
}

fn of<T: RegisteredClass>(message: &str, code: i32) -> PhpException {
    PhpException::new(message.to_string(), code, T::get_metadata().ce())
}
