//! The RESP3 frames a Pub/Sub connection reads, parsed from a byte buffer that may hold a partial
//! frame. The redis crate's async Pub/Sub has no SSUBSCRIBE and no way to send ROLE on a
//! subscribed connection, so the gateway's node links (see `link`) speak the protocol
//! themselves; this is the reading half, kept apart so it is tested on bytes alone.
//!
//! Maps, sets and arrays become lists (a Pub/Sub connection only reads their items in order);
//! attributes are skipped; booleans, doubles and big numbers are kept as their text.

/// Nesting deeper than this is refused: no reply a Pub/Sub connection gets comes near it.
const MAX_DEPTH: usize = 16;
/// The longest bulk string or list accepted (Redis's own proto-max-bulk-len default).
const MAX_LEN: usize = 512 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `+…`, and the text of `#`, `,` and `(` values.
    Simple(String),
    /// `-…` or `!…`: an error reply, e.g. `MOVED 3999 127.0.0.1:7001`.
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    /// `*`, `%` (key, value, key, value…) and `~`.
    List(Vec<Frame>),
    /// `>`: a push (a message, a (un)subscribe confirmation, a server-side sunsubscribe).
    Push(Vec<Frame>),
}

impl Frame {
    /// The text of a string frame.
    pub fn text(&self) -> Option<&str> {
        match self {
            Frame::Simple(s) => Some(s),
            Frame::Bulk(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// The first complete frame in `buf` and the bytes it took; `Ok(None)` when more bytes are
/// needed; `Err` when the bytes are not RESP (the connection must be dropped).
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Frame, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("RESP nesting too deep".into());
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((line, mut next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let frame = match kind {
        b'+' | b'#' | b',' | b'(' => Frame::Simple(text()),
        b'-' => Frame::Error(text()),
        b':' => Frame::Int(number(line)?),
        b'_' => Frame::Nil,
        b'$' | b'!' | b'=' => {
            let len = number(line)?;
            if len < 0 {
                return Ok(Some((Frame::Nil, next)));
            }
            let len = length(len)?;
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            let body = &buf[next..next + len];
            if &buf[next + len..next + len + 2] != b"\r\n" {
                return Err("a bulk string does not end with CRLF".into());
            }
            next += len + 2;
            match kind {
                b'!' => Frame::Error(String::from_utf8_lossy(body).into_owned()),
                // A verbatim string starts with its format: `txt:`.
                b'=' => Frame::Bulk(body.get(4..).unwrap_or_default().to_vec()),
                _ => Frame::Bulk(body.to_vec()),
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = number(line)?;
            if count < 0 {
                return Ok(Some((Frame::Nil, next)));
            }
            let count = length(count)? * if matches!(kind, b'%' | b'|') { 2 } else { 1 };
            let mut items = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                match parse_at(buf, next, depth + 1)? {
                    Some((item, after)) => {
                        items.push(item);
                        next = after;
                    }
                    None => return Ok(None),
                }
            }
            match kind {
                // An attribute describes the value after it: skip to that value.
                b'|' => return parse_at(buf, next, depth + 1),
                b'>' => Frame::Push(items),
                _ => Frame::List(items),
            }
        }
        other => return Err(format!("unknown RESP type byte 0x{other:02x}")),
    };
    Ok(Some((frame, next)))
}

/// The line starting at `at` (without its CRLF) and where the next one starts.
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn number(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("'{}' is not a RESP number", String::from_utf8_lossy(line)))
}

fn length(n: i64) -> Result<usize, String> {
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_LEN)
        .ok_or_else(|| format!("RESP length {n} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn frames() {
        let cases: &[(&[u8], Frame)] = &[
            (b"+OK\r\n", Frame::Simple("OK".into())),
            (
                b"-MOVED 1 127.0.0.1:7001\r\n",
                Frame::Error("MOVED 1 127.0.0.1:7001".into()),
            ),
            (b":42\r\n", Frame::Int(42)),
            (b"$3\r\nfoo\r\n", bulk("foo")),
            (b"$-1\r\n", Frame::Nil),
            (b"_\r\n", Frame::Nil),
            (b"=8\r\ntxt:some\r\n", bulk("some")),
            (b"!3\r\nERR\r\n", Frame::Error("ERR".into())),
            (
                b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4\r\n\r\nxy\r\n",
                Frame::Push(vec![bulk("message"), bulk("ch"), bulk("\r\nxy")]),
            ),
            (
                b"*3\r\n$6\r\nmaster\r\n:10\r\n*0\r\n",
                Frame::List(vec![bulk("master"), Frame::Int(10), Frame::List(vec![])]),
            ),
            (
                b"%1\r\n+server\r\n+redis\r\n",
                Frame::List(vec![
                    Frame::Simple("server".into()),
                    Frame::Simple("redis".into()),
                ]),
            ),
            (b"|1\r\n+a\r\n+b\r\n:7\r\n", Frame::Int(7)),
        ];
        for (bytes, frame) in cases {
            assert_eq!(
                parse(bytes),
                Ok(Some((frame.clone(), bytes.len()))),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
            // Every proper prefix is incomplete, never an error nor a wrong frame.
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]), Ok(None), "prefix {cut} of {bytes:?}");
            }
        }
    }

    #[test]
    fn two_frames_in_one_buffer() {
        let bytes = b"+PONG\r\n:1\r\n";
        assert_eq!(parse(bytes), Ok(Some((Frame::Simple("PONG".into()), 7))));
        assert_eq!(parse(&bytes[7..]), Ok(Some((Frame::Int(1), 4))));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        assert!(parse(b"$3\r\nfooXY").is_err());
        assert!(parse(b"$99999999999\r\n").is_err());
    }
}
