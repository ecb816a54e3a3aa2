//! Laravel's Redis broadcaster format: what `Illuminate\Broadcasting\Broadcasters\RedisBroadcaster`
//! publishes, so that Laravel Echo Server (and anything else that reads Laravel's broadcasts from
//! Redis) takes QrPush's events for Laravel's own.
//!
//! What Laravel does, and so what this module does (laravel/framework, src/Illuminate/Broadcasting):
//! - `BroadcastEvent::getPayloadFromEvent()` takes the event's `broadcastWith()` array and
//!   `array_merge`s `['socket' => $event->socket]` into it (the socket id `toOthers()` recorded
//!   from the `X-Socket-ID` header, else null). The PHP binding does that merge on PHP arrays
//!   (integer keys renumbered, an existing `socket` key replaced in place), which is why the
//!   payload reaching [`message`] already carries `socket`.
//! - `RedisBroadcaster::broadcast()` then publishes
//!   `json_encode(['event' => $event, 'data' => $payload, 'socket' => Arr::pull($payload, 'socket')])`.
//!   PHP evaluates the array literal in order: `data` is the payload *before* `Arr::pull` removes
//!   `socket` from it, so the socket id is in the message twice, inside `data` and beside it.
//!   `json_encode` runs with no flags: `/` is written `\/`, every non-ASCII character `\uXXXX`
//!   (lowercase hex, UTF-16 surrogate pairs), and floats without `PRESERVE_ZERO_FRACTION` (`1.0` is
//!   `1`). QrPush's own JSON has the opposite three flags, so [`message`] converts it.
//! - The message goes to `<prefix><channel>` for every channel, the prefix being
//!   `database.redis.options.prefix` (`BroadcastManager::createRedisDriver()`, and phpredis's
//!   OPT_PREFIX on a cluster); QrPush's `channel_prefix` plays that part. Channel names are
//!   Laravel's: `private-…` and `presence-…` for the guarded channels (`PrivateChannel`,
//!   `PresenceChannel`), the plain name for public ones.
//! - Laravel sends all channels with one Lua script (`EVAL` of `redis.call('publish', …)` per
//!   channel). [`broadcast`] sends one PUBLISH per channel, pipelined: still one round trip, and
//!   each command can go to the node its channel belongs to on a Redis Cluster, where a script
//!   that publishes to several channels can fail (laravel/framework#48682).

use crate::client::{Client, MAX_CHANNEL_LEN};
use crate::config::validate_channel_part;
use crate::error::{Error, Result, Subject};
use crate::json;

/// The message Laravel's RedisBroadcaster publishes for `event` with `payload`: the payload's
/// JSON (QrPush's JSON, as the binding or [`json::encode`] writes it) as it left
/// `getPayloadFromEvent()`, so with its `socket` entry, and `socket`, that same socket id.
/// The result is byte-identical to Laravel's `json_encode(...)`.
pub fn message(event: &str, payload: &[u8], socket: Option<&str>) -> Result<Vec<u8>> {
    let mut envelope = Vec::with_capacity(payload.len() + event.len() + 48);
    json::begin_object(&mut envelope);
    json::write_key("event", &mut envelope);
    json::write_str(event, &mut envelope);
    json::write_comma(&mut envelope);
    json::write_key("data", &mut envelope);
    envelope.extend_from_slice(payload);
    json::write_comma(&mut envelope);
    json::write_key("socket", &mut envelope);
    match socket {
        Some(socket) => json::write_str(socket, &mut envelope),
        None => json::write_null(&mut envelope),
    }
    json::end_object(&mut envelope);
    with_default_flags(&envelope)
}

/// Publishes `message` to every channel, each after the client's `channel_prefix` (Laravel's
/// prefix), as one pipeline of PUBLISH commands. Returns the receivers of all of them added up:
/// the number of deliveries (one per Laravel Echo Server process that listens, per channel).
/// No channel: nothing is sent, as Laravel does. Errors name the channel
/// ([`Subject::Channel`] for a single one, [`Subject::ChannelAt`] in a list) or the message.
pub fn broadcast<C: AsRef<[u8]>>(client: &Client, channels: &[C], message: &[u8]) -> Result<i64> {
    if channels.is_empty() {
        return Ok(0);
    }
    let single = channels.len() == 1;
    for (index, channel) in channels.iter().enumerate() {
        check_channel(channel.as_ref()).map_err(|e| {
            e.about(if single {
                Subject::Channel
            } else {
                Subject::ChannelAt(index)
            })
        })?;
    }
    let max = client.config().max_payload;
    if message.len() > max {
        return Err(Error::invalid(format!(
            "makes a message of {} bytes, more than qrpush.max_payload ({max} bytes)",
            message.len()
        ))
        .about(Subject::Message));
    }
    let mut batch = client.batch(channels.len());
    for channel in channels {
        batch.push_encoded(channel.as_ref(), || Ok(message))?;
    }
    Ok(batch.publish()?.into_iter().sum())
}

fn check_channel(channel: &[u8]) -> Result<()> {
    if channel.is_empty() {
        return Err(Error::invalid("must not be empty"));
    }
    validate_channel_part(channel, MAX_CHANNEL_LEN)
}

/// Rewrites JSON written with JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE |
/// JSON_PRESERVE_ZERO_FRACTION (QrPush's JSON) as `json_encode` writes it with no flags:
/// - in strings, `/` becomes `\/` and every non-ASCII character `\uXXXX` (lowercase hex, two
///   escapes, a UTF-16 surrogate pair, above U+FFFF); the other escapes are the same in both;
/// - a number that ends in `.0` and has no exponent loses the `.0`: PHP adds it only with
///   PRESERVE_ZERO_FRACTION, to a float whose spelling has neither `.` nor an exponent.
///
/// Fails only when the input is not UTF-8, which JSON from QrPush's writer always is.
pub fn with_default_flags(input: &[u8]) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(input)
        .map_err(|e| Error::invalid(format!("is not UTF-8 at byte {}", e.valid_up_to())))?;
    let bytes = text.as_bytes();
    // Non-ASCII text grows (a 3-byte character becomes 6 bytes): a little room up front.
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 16);
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => at = string(text, at, &mut out),
            b'-' | b'0'..=b'9' => at = number(bytes, at, &mut out),
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    Ok(out)
}

/// Copies the string that starts with the quote at `start`, escaped as json_encode does with no
/// flags; returns the index after its closing quote.
fn string(text: &str, start: usize, out: &mut Vec<u8>) -> usize {
    let bytes = text.as_bytes();
    out.push(b'"');
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                out.push(b'"');
                return at + 1;
            }
            b'\\' => {
                // An escape of the input: the same in both spellings (`\uXXXX` included).
                out.push(b'\\');
                if let Some(&next) = bytes.get(at + 1) {
                    out.push(next);
                }
                at += 2;
            }
            b'/' => {
                out.extend_from_slice(b"\\/");
                at += 1;
            }
            byte if byte < 0x80 => {
                out.push(byte);
                at += 1;
            }
            _ => match text.get(at..).and_then(|rest| rest.chars().next()) {
                Some(c) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        write_u_escape(*unit, out);
                    }
                    at += c.len_utf8();
                }
                // Not a character boundary: only after an escape of a non-ASCII byte, which JSON
                // (and QrPush's writer) never has. Copied as it is rather than failing.
                None => {
                    out.push(bytes[at]);
                    at += 1;
                }
            },
        }
    }
    at
}

fn write_u_escape(unit: u16, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

/// Copies the number that starts at `start` without a trailing `.0` (see
/// [`with_default_flags`]); returns the index after it.
fn number(bytes: &[u8], start: usize, out: &mut Vec<u8>) -> usize {
    let end = bytes[start..]
        .iter()
        .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        .map_or(bytes.len(), |n| start + n);
    let token = &bytes[start..end];
    let has_exponent = token.iter().any(|b| matches!(b, b'e' | b'E'));
    match token.strip_suffix(b".0") {
        Some(whole) if !has_exponent => out.extend_from_slice(whole),
        _ => out.extend_from_slice(token),
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_flags(json: &str) -> String {
        String::from_utf8(with_default_flags(json.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn slashes_and_non_ascii_are_escaped_as_json_encode_does_without_flags() {
        assert_eq!(default_flags(r#""a/b""#), r#""a\/b""#);
        assert_eq!(default_flags(r#""é€""#), r#""\u00e9\u20ac""#);
        // Above U+FFFF: a surrogate pair, lowercase.
        assert_eq!(default_flags("\"\u{1F680}\""), r#""\ud83d\ude80""#);
        // Escapes of the input stay; U+2028 is already escaped by QrPush's JSON.
        assert_eq!(
            default_flags(r#""q\"\\\n\u0001\u2028/""#),
            r#""q\"\\\n\u0001\u2028\/""#
        );
        // Keys are strings too.
        assert_eq!(default_flags(r#"{"ü/":1}"#), r#"{"\u00fc\/":1}"#);
    }

    #[test]
    fn zero_fractions_go_and_every_other_number_stays() {
        assert_eq!(
            default_flags("[1.0,-0.0,10.0,0.5,1.0e+25,-1.5e-7,12,-3,100]"),
            "[1,-0,10,0.5,1.0e+25,-1.5e-7,12,-3,100]"
        );
        // Digits inside strings are not numbers.
        assert_eq!(default_flags(r#"{"v":"1.0"}"#), r#"{"v":"1.0"}"#);
    }

    #[test]
    fn the_message_carries_the_socket_twice_in_json_encodes_default_spelling() {
        let payload = br#"{"id":1,"url":"https://x/y","price":2.0,"socket":"abc.123"}"#;
        let got = message("App\\Events\\Paid", payload, Some("abc.123")).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            r#"{"event":"App\\Events\\Paid","data":{"id":1,"url":"https:\/\/x\/y","price":2,"socket":"abc.123"},"socket":"abc.123"}"#
        );
        let got = message("a/b", br#"{"socket":null}"#, None).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            r#"{"event":"a\/b","data":{"socket":null},"socket":null}"#
        );
    }

    #[test]
    fn input_that_is_not_utf8_is_refused() {
        assert!(with_default_flags(b"\"\xff\"").is_err());
    }
}
