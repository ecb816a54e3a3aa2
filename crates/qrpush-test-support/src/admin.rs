//! A raw RESP2 connection for assertions, independent of the code under test, and the rows of
//! CLIENT LIST.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::Duration;

use redis::Value;

use crate::server::Login;

/// How long an admin command may take.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A reply as text (bulk, simple or verbatim string), for INFO and CLIENT LIST.
pub fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Okay => "OK".to_string(),
        other => panic!("expected a string reply, got {other:?}"),
    }
}

/// One line of CLIENT LIST as `key=value` fields.
#[derive(Debug, Clone)]
pub struct ClientInfo(Vec<(String, String)>);

impl ClientInfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn id(&self) -> u64 {
        self.get("id").and_then(|v| v.parse().ok()).expect("id")
    }
}

pub fn client_list(reply: &Value) -> Vec<ClientInfo> {
    text(reply)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            ClientInfo(
                line.split(' ')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        })
        .collect()
}

/// A raw RESP2 connection for assertions, independent of the code under test: commands are
/// encoded by `redis::cmd(..).get_packed_command()`, replies read by `redis::Parser`.
pub struct Admin {
    pub(crate) stream: TcpStream,
    pub(crate) parser: redis::Parser,
}

impl Admin {
    pub fn connect(port: u16, login: &Login) -> io::Result<Admin> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(ADMIN_TIMEOUT))?;
        stream.set_write_timeout(Some(ADMIN_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut admin = Admin {
            stream,
            parser: redis::Parser::new(),
        };
        if let Some(password) = &login.password {
            let mut args = vec!["AUTH"];
            if let Some(user) = &login.user {
                args.push(user);
            }
            args.push(password);
            match admin.try_cmd(&args)? {
                Value::Okay => {}
                other => {
                    return Err(io::Error::other(format!("admin AUTH failed: {other:?}")));
                }
            }
        }
        Ok(admin)
    }

    pub fn try_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Value> {
        let mut cmd = redis::Cmd::new();
        for a in args {
            cmd.arg(a.as_ref());
        }
        self.stream.write_all(&cmd.get_packed_command())?;
        self.parser
            .parse_value(&mut self.stream)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Runs a command; an error reply is returned as `Value::ServerError`.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("admin command failed: {e}"))
    }

    /// Runs a command that must answer OK.
    pub fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        match self.cmd(args) {
            Value::Okay => {}
            other => panic!("expected OK, got {other:?}"),
        }
    }
}
