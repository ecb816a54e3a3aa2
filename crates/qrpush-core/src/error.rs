//! The one error type of the core, with a kind that answers the questions callers ask
//! (may the command have reached Redis? should the connection be dropped?), the subject an
//! invalid-argument error is about, and the reasons a login call can be refused. The PHP binding
//! maps it to exception classes in exactly one place.
//!
//! A leaf: it uses nothing else of the crate, so every other module can use it.

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
    /// The server is a replica (or a Sentinel), not the primary: QrPush never publishes through
    /// one, because a replica's PUBLISH reaches only its own subscribers (`ReplicaException`, a
    /// `ConnectionException`).
    Replica,
    /// Redis answered something that is not valid RESP or not the expected reply type.
    Protocol,
    /// A `QrPush\Login` call was refused (unknown login, wrong state, user, secret, ticket or
    /// confirmation code, too many scans); nothing changed in Redis but the count of wrong codes
    /// (`LoginException` subclasses).
    Login(LoginError),
}

/// Why a login call was refused. Each has a stable code (the PHP exception's `getCode()`) and
/// a name (the login script's reason, and in capitals the PHP class constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginError {
    /// No such login: a forged or mistyped id or QR code, or one that expired long enough ago
    /// to be removed (after `login_terminal_ttl`).
    NotFound,
    /// The login's deadline passed (it is, or just became, `expired`).
    Expired,
    /// The transition is not allowed from the login's current state.
    WrongState,
    /// Approve/reject by a user other than the one who scanned.
    WrongUser,
    /// The browser secret does not match.
    WrongSecret,
    /// The ticket does not match (a forged ticket, or one replaced by `status()`).
    WrongTicket,
    /// The login was already redeemed: a replayed ticket.
    TicketUsed,
    /// The confirmation code given to redeem is not the one the approving phone shows (the
    /// browser's user did not confirm who approved). Counted: enough of them cancel the login.
    WrongCode,
    /// The scanning user has scanned too many logins lately (`login_scan_limit` per
    /// `login_scan_window`).
    RateLimited,
}

impl LoginError {
    pub const ALL: [LoginError; 9] = [
        LoginError::NotFound,
        LoginError::Expired,
        LoginError::WrongState,
        LoginError::WrongUser,
        LoginError::WrongSecret,
        LoginError::WrongTicket,
        LoginError::TicketUsed,
        LoginError::WrongCode,
        LoginError::RateLimited,
    ];

    /// The stable code: 101..=109.
    pub fn code(self) -> i32 {
        match self {
            LoginError::NotFound => 101,
            LoginError::Expired => 102,
            LoginError::WrongState => 103,
            LoginError::WrongUser => 104,
            LoginError::WrongSecret => 105,
            LoginError::WrongTicket => 106,
            LoginError::TicketUsed => 107,
            LoginError::WrongCode => 108,
            LoginError::RateLimited => 109,
        }
    }

    /// The reason's name, as the login script returns it: `not_found`, `wrong_state`...
    pub fn name(self) -> &'static str {
        match self {
            LoginError::NotFound => "not_found",
            LoginError::Expired => "expired",
            LoginError::WrongState => "wrong_state",
            LoginError::WrongUser => "wrong_user",
            LoginError::WrongSecret => "wrong_secret",
            LoginError::WrongTicket => "wrong_ticket",
            LoginError::TicketUsed => "ticket_used",
            LoginError::WrongCode => "wrong_code",
            LoginError::RateLimited => "rate_limited",
        }
    }

    /// The refusal named `name` (see [`LoginError::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        LoginError::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// What an invalid-argument error is about. The core's messages name it in words ("channel must
/// not be empty"); the PHP binding names the argument that holds it instead
/// (`QrPush::publish(): Argument #1 ($channel) must not be empty`), without taking text apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The channel of one publish.
    Channel,
    /// The message (payload) of one publish.
    Message,
    /// Item `index` (from 0) of a batch of publishes: its channel, its message, or (`part` none)
    /// the item itself.
    Item {
        index: usize,
        part: Option<ItemPart>,
    },
    /// A Redis URL. Its messages say "the Redis URL ..." themselves.
    Url,
    /// One setting of the settings table, by name (php.ini `qrpush.<name>`, a Client option).
    Setting(&'static str),
    /// The settings given as a whole: a name that is no setting, a value that is no text. The
    /// message names the key.
    Settings,
    /// A login's user id.
    UserId,
    /// A phone's description of itself.
    DeviceInfo,
    /// A browser's IP address.
    BrowserIp,
    /// The approving account's name, shown to the browser before it redeems.
    DisplayName,
    /// Channel `index` (from 0) of a list of channels (a broadcast's, a subscription token's).
    ChannelAt(usize),
    /// The event name of a broadcast or a Socket.IO emit.
    Event,
    /// The socket id a Laravel broadcast leaves out.
    SocketId,
    /// A Socket.IO namespace.
    Namespace,
    /// The Socket.IO room given alone.
    Room,
    /// Room `index` (from 0) of a list of Socket.IO rooms.
    RoomAt(usize),
    /// A list of channels as a whole (a subscription token's).
    Channels,
    /// A lifetime in seconds (a subscription token's).
    Ttl,
}

/// The part of a batch item an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemPart {
    Channel,
    Message,
}

impl Subject {
    /// How the core's own messages name the subject, before the text about it; empty when the
    /// text names it itself.
    fn label(self) -> String {
        match self {
            Subject::Channel => "channel".into(),
            Subject::Message => "message".into(),
            Subject::Item { index, part } => match part {
                None => format!("message #{index}"),
                Some(ItemPart::Channel) => format!("message #{index}: channel"),
                Some(ItemPart::Message) => format!("message #{index}: message"),
            },
            Subject::Url | Subject::Settings => String::new(),
            Subject::Setting(name) => format!("{name}:"),
            Subject::UserId => "user id".into(),
            Subject::DeviceInfo => "device info".into(),
            Subject::BrowserIp => "browser IP".into(),
            Subject::DisplayName => "display name".into(),
            Subject::ChannelAt(index) => format!("channel #{index}"),
            Subject::Event => "event".into(),
            Subject::SocketId => "socket id".into(),
            Subject::Namespace => "namespace".into(),
            Subject::Room => "room".into(),
            Subject::RoomAt(index) => format!("room #{index}"),
            Subject::Channels => "channels".into(),
            Subject::Ttl => "ttl".into(),
        }
    }
}

/// An error with a message that is safe to show: it never contains a password or other secret.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    subject: Option<Subject>,
    /// The subject's label, then the detail: what `message()` shows.
    message: String,
    /// Where the detail starts in `message` (after the label and its space).
    detail_at: usize,
    /// Set when the failure happened after command bytes may have reached the server: the caller
    /// must not re-send, because Redis may already have executed the command (a duplicate PUBLISH).
    maybe_sent: bool,
    /// Set for error replies that mean "wrong server for this command, nothing was done" (a
    /// demoted primary's READONLY, LOADING, a cluster redirect...): the connection is retired.
    retire: bool,
    /// For a batch that was partly published: what happened to each message.
    batch: Option<Box<BatchOutcome>>,
    /// For an error made from an error reply: the reply as Redis sent it (code and details,
    /// e.g. a Cluster's `MOVED 3999 10.0.0.2:7001`), for the layers that act on it.
    server_reply: Option<Box<str>>,
}

/// The per-message outcome of a batch of publishes that Redis partly carried out. Redis runs
/// every command of a pipeline on its own: one refused message (NOPERM on its channel) does not
/// roll back the others.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// `(index, receivers)` of every message Redis published, in order.
    pub published: Vec<(usize, i64)>,
    /// `(index, why)` of every other message, in order: refused by Redis (a `Server` error: it
    /// was not published, and sending it again cannot duplicate it), or unknown (`maybe_sent`:
    /// the connection failed before its reply, so it may have been published).
    pub failed: Vec<(usize, Error)>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            subject: None,
            message: message.into(),
            detail_at: 0,
            maybe_sent: false,
            retire: false,
            batch: None,
            server_reply: None,
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

    /// The same error about `subject` (replacing the subject it had).
    pub fn about(mut self, subject: Subject) -> Self {
        let label = subject.label();
        let detail = &self.message[self.detail_at..];
        let (message, detail_at) = if label.is_empty() {
            (detail.to_string(), 0)
        } else {
            (format!("{label} {detail}"), label.len() + 1)
        };
        self.message = message;
        self.detail_at = detail_at;
        self.subject = Some(subject);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What the error is about, when it is about an argument or a setting.
    pub fn subject(&self) -> Option<Subject> {
        self.subject
    }

    /// The whole message, naming the subject in the core's words: "channel must not be empty".
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message without the subject: "must not be empty", for callers that name the subject
    /// their own way.
    pub fn detail(&self) -> &str {
        &self.message[self.detail_at..]
    }

    /// True when command bytes may have reached Redis before the failure (never retry then).
    pub fn maybe_sent(&self) -> bool {
        self.maybe_sent
    }

    pub(crate) fn mark_maybe_sent(mut self) -> Self {
        self.maybe_sent = true;
        self
    }

    /// Marks an error reply after which the connection must not be used again (see `retire`).
    pub(crate) fn mark_retire(mut self) -> Self {
        self.retire = true;
        self
    }

    /// For a batch that was partly published: what happened to each message.
    pub fn batch_outcome(&self) -> Option<&BatchOutcome> {
        self.batch.as_deref()
    }

    pub(crate) fn with_batch_outcome(mut self, outcome: BatchOutcome) -> Self {
        self.batch = Some(Box::new(outcome));
        self
    }

    /// The error reply this error was made from (code and details), if it was.
    pub fn server_reply(&self) -> Option<&str> {
        self.server_reply.as_deref()
    }

    pub(crate) fn with_server_reply(mut self, reply: String) -> Self {
        self.server_reply = Some(reply.into_boxed_str());
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
    /// drops it. A server error reply leaves the connection usable, except the replies that say
    /// the server is not (or no longer) the right one (`retire`).
    pub fn breaks_connection(&self) -> bool {
        self.retire
            || matches!(
                self.kind,
                ErrorKind::Connection
                    | ErrorKind::Timeout
                    | ErrorKind::Protocol
                    | ErrorKind::Replica
            )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_codes_are_stable_and_distinct() {
        let codes: Vec<i32> = LoginError::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, vec![101, 102, 103, 104, 105, 106, 107, 108, 109]);
        for e in LoginError::ALL {
            assert_eq!(LoginError::from_name(e.name()), Some(e));
        }
        assert_eq!(LoginError::from_name("exists"), None);
    }

    #[test]
    fn a_subject_is_named_in_the_message_and_kept_apart_from_the_detail() {
        let e = Error::invalid("must not be empty");
        assert_eq!(
            (e.message(), e.detail(), e.subject()),
            ("must not be empty", "must not be empty", None)
        );
        let e = e.about(Subject::Channel);
        assert_eq!(e.message(), "channel must not be empty");
        assert_eq!(e.detail(), "must not be empty");
        assert_eq!(e.subject(), Some(Subject::Channel));
        let item = Subject::Item {
            index: 3,
            part: Some(ItemPart::Message),
        };
        let e = e.about(item);
        assert_eq!(e.message(), "message #3: message must not be empty");
        assert_eq!(e.detail(), "must not be empty");
        let e = e.about(Subject::Setting("pool_size"));
        assert_eq!(e.message(), "pool_size: must not be empty");
        let e = e.about(Subject::Url);
        assert_eq!(e.message(), "must not be empty");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
