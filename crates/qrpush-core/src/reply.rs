//! The bytes a connection has read and not yet consumed, cut into whole RESP replies.
//!
//! Why not `redis::Parser` over the socket: its synchronous reader zeroes an 8 KiB buffer before
//! every `read()` (combine's `extend_buf_sync`), which callgrind showed to be ~60% of a publish's
//! user-space instructions. So the connection reads into this buffer (allocated and zeroed once)
//! and only the *framing* is done here: finding where the first complete reply ends, which needs
//! nothing but the type byte and the length lines. The replies QrPush's hot path gets — an integer
//! for PUBLISH, a simple string for PING/AUTH — are decoded here too; every other reply (errors,
//! bulk strings, arrays, maps: handshake errors, login scripts) is handed whole to
//! `redis::parse_redis_value`, so the `redis` crate stays the one RESP decoder. A test checks both
//! paths against that parser on every reply shape, split at every byte.

use redis::Value;

/// What a fresh connection allocates; grown (doubling) only for a reply larger than this.
const INITIAL_CAPACITY: usize = 4096;
/// A buffer grown past this for one large reply is given back once that reply is consumed.
const RETAINED_CAPACITY: usize = 64 * 1024;

pub(crate) struct ReplyBuffer {
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl ReplyBuffer {
    pub(crate) fn new() -> Self {
        ReplyBuffer {
            buf: vec![0; INITIAL_CAPACITY],
            start: 0,
            end: 0,
        }
    }

    /// True when bytes arrived that no request asked for (they would be taken for the next reply).
    pub(crate) fn has_unread(&self) -> bool {
        self.start < self.end
    }

    /// The next complete reply, `Ok(None)` while more bytes are needed.
    pub(crate) fn next_reply(&mut self) -> Result<Option<Value>, String> {
        let pending = &self.buf[self.start..self.end];
        let Some(len) = reply_len(pending)? else {
            return Ok(None);
        };
        let value = decode(&pending[..len])?;
        self.consume(len);
        Ok(Some(value))
    }

    /// Consumes the next reply if it is a complete integer, without decoding it: the answer to the
    /// primary check sent behind every publish, whose value does not matter. False (nothing
    /// consumed) while it is incomplete or another kind of reply: `next_reply` then takes over.
    pub(crate) fn skip_integer(&mut self) -> bool {
        let pending = &self.buf[self.start..self.end];
        // What a primary answers: `:<replicas>\r\n`, nearly always one digit.
        let len = match pending {
            [b':', d, b'\r', b'\n', ..] if d.is_ascii_digit() => 4,
            [b':', ..] => match pending.iter().position(|&c| c == b'\n') {
                Some(nl) if nl >= 2 && pending[nl - 1] == b'\r' => nl + 1,
                _ => return false,
            },
            _ => return false,
        };
        self.consume(len);
        true
    }

    fn consume(&mut self, len: usize) {
        self.start += len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > RETAINED_CAPACITY {
                self.buf = vec![0; INITIAL_CAPACITY];
            }
        }
    }

    /// Free space to `read()` into; make room first (move the unread bytes down, or grow).
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into `spare()`.
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }
}

/// Length of the first complete RESP2/RESP3 reply in `b`; `None` while it is incomplete.
fn reply_len(b: &[u8]) -> Result<Option<usize>, String> {
    let mut pos = 0;
    // Replies still to be framed: 1, plus the elements of every aggregate met on the way.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let Some(&kind) = b.get(pos) else {
            return Ok(None);
        };
        let Some(nl) = b[pos..].iter().position(|&c| c == b'\n') else {
            return Ok(None);
        };
        if nl < 2 || b[pos + nl - 1] != b'\r' {
            return Err("a line does not end with CRLF".into());
        }
        let line = &b[pos + 1..pos + nl - 1];
        let next = pos + nl + 1;
        match kind {
            // One line: simple string, error, integer, null, double, boolean, big number.
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => pos = next,
            // A length line, then that many bytes and CRLF (-1: null).
            b'$' | b'=' | b'!' => match parse_i64(line).ok_or("a bad length")? {
                n if n < 0 => pos = next,
                n => {
                    let end = usize::try_from(n)
                        .ok()
                        .and_then(|n| next.checked_add(n)?.checked_add(2))
                        .ok_or("a bad length")?;
                    if b.len() < end {
                        return Ok(None);
                    }
                    pos = end;
                }
            },
            // A count line, then that many replies (maps and attributes: key and value each).
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = parse_i64(line).ok_or("a bad length")?.max(0) as u64;
                let elements = match kind {
                    b'%' => n.saturating_mul(2),
                    // An attribute map is followed by the reply it annotates.
                    b'|' => n.saturating_mul(2).saturating_add(1),
                    _ => n,
                };
                pending = pending.saturating_add(elements);
                pos = next;
            }
            _ => return Err("an unknown RESP type byte".into()),
        }
    }
    Ok(Some(pos))
}

/// Decodes one complete reply: integers and simple strings here, everything else by `redis`.
fn decode(reply: &[u8]) -> Result<Value, String> {
    let line = &reply[1..reply.len() - 2];
    match reply[0] {
        b':' => parse_i64(line)
            .map(Value::Int)
            .ok_or_else(|| "expected an integer".to_string()),
        b'+' if line == b"OK" => Ok(Value::Okay),
        b'+' => match std::str::from_utf8(line) {
            Ok(s) => Ok(Value::SimpleString(s.to_owned())),
            Err(_) => redis::parse_redis_value(reply).map_err(|e| e.to_string()),
        },
        _ => redis::parse_redis_value(reply).map_err(|e| e.to_string()),
    }
}

/// An integer line the way the `redis` crate reads one (surrounding whitespace allowed).
fn parse_i64(s: &[u8]) -> Option<i64> {
    // What Redis sends: digits with an optional '-'. Up to 18 digits cannot overflow an i64.
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if (1..=18).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        let n = digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        return Some(if negative { -n } else { n });
    }
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reply shape QrPush can meet, including nesting and RESP3 types.
    const REPLIES: &[&[u8]] = &[
        b":42\r\n",
        b":-7\r\n",
        b":0\r\n",
        b":9223372036854775807\r\n",
        b":-9223372036854775808\r\n",
        b":123456789012345678\r\n",
        b": 7 \r\n",
        b"+OK\r\n",
        b"+PONG\r\n",
        b"+\r\n",
        b"-NOPERM User app has no permissions to access the 'x' channel\r\n",
        b"-ERR\r\n",
        b"$3\r\nabc\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"$4\r\na\r\nb\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*2\r\n:1\r\n$1\r\nx\r\n",
        b"*3\r\n*1\r\n:1\r\n$-1\r\n-ERR nested\r\n",
        b"%1\r\n+a\r\n:1\r\n",
        b"~2\r\n:1\r\n:2\r\n",
        b"_\r\n",
        b",3.5\r\n",
        b"#t\r\n",
        b"(12345678901234567890\r\n",
        b"=7\r\ntxt:abc\r\n",
        b"!5\r\nERROR\r\n",
        b"|1\r\n+k\r\n+v\r\n:7\r\n",
    ];

    #[test]
    fn each_reply_decodes_like_the_redis_parser_however_it_is_split() {
        for &bytes in REPLIES {
            let want = redis::parse_redis_value(bytes).unwrap_or_else(|e| panic!("{e}"));
            // Followed by a second reply, to check that the first ends where it should.
            let stream = [bytes, b":99\r\n"].concat();
            for split in 0..=stream.len() {
                let mut r = ReplyBuffer::new();
                let mut got = Vec::new();
                for chunk in [&stream[..split], &stream[split..]] {
                    r.spare()[..chunk.len()].copy_from_slice(chunk);
                    r.filled(chunk.len());
                    while let Some(v) = r.next_reply().unwrap() {
                        got.push(v);
                    }
                }
                assert_eq!(
                    got,
                    vec![want.clone(), Value::Int(99)],
                    "{:?} split at {split}",
                    String::from_utf8_lossy(bytes)
                );
                assert!(!r.has_unread());
            }
        }
    }

    #[test]
    fn skip_integer_consumes_one_complete_integer_only() {
        let mut r = ReplyBuffer::new();
        let fill = |r: &mut ReplyBuffer, bytes: &[u8]| {
            r.spare()[..bytes.len()].copy_from_slice(bytes);
            r.filled(bytes.len());
        };
        fill(&mut r, b":1");
        assert!(!r.skip_integer(), "incomplete");
        fill(&mut r, b"2\r\n-ERR x\r\n");
        assert!(r.skip_integer());
        assert!(!r.skip_integer(), "an error reply is not skipped");
        assert!(matches!(r.next_reply(), Ok(Some(Value::ServerError(_)))));
        assert!(!r.has_unread());
        assert!(!r.skip_integer(), "empty");
    }

    #[test]
    fn malformed_framing_is_an_error_not_a_wait() {
        for bad in [&b"?x\r\n"[..], b":1\n", b"$x\r\n", b":x\r\n"] {
            let mut r = ReplyBuffer::new();
            r.spare()[..bad.len()].copy_from_slice(bad);
            r.filled(bad.len());
            assert!(
                r.next_reply().is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_large_reply_grows_the_buffer_and_then_gives_the_memory_back() {
        let body = vec![b'x'; 3 * RETAINED_CAPACITY];
        let reply = [format!("${}\r\n", body.len()).as_bytes(), &body, b"\r\n"].concat();
        let mut r = ReplyBuffer::new();
        let mut fed = 0;
        let value = loop {
            let spare = r.spare();
            let n = spare.len().min(reply.len() - fed);
            spare[..n].copy_from_slice(&reply[fed..fed + n]);
            r.filled(n);
            fed += n;
            if let Some(v) = r.next_reply().unwrap() {
                break v;
            }
        };
        assert_eq!(value, Value::BulkString(body));
        assert_eq!(r.buf.len(), INITIAL_CAPACITY);
    }
}
