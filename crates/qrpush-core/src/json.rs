//! PHP-compatible JSON encoding.
//!
//! Payloads can be published either by this extension or by plain PHP code calling
//! `json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION)`.
//! Subscribers must see the same bytes whichever publisher was used (they may hash, dedupe or
//! compare messages), so this module reproduces PHP 8.4's output byte for byte, for any
//! `serialize_precision` ([`Precision`]; PHP's default `-1` unless told otherwise).
//!
//! The module is a small writer API that appends to a `Vec<u8>`: the PHP binding walks zvals and
//! calls it directly (one pass, no intermediate tree), and [`encode`] walks a `serde_json::Value`
//! with the very same functions, so the property tests over Values exercise what PHP input goes
//! through. Where PHP's output differs from serde_json's compact form:
//! - floats: PHP spells them its own way (exponent thresholds, `1.0e+25`, ties rounded to even,
//!   `serialize_precision`), which [`format_php_float_with`] reproduces (in `json/float.rs`);
//! - strings: PHP escapes U+2028 and U+2029 even under `JSON_UNESCAPED_UNICODE`, because
//!   `JSON_UNESCAPED_LINE_TERMINATORS` is not set.
//!
//! Everything else is the common JSON spelling: `\b \f \n \r \t`, `\u00xx` in lowercase hex for
//! the other controls, `\"` and `\\`; `/`, DEL and non-ASCII characters are written raw.
//!
//! Integers outside the `i64` range (serde_json's `u64` above `i64::MAX`) are written as integers;
//! PHP would hold them as floats, but values built from PHP data never contain them.
//!
//! Nothing here allocates beyond growing `out`. A writer that returns an error may already have
//! appended part of its output: callers discard the buffer on error (the binding never publishes
//! a partly encoded message).

mod float;

use serde_json::{Number, Value};

pub use float::{format_php_float, format_php_float_with, Precision};

/// Appends the PHP-compatible JSON encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => write_null(out),
        Value::Bool(b) => write_bool(*b, out),
        Value::Number(number) => write_number(number, out),
        Value::String(string) => write_str(string, out),
        Value::Array(items) => {
            begin_array(out);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write_comma(out);
                }
                encode_into(item, out);
            }
            end_array(out);
        }
        Value::Object(map) => {
            begin_object(out);
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    write_comma(out);
                }
                write_key(key, out);
                encode_into(item, out);
            }
            end_object(out);
        }
    }
}

/// Convenience: encode to a new Vec.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

fn write_number(number: &Number, out: &mut Vec<u8>) {
    // `as_i64`/`as_u64` are `None` for floats, so the float arm only sees floats.
    if let Some(int) = number.as_i64() {
        write_i64(int, out);
    } else if let Some(int) = number.as_u64() {
        write_u64(int, out);
    } else if let Some(float) = number.as_f64() {
        // A Number is always finite, so this never takes the `0` path for NAN/INF.
        format_php_float(float, out);
    }
}

/// A float that JSON cannot represent (NAN, INF, -INF). PHP's json_encode refuses them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFiniteFloat;

/// A string that is not valid UTF-8; `valid_up_to` is the offset of the first byte of the bad
/// sequence within that string (what [`std::str::Utf8Error::valid_up_to`] reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedUtf8 {
    pub valid_up_to: usize,
}

pub fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

pub fn write_bool(value: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

pub fn write_i64(value: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

pub fn write_u64(value: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Writes a finite float the way PHP does by default (see [`format_php_float`]); NAN and INF
/// write nothing.
pub fn write_f64(value: f64, out: &mut Vec<u8>) -> Result<(), NonFiniteFloat> {
    write_f64_with(value, Precision::Shortest, out)
}

/// Writes a finite float the way PHP does with `serialize_precision` = `precision` (see
/// [`format_php_float_with`]); NAN and INF write nothing.
pub fn write_f64_with(
    value: f64,
    precision: Precision,
    out: &mut Vec<u8>,
) -> Result<(), NonFiniteFloat> {
    if !value.is_finite() {
        return Err(NonFiniteFloat);
    }
    format_php_float_with(value, precision, out);
    Ok(())
}

pub fn begin_array(out: &mut Vec<u8>) {
    out.push(b'[');
}

pub fn end_array(out: &mut Vec<u8>) {
    out.push(b']');
}

pub fn begin_object(out: &mut Vec<u8>) {
    out.push(b'{');
}

pub fn end_object(out: &mut Vec<u8>) {
    out.push(b'}');
}

/// The `,` that goes before every element of an array or object except the first.
pub fn write_comma(out: &mut Vec<u8>) {
    out.push(b',');
}

/// Writes an object key and its `:`.
pub fn write_key(name: &str, out: &mut Vec<u8>) {
    write_str(name, out);
    out.push(b':');
}

/// Writes an object key given as raw bytes (a PHP string) and its `:`, checking its UTF-8.
pub fn write_utf8_key(name: &[u8], out: &mut Vec<u8>) -> Result<(), MalformedUtf8> {
    write_utf8(name, out)?;
    out.push(b':');
    Ok(())
}

/// Writes an integer array key as PHP does in an object: a quoted number, then `:`.
pub fn write_index_key(index: i64, out: &mut Vec<u8>) {
    out.push(b'"');
    write_i64(index, out);
    out.extend_from_slice(b"\":");
}

/// Writes the bytes of a PHP string as a quoted, escaped JSON string. Malformed UTF-8 is refused
/// (json_encode refuses it too) before anything is written; std's validator decides.
pub fn write_utf8(text: &[u8], out: &mut Vec<u8>) -> Result<(), MalformedUtf8> {
    let text = std::str::from_utf8(text).map_err(|e| MalformedUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    write_str(text, out);
    Ok(())
}

/// Writes `text` as a quoted, escaped JSON string: runs of characters that need no escape are
/// copied in one go.
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    let text = text.as_bytes();
    out.reserve(text.len() + 2);
    out.push(b'"');
    // text[..copied] has been written; text[copied..at] is a run still to be copied as it is.
    let mut copied = 0;
    let mut at = 0;
    loop {
        at = verbatim_run_end(text, at);
        let Some(&byte) = text.get(at) else {
            break;
        };
        let escape = ESCAPES[usize::from(byte)];
        if escape == MAYBE_LINE_TERMINATOR {
            if let Some(escape) = line_terminator_escape(&text[at..]) {
                out.extend_from_slice(&text[copied..at]);
                out.extend_from_slice(escape);
                copied = at + 3;
            }
            at += 1;
        } else {
            out.extend_from_slice(&text[copied..at]);
            write_escape(byte, escape, out);
            at += 1;
            copied = at;
        }
    }
    out.extend_from_slice(&text[copied..]);
    out.push(b'"');
}

/// What [`write_str`] does with each byte value: copy it (`VERBATIM`), look at the sequence it
/// starts (`MAYBE_LINE_TERMINATOR`: 0xE2, the lead byte of U+2028 and U+2029, which PHP escapes
/// even with JSON_UNESCAPED_UNICODE), or else the character that follows the backslash of its
/// escape (`u` meaning `\u00xx`). Other non-ASCII bytes are copied: the text is valid UTF-8.
const ESCAPES: [u8; 256] = escape_table();
const VERBATIM: u8 = 0;
const MAYBE_LINE_TERMINATOR: u8 = 1;

const fn escape_table() -> [u8; 256] {
    let mut table = [VERBATIM; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[0xE2] = MAYBE_LINE_TERMINATOR;
    table
}

/// The index of the first byte at or after `from` that is not [`VERBATIM`] (or `text.len()`).
/// Eight bytes are checked at a time while all of them are plain printable ASCII, since most of
/// a typical message is.
fn verbatim_run_end(text: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(chunk) = text.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        if !all_plain_ascii(u64::from_le_bytes(*chunk)) {
            break;
        }
        at += 8;
    }
    while let Some(&byte) = text.get(at) {
        if ESCAPES[usize::from(byte)] != VERBATIM {
            break;
        }
        at += 1;
    }
    at
}

/// Whether all 8 bytes packed in `word` are printable ASCII other than `"` and `\`: none below
/// 0x20, none above 0x7f. These are the classic SWAR "has a byte less than n" and "has a zero
/// byte" tests, which never miss such a byte (a false alarm only sends the word to the byte loop).
fn all_plain_ascii(word: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w;
    let controls = word.wrapping_sub(ONES * 0x20) & !word;
    let quotes = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslashes = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    (controls | quotes | backslashes | word) & HIGH_BITS == 0
}

fn write_escape(byte: u8, escape: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if escape == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

/// PHP's escape for U+2028 / U+2029 when `sequence` starts with one (E2 80 A8 / E2 80 A9).
fn line_terminator_escape(sequence: &[u8]) -> Option<&'static [u8]> {
    match sequence {
        [0xE2, 0x80, 0xA8, ..] => Some(b"\\u2028"),
        [0xE2, 0x80, 0xA9, ..] => Some(b"\\u2029"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode_str(value: &serde_json::Value) -> String {
        String::from_utf8(encode(value)).expect("the encoder writes UTF-8")
    }

    #[test]
    fn json_strings_match_php() {
        let controls: String = (0u8..0x20).map(char::from).collect();
        let cases: &[(&str, &str)] = &[
            (
                &controls,
                r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f""#,
            ),
            ("", r#""""#),
            ("q\"b\\s/d\x7f", "\"q\\\"b\\\\s/d\x7f\""),
            ("</script>", r#""</script>""#),
            ("http://a/b", r#""http://a/b""#),
            (
                "a\u{2028}b\u{2029}c\u{2027}\u{202a}",
                "\"a\\u2028b\\u2029c\u{2027}\u{202a}\"",
            ),
            ("\u{2028}\u{2029}\u{2028}", r#""\u2028\u2029\u2028""#),
            ("\n\u{2028}\"", r#""\n\u2028\"""#),
            (
                "héllo 😀 日本 \u{feff}\u{85}",
                "\"héllo 😀 日本 \u{feff}\u{85}\"",
            ),
        ];
        for &(input, expected) in cases {
            assert_eq!(encode_str(&json!(input)), expected, "encoding {input:?}");
        }
    }

    #[test]
    fn json_structures_match_php() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (json!(null), "null"),
            (json!(true), "true"),
            (json!(false), "false"),
            (json!([]), "[]"),
            (json!({}), "{}"),
            (json!([[], [[]], [1.0, 2.5]]), "[[],[[]],[1.0,2.5]]"),
            (
                json!([i64::MAX, i64::MIN, 0, -1]),
                "[9223372036854775807,-9223372036854775808,0,-1]",
            ),
            (
                json!({
                    "b": 1,
                    "a": [1, [], {}, {"x": null, "y": true, "z": false}],
                    "\u{2028}k\n": -5,
                    "e": ""
                }),
                r#"{"b":1,"a":[1,[],{},{"x":null,"y":true,"z":false}],"\u2028k\n":-5,"e":""}"#,
            ),
            (
                json!({"z": 1, "y": {"c": 0.1, "b": 1e25, "a": [-0.0]}, "x": "/"}),
                r#"{"z":1,"y":{"c":0.1,"b":1.0e+25,"a":[-0.0]},"x":"/"}"#,
            ),
        ];
        for (input, expected) in &cases {
            assert_eq!(encode_str(input), *expected);
        }
    }

    #[test]
    fn json_encode_into_appends() {
        let mut out = b"prefix:".to_vec();
        encode_into(&json!([1.0]), &mut out);
        assert_eq!(out, b"prefix:[1.0]");
    }

    #[test]
    fn json_writer_builds_what_encode_builds() {
        let mut out = Vec::new();
        begin_object(&mut out);
        write_index_key(-3, &mut out);
        begin_array(&mut out);
        write_null(&mut out);
        write_comma(&mut out);
        write_bool(true, &mut out);
        write_comma(&mut out);
        write_i64(i64::MIN, &mut out);
        write_comma(&mut out);
        write_u64(u64::MAX, &mut out);
        write_comma(&mut out);
        write_f64(-0.0, &mut out).unwrap();
        end_array(&mut out);
        write_comma(&mut out);
        write_utf8_key("k\u{2029}".as_bytes(), &mut out).unwrap();
        write_utf8(b"v/\x7f", &mut out).unwrap();
        end_object(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"-3\":[null,true,-9223372036854775808,18446744073709551615,-0.0],\"k\\u2029\":\"v/\x7f\"}"
        );
    }

    #[test]
    fn json_write_f64_refuses_non_finite_floats() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut out = b"[".to_vec();
            assert_eq!(write_f64(value, &mut out), Err(NonFiniteFloat));
            assert_eq!(out, b"[", "nothing written for {value}");
        }
    }

    /// The offsets std reports, for the malformed sequences PHP's json_encode refuses too.
    #[test]
    fn json_malformed_utf8_is_reported_where_std_reports_it() {
        let cases: &[&[u8]] = &[
            b"\xff",
            b"ok\xfe",
            b"\xc3\x28",
            b"\xc0\xaf",             // overlong '/'
            b"\xe0\x80\xaf",         // overlong, 3 bytes
            b"\xed\xa0\x80",         // UTF-16 surrogate (CESU-8)
            b"\xf4\x90\x80\x80",     // above U+10FFFF
            b"\xf8\x88\x80\x80\x80", // 5-byte form
            b"a\xe2\x80",            // truncated U+2028
            b"\xe2\x80\xa8\xe2",     // truncated after a valid U+2028
            b"\"\n\xc3\xa9\x80",     // a stray continuation after escapes
            b"\xf0\x9f\x98",         // truncated emoji
        ];
        for &bytes in cases {
            let expected = std::str::from_utf8(bytes).unwrap_err().valid_up_to();
            let mut out = Vec::new();
            assert_eq!(
                write_utf8(bytes, &mut out),
                Err(MalformedUtf8 {
                    valid_up_to: expected
                }),
                "{bytes:?}"
            );
        }
    }
}
