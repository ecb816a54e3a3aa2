//! A Pub/Sub subscriber on a raw connection: what the tests count messages with.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::Value;

use crate::admin::{Admin, ADMIN_TIMEOUT};
use crate::server::Login;

/// What a subscriber's next read produced.
#[derive(Debug)]
pub enum Next {
    /// (channel, payload)
    Message(Vec<u8>, Vec<u8>),
    Timeout,
    Closed,
}

/// A Pub/Sub subscriber on a raw connection.
pub struct Subscriber {
    stream: TcpStream,
    parser: redis::Parser,
}

impl Subscriber {
    pub fn connect(port: u16, login: &Login, channels: &[&str]) -> io::Result<Subscriber> {
        Self::connect_with(port, login, "SUBSCRIBE", channels)
    }

    /// A subscriber of sharded Pub/Sub (SSUBSCRIBE, Redis 7+): receives what SPUBLISH sends.
    pub fn connect_sharded(port: u16, login: &Login, channels: &[&str]) -> io::Result<Subscriber> {
        Self::connect_with(port, login, "SSUBSCRIBE", channels)
    }

    fn connect_with(
        port: u16,
        login: &Login,
        command: &str,
        channels: &[&str],
    ) -> io::Result<Subscriber> {
        let admin = Admin::connect(port, login)?;
        let mut sub = Subscriber {
            stream: admin.stream,
            parser: admin.parser,
        };
        let confirmation = command.to_ascii_lowercase().into_bytes();
        let mut cmd = redis::cmd(command);
        for c in channels {
            cmd.arg(*c);
        }
        sub.stream.write_all(&cmd.get_packed_command())?;
        sub.stream.set_read_timeout(Some(ADMIN_TIMEOUT))?;
        for c in channels {
            let reply = sub
                .parser
                .parse_value(&mut sub.stream)
                .map_err(|e| io::Error::other(e.to_string()))?;
            match &reply {
                Value::Array(items)
                    if items.len() == 3
                        && items[0] == Value::BulkString(confirmation.clone())
                        && items[1] == Value::BulkString(c.as_bytes().to_vec()) => {}
                other => {
                    return Err(io::Error::other(format!(
                        "unexpected {command} reply: {other:?}"
                    )))
                }
            }
        }
        Ok(sub)
    }

    /// The next message, waiting at most `wait`.
    pub fn next(&mut self, wait: Duration) -> Next {
        let wait = wait.max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(wait))
            .expect("set_read_timeout");
        match self.parser.parse_value(&mut self.stream) {
            Ok(Value::Array(items)) | Ok(Value::Push { data: items, .. })
                if items.len() == 3
                    && (items[0] == Value::BulkString(b"message".to_vec())
                        || items[0] == Value::BulkString(b"smessage".to_vec())) =>
            {
                let mut items = items.into_iter().skip(1);
                match (items.next(), items.next()) {
                    (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) => {
                        Next::Message(channel, payload)
                    }
                    other => panic!("malformed Pub/Sub message: {other:?}"),
                }
            }
            Ok(other) => panic!("unexpected value on a subscriber connection: {other:?}"),
            Err(e) if e.is_timeout() => Next::Timeout,
            Err(_) => Next::Closed,
        }
    }

    /// Exactly `n` messages as (channel, payload), within `timeout` overall; panics otherwise.
    pub fn recv_messages(&mut self, n: usize, timeout: Duration) -> Vec<(Vec<u8>, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut got: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(n);
        while got.len() < n {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                panic!(
                    "expected {n} messages within {timeout:?}, got {}: {:?}",
                    got.len(),
                    got.iter()
                        .take(5)
                        .map(|(c, p)| (
                            String::from_utf8_lossy(c).into_owned(),
                            String::from_utf8_lossy(p).into_owned()
                        ))
                        .collect::<Vec<_>>()
                );
            }
            match self.next(remaining) {
                Next::Message(c, p) => got.push((c, p)),
                Next::Timeout => {}
                Next::Closed => panic!(
                    "subscriber connection closed after {} of {n} messages",
                    got.len()
                ),
            }
        }
        got
    }

    /// Exactly `n` message payloads within `timeout`.
    pub fn recv(&mut self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        self.recv_messages(n, timeout)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Asserts that no message arrives within `wait`.
    pub fn nothing_more(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return;
            }
            match self.next(remaining) {
                Next::Message(c, p) => panic!(
                    "unexpected message on {:?}: {:?}",
                    String::from_utf8_lossy(&c),
                    String::from_utf8_lossy(&p)
                ),
                Next::Timeout => {}
                Next::Closed => panic!("subscriber connection closed"),
            }
        }
    }
}
