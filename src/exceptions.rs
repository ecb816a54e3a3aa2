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
//!
//! `QrPush\PartialBatchException` carries what happened to each message of a batch Redis partly
//! published, in two private properties read by `getResults()` and `getFailures()`.

use ext_php_rs::builders::{ClassBuilder, ClassProperty, FunctionBuilder};
use ext_php_rs::class::ClassEntryInfo;
use ext_php_rs::convert::IntoZval;
use ext_php_rs::exception::PhpException;
use ext_php_rs::flags::{ConstantFlags, DataType, MethodFlags, PropertyFlags};
use ext_php_rs::types::{ZendHashTable, ZendObject, Zval};
use ext_php_rs::zend::{ce, ClassEntry, ExecuteData, ExecutorGlobals};
use ext_php_rs::zend_fastcall;
use qrpush_core::{BatchOutcome, Error, ErrorKind, LoginError, Subject};

use crate::internal_class;

/// Stable exception codes, so callers can switch on `getCode()` too. Login refusals have theirs
/// from the core ([`LoginError::code`], 101..=109).
pub mod code {
    pub const CONNECTION: i32 = 1;
    pub const TIMEOUT: i32 = 2;
    pub const SERVER: i32 = 3;
    pub const PROTOCOL: i32 = 4;
    pub const REPLICA: i32 = 5;
    pub const PARTIAL_BATCH: i32 = 6;
}

const EXCEPTION: &str = "QrPush\\Exception";
const CONNECTION_EXCEPTION: &str = "QrPush\\ConnectionException";
const TIMEOUT_EXCEPTION: &str = "QrPush\\TimeoutException";
const SERVER_EXCEPTION: &str = "QrPush\\ServerException";
const REPLICA_EXCEPTION: &str = "QrPush\\ReplicaException";
const PARTIAL_BATCH_EXCEPTION: &str = "QrPush\\PartialBatchException";
/// The private properties behind `getResults()` and `getFailures()`.
const RESULTS: &str = "results";
const FAILURES: &str = "failures";
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
    let array_property = |name: &str| ClassProperty {
        name: name.into(),
        flags: PropertyFlags::Private,
        // Null until set: an array default would have to be a persistent (immutable) one.
        default: None,
        docs: &[],
        ty: None,
        nullable: false,
        readonly: false,
        default_stub: None,
    };
    let getter = |name: &str, handler| {
        FunctionBuilder::new(name, handler).returns(DataType::Array, false, false)
    };
    ClassBuilder::new(PARTIAL_BATCH_EXCEPTION)
        .extends(ROOT)
        .property(array_property(RESULTS))
        .property(array_property(FAILURES))
        .method(getter("getResults", get_results), MethodFlags::Public)
        .method(getter("getFailures", get_failures), MethodFlags::Public)
        // The engine points at the methods' argument tables for the life of the process.
        .registration(|_, tables| {
            Box::leak(tables);
        })
        .register()?;
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
    /// A channel or a list of channels (a broadcast's, a subscription token's).
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
    /// A lifetime in seconds.
    Ttl,
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
            | (Holds::Rooms, Subject::Room)
            | (Holds::Channels, Subject::Channels)
            | (Holds::Ttl, Subject::Ttl) => Some(Place::Whole),
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
    if let Some(outcome) = err.batch_outcome() {
        return partial_batch(&err, outcome);
    }
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
    PhpException::new(message.to_string(), code, class_entry(class))
}

fn class_entry(class: &str) -> &'static ClassEntry {
    internal_class::find(&class.to_ascii_lowercase()).unwrap_or_else(ce::exception)
}

/// The class and code a Redis-side error maps to (never an invalid-argument one: a batch is sent
/// only once every item is valid).
fn class_and_code(err: &Error) -> (&'static str, i32) {
    match err.kind() {
        ErrorKind::Connection => (CONNECTION_EXCEPTION, code::CONNECTION),
        ErrorKind::Replica => (REPLICA_EXCEPTION, code::REPLICA),
        ErrorKind::Timeout => (TIMEOUT_EXCEPTION, code::TIMEOUT),
        ErrorKind::Server => (SERVER_EXCEPTION, code::SERVER),
        ErrorKind::Login(why) => (login_class(why), why.code()),
        ErrorKind::Protocol | ErrorKind::InvalidArgument | ErrorKind::InvalidType => {
            (EXCEPTION, code::PROTOCOL)
        }
    }
}

/// A new exception object of `class`, built by its own constructor as `new $class($message,
/// $code)` would (so it has its file, line and trace).
fn exception_object(class: &str, message: &str, code: i32) -> ext_php_rs::error::Result<Zval> {
    let object = ZendObject::new(class_entry(class));
    object.try_call_method("__construct", vec![&message.to_string(), &i64::from(code)])?;
    object.into_zval(false)
}

/// `QrPush\PartialBatchException`: the message and code of the batch, `getResults()` the index
/// and receivers of every published message, `getFailures()` an exception per other message
/// (ServerException: refused, not published; TimeoutException or ConnectionException: unknown,
/// it may have been published; ReplicaException: run by a demoted primary for nobody).
fn partial_batch(err: &Error, outcome: &BatchOutcome) -> PhpException {
    let build = || -> ext_php_rs::error::Result<Zval> {
        let mut results = ZendHashTable::new();
        for (index, receivers) in &outcome.published {
            results.insert_at_index(*index as i64, *receivers)?;
        }
        let mut failures = ZendHashTable::new();
        for (index, why) in &outcome.failed {
            let (class, code) = class_and_code(why);
            failures
                .insert_at_index(*index as i64, exception_object(class, why.message(), code)?)?;
        }
        let mut exception =
            exception_object(PARTIAL_BATCH_EXCEPTION, err.message(), code::PARTIAL_BATCH)?;
        let object = exception
            .object_mut()
            .ok_or(ext_php_rs::error::Error::Object)?;
        // The properties are private: write them as the class itself would (the engine's
        // zend_update_property does the same with EG(fake_scope)).
        let scope = class_entry(PARTIAL_BATCH_EXCEPTION);
        let previous = std::mem::replace(
            &mut ExecutorGlobals::get_mut().fake_scope,
            std::ptr::from_ref(scope).cast_mut(),
        );
        let written = object
            .set_property(RESULTS, results)
            .and_then(|()| object.set_property(FAILURES, failures));
        ExecutorGlobals::get_mut().fake_scope = previous;
        written?;
        Ok(exception)
    };
    match build() {
        Ok(object) => {
            of(PARTIAL_BATCH_EXCEPTION, err.message(), code::PARTIAL_BATCH).with_object(object)
        }
        // Out of memory or a constructor that threw: the message still says what happened.
        Err(_) => of(PARTIAL_BATCH_EXCEPTION, err.message(), code::PARTIAL_BATCH),
    }
}

/// A copy of the private array property `name` of `$this` as the return value.
fn return_property(ex: &mut ExecuteData, retval: &mut Zval, name: &str) {
    let copy = ex
        .get_self()
        .and_then(|this| this.get_property::<&ZendHashTable>(name).ok())
        .map(ToOwned::to_owned);
    retval.set_hashtable(copy.unwrap_or_default());
}

zend_fastcall! {
    extern fn get_results(ex: &mut ExecuteData, retval: &mut Zval) {
        return_property(ex, retval, RESULTS);
    }
}

zend_fastcall! {
    extern fn get_failures(ex: &mut ExecuteData, retval: &mut Zval) {
        return_property(ex, retval, FAILURES);
    }
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
