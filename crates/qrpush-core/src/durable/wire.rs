//! What a durable publish sends over Pub/Sub: the message, behind one header line that names the
//! stream entry it was stored as.
//!
//! ```text
//! qrpush-durable/1 <epoch> <offset>\n<message bytes, unchanged>
//! ```
//!
//! A subscriber needs the offset of a live message to place it against a replay read from the
//! stream (no gap, no duplicate) and to resume from it later, and the offset is only known inside
//! the publish script (XADD makes it). So the script writes this header in front of the message.
//! A text line rather than a JSON envelope: the message stays any bytes (JSON or not), the script
//! only concatenates, and a subscriber finds the message after the first newline without parsing
//! it. The epoch and the offset never contain a space or a newline (digits and a dash).

use super::offset::Offset;

/// The header's first word, with the space after it.
pub const MAGIC: &[u8] = b"qrpush-durable/1 ";

/// A durable message as a subscriber receives it, borrowed from the Pub/Sub payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableMessage<'a> {
    /// The epoch of the stream the message was stored in (see `durable`'s module doc).
    pub epoch: &'a str,
    pub offset: Offset,
    /// The published message, byte for byte.
    pub message: &'a [u8],
}

/// The durable message in `payload`, or `None` when it is a plain publish (no header, or not one
/// of ours).
pub fn parse(payload: &[u8]) -> Option<DurableMessage<'_>> {
    let rest = payload.strip_prefix(MAGIC)?;
    // The header is short: look for its end in the first bytes only.
    let newline = rest.iter().take(128).position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&rest[..newline]).ok()?;
    let (epoch, offset) = header.split_once(' ')?;
    if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(DurableMessage {
        epoch,
        offset: offset.parse().ok()?,
        message: &rest[newline + 1..],
    })
}

/// The header and message, as the publish script writes them (the script is the writer; this is
/// for tests and tools that need the same bytes).
pub fn frame(epoch: &str, offset: Offset, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + epoch.len() + 44 + message.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(epoch.as_bytes());
    out.push(b' ');
    out.extend_from_slice(offset.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let offset = Offset::new(1712345678901, 3);
        let bytes = frame("1712345678901234", offset, b"{\"a\":1}\n\x00binary");
        assert_eq!(
            &bytes[..],
            &b"qrpush-durable/1 1712345678901234 1712345678901-3\n{\"a\":1}\n\x00binary"[..]
        );
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.epoch, "1712345678901234");
        assert_eq!(parsed.offset, offset);
        assert_eq!(parsed.message, b"{\"a\":1}\n\x00binary");
        let empty = frame("7", offset, b"");
        assert_eq!(parse(&empty).unwrap().message, b"");
        for plain in [
            &b"{\"a\":1}"[..],
            b"qrpush-durable/1 ",
            b"qrpush-durable/1 e 1-0",
            b"qrpush-durable/1 e x-0\nm",
            b"qrpush-durable/1  1-0\nm",
            b"qrpush-durable/1 e-1 1-0\nm",
            b"qrpush-durable/2 e 1-0\nm",
        ] {
            assert_eq!(parse(plain), None, "{:?}", String::from_utf8_lossy(plain));
        }
    }
}
