//! QrPush's exception classes, and the one place where a core error becomes a PHP exception.
//!
//! `QrPush\Exception` extends `\RuntimeException` and roots every Redis-side failure; invalid
//! arguments are PHP's own `\ValueError` / `\TypeError`, as built-in functions throw them.
//!
//! The classes are plain PHP classes (no Rust object behind them, unlike `#[php_class]`): they
//! keep `\Exception`'s own constructor and object creation, so PHP code can construct and
//! subclass them, and thrown ones carry the caller's file, line and trace.

use ext_php_rs::builders::ClassBuilder;
use ext_php_rs::exception::PhpException;
use ext_php_rs::flags::ConstantFlags;
use ext_php_rs::zend::{ce, ClassEntry};
use qrpush_core::{Error, ErrorKind, LoginError};

use crate::internal_class;

/// Stable exception codes, so callers can switch on `getCode()` too.
pub mod code {
    pub const CONNECTION: i32 = 1;
    pub const TIMEOUT: i32 = 2;
    pub const SERVER: i32 = 3;
    pub const PROTOCOL: i32 = 4;
}

struct ExceptionClass {
    name: &'static str,
    parent: (fn() -> &'static ClassEntry, &'static str),
    constants: &'static [(&'static str, i64)],
}

const ROOT: (fn() -> &'static ClassEntry, &str) = (qrpush_exception, "QrPush\\Exception");
const LOGIN: (fn() -> &'static ClassEntry, &str) = (login_exception, "QrPush\\LoginException");

/// Every exception class, parents before children.
const CLASSES: &[ExceptionClass] = &[
    ExceptionClass {
        name: "QrPush\\Exception",
        parent: (runtime_exception, "RuntimeException"),
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\ConnectionException",
        parent: ROOT,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\TimeoutException",
        parent: ROOT,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\ServerException",
        parent: ROOT,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\LoginException",
        parent: ROOT,
        constants: &[
            ("NOT_FOUND", 101),
            ("EXPIRED", 102),
            ("WRONG_STATE", 103),
            ("WRONG_USER", 104),
            ("WRONG_SECRET", 105),
            ("WRONG_TICKET", 106),
            ("TICKET_USED", 107),
        ],
    },
    ExceptionClass {
        name: "QrPush\\LoginNotFoundException",
        parent: LOGIN,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\LoginExpiredException",
        parent: LOGIN,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\LoginStateException",
        parent: LOGIN,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\LoginWrongUserException",
        parent: LOGIN,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\LoginWrongSecretException",
        parent: LOGIN,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\LoginWrongTicketException",
        parent: LOGIN,
        constants: &[],
    },
    ExceptionClass {
        name: "QrPush\\LoginTicketUsedException",
        parent: LOGIN,
        constants: &[],
    },
];

/// Registers the classes; called from module startup.
pub fn register() -> ext_php_rs::error::Result<()> {
    for class in CLASSES {
        // The classes have no methods and no Rust object, so there are no argument tables to
        // keep: the registration hook has nothing to store.
        let mut builder = ClassBuilder::new(class.name)
            .extends(class.parent)
            .registration(|_, _| {});
        for (name, value) in class.constants {
            builder = builder.constant(*name, *value, &[], ConstantFlags::Public)?;
        }
        builder.register()?;
    }
    Ok(())
}

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
        ErrorKind::Connection => of("qrpush\\connectionexception", message, code::CONNECTION),
        ErrorKind::Timeout => of("qrpush\\timeoutexception", message, code::TIMEOUT),
        ErrorKind::Server => of("qrpush\\serverexception", message, code::SERVER),
        ErrorKind::Protocol => of("qrpush\\exception", message, code::PROTOCOL),
        ErrorKind::Login(why) => {
            let class = match why {
                LoginError::NotFound => "qrpush\\loginnotfoundexception",
                LoginError::Expired => "qrpush\\loginexpiredexception",
                LoginError::WrongState => "qrpush\\loginstateexception",
                LoginError::WrongUser => "qrpush\\loginwronguserexception",
                LoginError::WrongSecret => "qrpush\\loginwrongsecretexception",
                LoginError::WrongTicket => "qrpush\\loginwrongticketexception",
                LoginError::TicketUsed => "qrpush\\loginticketusedexception",
            };
            of(class, message, why.code())
        }
    }
}

/// An exception of one of our classes (looked up by lower-cased name, as class tables key them).
fn of(lowercase_class: &str, message: &str, code: i32) -> PhpException {
    let class = internal_class::find(lowercase_class).unwrap_or_else(ce::exception);
    PhpException::new(message.to_string(), code, class)
}

fn runtime_exception() -> &'static ClassEntry {
    // SPL is part of every PHP 8 build and starts before any shared extension.
    internal_class::find("runtimeexception").expect("RuntimeException is always registered")
}

fn qrpush_exception() -> &'static ClassEntry {
    internal_class::find("qrpush\\exception").expect("registered just before its subclasses")
}

fn login_exception() -> &'static ClassEntry {
    internal_class::find("qrpush\\loginexception").expect("registered just before its subclasses")
}
