//! QrPush's exception classes, and the one place where a core error becomes a PHP exception.
//!
//! `QrPush\Exception` extends `\RuntimeException` and roots every Redis-side failure; invalid
//! arguments are PHP's own `\ValueError` / `\TypeError`, as built-in functions throw them, naming
//! the argument the core error is about ([`Subject`]) through the calling function's table of
//! [`Argument`]s.
//!
//! The classes are plain PHP classes (no Rust object behind them, unlike `#[php_class]`): they
//! keep `\Exception`'s own constructor and object creation, so PHP code can construct and
//! subclass them, and thrown ones carry the caller's file, line and trace.

use ext_php_rs::builders::ClassBuilder;
use ext_php_rs::class::ClassEntryInfo;
use ext_php_rs::exception::PhpException;
use ext_php_rs::flags::ConstantFlags;
use ext_php_rs::zend::{ce, ClassEntry};
use qrpush_core::{Error, ErrorKind, LoginError, Subject};

use crate::internal_class;

/// Stable exception codes, so callers can switch on `getCode()` too. Login refusals have theirs
/// from the core ([`LoginError::code`], 101..=109).
pub mod code {
    pub const CONNECTION: i32 = 1;
    pub const TIMEOUT: i32 = 2;
    pub const SERVER: i32 = 3;
    pub const PROTOCOL: i32 = 4;
    pub const REPLICA: i32 = 5;
}

const EXCEPTION: &str = "QrPush\\Exception";
const CONNECTION_EXCEPTION: &str = "QrPush\\ConnectionException";
const TIMEOUT_EXCEPTION: &str = "QrPush\\TimeoutException";
const SERVER_EXCEPTION: &str = "QrPush\\ServerException";
const REPLICA_EXCEPTION: &str = "QrPush\\ReplicaException";
const LOGIN_EXCEPTION: &str = "QrPush\\LoginException";

const ROOT: ClassEntryInfo = (qrpush_exception, EXCEPTION);
const CONNECTION: ClassEntryInfo = (connection_exception, CONNECTION_EXCEPTION);
const LOGIN: ClassEntryInfo = (login_exception, LOGIN_EXCEPTION);

/// The class of each login refusal, under `QrPush\LoginException`.
fn login_class(why: LoginError) -> &'static str {
    match why {
        LoginError::NotFound => "QrPush\\LoginNotFoundException",
        LoginError::Expired => "QrPush\\LoginExpiredException",
        LoginError::WrongState => "QrPush\\LoginStateException",
        LoginError::WrongUser => "QrPush\\LoginWrongUserException",
        LoginError::WrongSecret => "QrPush\\LoginWrongSecretException",
        LoginError::WrongTicket => "QrPush\\LoginWrongTicketException",
        LoginError::TicketUsed => "QrPush\\LoginTicketUsedException",
        LoginError::WrongCode => "QrPush\\LoginWrongCodeException",
        LoginError::RateLimited => "QrPush\\LoginRateLimitedException",
    }
}

/// Registers the classes, parents before children; called from module startup.
pub fn register() -> ext_php_rs::error::Result<()> {
    // The classes have no methods and no Rust object, so there are no argument tables to keep:
    // the registration hook has nothing to store.
    let class = |name: &str, parent: ClassEntryInfo| {
        ClassBuilder::new(name)
            .extends(parent)
            .registration(|_, _| {})
    };
    class(EXCEPTION, (runtime_exception, "RuntimeException")).register()?;
    for name in [CONNECTION_EXCEPTION, TIMEOUT_EXCEPTION, SERVER_EXCEPTION] {
        class(name, ROOT).register()?;
    }
    class(REPLICA_EXCEPTION, CONNECTION).register()?;
    // One constant per refusal, named after it: LoginException::NOT_FOUND = 101, ...
    let mut login = class(LOGIN_EXCEPTION, ROOT);
    for why in LoginError::ALL {
        let constant = why.name().to_ascii_uppercase();
        login = login.constant(constant, i64::from(why.code()), &[], ConstantFlags::Public)?;
    }
    login.register()?;
    for why in LoginError::ALL {
        class(login_class(why), LOGIN).register()?;
    }
    Ok(())
}

/// One argument of a PHP function that core errors can be about: PHP names it
/// `Argument #<position> ($<name>)`. Each function has a table of them.
pub struct Argument {
    position: u8,
    name: &'static str,
    holds: Holds,
}

impl Argument {
    pub const fn new(position: u8, name: &'static str, holds: Holds) -> Self {
        Argument {
            position,
            name,
            holds,
        }
    }
}

/// What an argument holds, in core subjects.
#[derive(Clone, Copy)]
pub enum Holds {
    Channel,
    Message,
    /// A list of [channel, message] pairs: the items of a batch.
    Messages,
    Url,
    /// Client options: settings by name.
    Options,
    BrowserIp,
    UserId,
    DisplayName,
    DeviceInfo,
    /// A channel or a list of channels (a broadcast's).
    Channels,
    /// An event name.
    Event,
    /// Values encoded like a message: a broadcast's data, an emit's arguments.
    Data,
    /// The socket id a broadcast leaves out.
    SocketId,
    /// A Socket.IO namespace.
    Namespace,
    /// A Socket.IO room or a list of rooms.
    Rooms,
}

/// How an argument holds a subject.
enum Place {
    /// The argument is the subject: the message says what is wrong with it.
    Whole,
    /// The subject is part of the argument: the message also says which part (the core's words,
    /// "message #1: channel", "pool_size:").
    Inside,
}

impl Holds {
    fn place(self, subject: Subject) -> Option<Place> {
        match (self, subject) {
            (Holds::Channel, Subject::Channel)
            | (Holds::Message, Subject::Message)
            | (Holds::Url, Subject::Url)
            | (Holds::BrowserIp, Subject::BrowserIp)
            | (Holds::UserId, Subject::UserId)
            | (Holds::DisplayName, Subject::DisplayName)
            | (Holds::DeviceInfo, Subject::DeviceInfo)
            | (Holds::Channels, Subject::Channel)
            | (Holds::Event, Subject::Event)
            | (Holds::Data, Subject::Message)
            | (Holds::SocketId, Subject::SocketId)
            | (Holds::Namespace, Subject::Namespace)
            | (Holds::Rooms, Subject::Room) => Some(Place::Whole),
            (Holds::Messages, Subject::Item { .. })
            | (Holds::Options, Subject::Setting(_) | Subject::Settings)
            | (Holds::Channels, Subject::ChannelAt(_))
            | (Holds::Rooms, Subject::RoomAt(_)) => Some(Place::Inside),
            _ => None,
        }
    }
}

/// Maps a core error from PHP function `function` (`"QrPush::publish"`), whose `arguments` the
/// error may be about, to the exception to throw.
pub fn to_php(err: Error, function: &str, arguments: &[Argument]) -> PhpException {
    let message = err.message();
    match err.kind() {
        ErrorKind::InvalidArgument => {
            PhpException::new(invalid(&err, function, arguments), 0, ce::value_error())
        }
        ErrorKind::InvalidType => {
            PhpException::new(invalid(&err, function, arguments), 0, ce::type_error())
        }
        ErrorKind::Connection => of(CONNECTION_EXCEPTION, message, code::CONNECTION),
        ErrorKind::Replica => of(REPLICA_EXCEPTION, message, code::REPLICA),
        ErrorKind::Timeout => of(TIMEOUT_EXCEPTION, message, code::TIMEOUT),
        ErrorKind::Server => of(SERVER_EXCEPTION, message, code::SERVER),
        ErrorKind::Protocol => of(EXCEPTION, message, code::PROTOCOL),
        ErrorKind::Login(why) => of(login_class(why), message, why.code()),
    }
}

/// An invalid-argument message as PHP words it:
/// `QrPush::publish(): Argument #1 ($channel) must not be empty`.
fn invalid(err: &Error, function: &str, arguments: &[Argument]) -> String {
    let found = err.subject().and_then(|subject| {
        arguments
            .iter()
            .find_map(|a| a.holds.place(subject).map(|place| (a, place)))
    });
    match found {
        Some((a, Place::Whole)) => format!(
            "{function}(): Argument #{} (${}) {}",
            a.position,
            a.name,
            err.detail()
        ),
        Some((a, Place::Inside)) => format!(
            "{function}(): Argument #{} (${}) {}",
            a.position,
            a.name,
            err.message()
        ),
        None => format!("{function}(): {}", err.message()),
    }
}

/// An exception of one of our classes (looked up by lower-cased name, as class tables key them).
fn of(class: &str, message: &str, code: i32) -> PhpException {
    let class = internal_class::find(&class.to_ascii_lowercase()).unwrap_or_else(ce::exception);
    PhpException::new(message.to_string(), code, class)
}

fn runtime_exception() -> &'static ClassEntry {
    // SPL is part of every PHP 8 build and starts before any shared extension.
    internal_class::find("runtimeexception").expect("RuntimeException is always registered")
}

fn qrpush_exception() -> &'static ClassEntry {
    internal_class::find("qrpush\\exception").expect("registered just before its subclasses")
}

fn connection_exception() -> &'static ClassEntry {
    internal_class::find("qrpush\\connectionexception")
        .expect("registered just before its subclasses")
}

fn login_exception() -> &'static ClassEntry {
    internal_class::find("qrpush\\loginexception").expect("registered just before its subclasses")
}
