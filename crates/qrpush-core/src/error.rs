//! The one error type of the core, with a kind that answers the questions callers ask
//! (may the command have reached Redis? should the connection be dropped?), and that the PHP
//! binding maps to exception classes in exactly one place.

use std::fmt;
use std::io;

/// What went wrong, coarse enough to pick a PHP exception class from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An argument or setting is invalid (`\ValueError` in PHP). Nothing was sent.
    InvalidArgument,
    /// A value cannot be encoded (`\TypeError` when it is of a type we never publish).
    InvalidType,
    /// Redis could not be reached, or the connection broke (`ConnectionException`).
    Connection,
    /// The time bound ran out (`TimeoutException`).
    Timeout,
    /// Redis answered with an error reply such as NOAUTH or NOPERM (`ServerException`).
    Server,
    /// Redis answered something that is not valid RESP or not the expected reply type.
    Protocol,
    /// A `QrPush\Login` call was refused (unknown login, wrong state, user, secret or ticket);
    /// nothing changed in Redis (`LoginException` subclasses).
    Login(crate::login::LoginError),
}

/// An error with a message that is safe to show: it never contains a password or other secret.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// Set when the failure happened after command bytes may have reached the server: the caller
    /// must not re-send, because Redis may already have executed the command (a duplicate PUBLISH).
    maybe_sent: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            maybe_sent: false,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn invalid_type(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidType, message)
    }

    /// Classifies an I/O error from a socket operation on `endpoint` (already redacted).
    pub fn io(err: &io::Error, what: &str, endpoint: &str) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            _ => ErrorKind::Connection,
        };
        let message = match kind {
            ErrorKind::Timeout => format!("{what} {endpoint} timed out"),
            _ => format!("{what} {endpoint} failed: {err}"),
        };
        Self::new(kind, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when command bytes may have reached Redis before the failure (never retry then).
    pub fn maybe_sent(&self) -> bool {
        self.maybe_sent
    }

    pub(crate) fn mark_maybe_sent(mut self) -> Self {
        self.maybe_sent = true;
        self
    }

    /// Adds a hint (which setting to change) to the message.
    pub(crate) fn with_hint(mut self, hint: &str) -> Self {
        self.message.push_str(" (");
        self.message.push_str(hint);
        self.message.push(')');
        self
    }

    /// True when the connection that produced this error can no longer be trusted: the pool
    /// drops it. A server error reply leaves the connection usable.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Protocol
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
