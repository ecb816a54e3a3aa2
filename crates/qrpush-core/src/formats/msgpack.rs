//! MessagePack, spelled the way `notepack.io` spells it: the encoder the Socket.IO Redis adapter
//! and emitter use. The adapter only needs valid MessagePack, but writing the same bytes as the
//! JavaScript emitter means a message from PHP can be compared byte for byte with one from
//! Node.js (tests/interop does), and nothing about it can surprise a decoder that only ever met
//! notepack's output.
//!
//! notepack's choices, which differ from "smallest encoding" writers in one place:
//! - every number that is a whole number (`Math.floor(v) === v`) is written as an integer, in the
//!   smallest unsigned form when it is `>= 0` (so `-0.0` is `0x00`) and the smallest signed form
//!   otherwise; only other numbers are float 64 (never float 32). JavaScript has one number type,
//!   so a PHP `2.0` and a PHP `2` reach a Socket.IO client as the same `2` either way;
//!   - outside the 64-bit range notepack's integer arithmetic wraps around and writes a wrong
//!     number; there this writer keeps the float (the only deviation, where notepack is broken);
//! - strings (UTF-8) as fixstr below 32 bytes, then str 8, str 16, str 32;
//! - arrays as fixarray below 16 items, then array 16, array 32; maps alike.

use serde_json::{Map, Number, Value};

/// Appends the MessagePack encoding of `value`.
pub fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => write_nil(out),
        Value::Bool(b) => write_bool(*b, out),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            write_array_len(items.len(), out);
            for item in items {
                write_value(item, out);
            }
        }
        Value::Object(map) => write_map(map, out),
    }
}

fn write_map(map: &Map<String, Value>, out: &mut Vec<u8>) {
    write_map_len(map.len(), out);
    for (key, value) in map {
        write_str(key, out);
        write_value(value, out);
    }
}

pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

pub fn write_bool(value: bool, out: &mut Vec<u8>) {
    out.push(if value { 0xc3 } else { 0xc2 });
}

fn write_number(number: &Number, out: &mut Vec<u8>) {
    if let Some(n) = number.as_i64() {
        write_int(n, out);
    } else if let Some(n) = number.as_u64() {
        write_uint(n, out);
    } else if let Some(f) = number.as_f64() {
        write_f64(f, out);
    }
}

/// 2^63 and 2^64 as floats (exact).
const TWO_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_64: f64 = 18_446_744_073_709_551_616.0;

/// A number as notepack writes a JavaScript number: whole numbers as integers.
pub fn write_f64(value: f64, out: &mut Vec<u8>) {
    let whole = value.is_finite() && value.fract() == 0.0;
    if whole && (0.0..TWO_64).contains(&value) {
        // Also -0.0, which `>= 0` in JavaScript as here.
        write_uint(value as u64, out);
    } else if whole && (-TWO_63..0.0).contains(&value) {
        write_int(value as i64, out);
    } else {
        out.push(0xcb);
        out.extend_from_slice(&value.to_bits().to_be_bytes());
    }
}

pub fn write_int(value: i64, out: &mut Vec<u8>) {
    if value >= 0 {
        return write_uint(value as u64, out);
    }
    if value >= -0x20 {
        out.push(value as u8); // negative fixint: the byte is the two's complement
    } else if value >= -0x80 {
        out.extend_from_slice(&[0xd0, value as u8]);
    } else if value >= -0x8000 {
        out.push(0xd1);
        out.extend_from_slice(&(value as i16).to_be_bytes());
    } else if value >= -0x8000_0000 {
        out.push(0xd2);
        out.extend_from_slice(&(value as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn write_uint(value: u64, out: &mut Vec<u8>) {
    if value < 0x80 {
        out.push(value as u8);
    } else if value < 0x100 {
        out.extend_from_slice(&[0xcc, value as u8]);
    } else if value < 0x1_0000 {
        out.push(0xcd);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value < 0x1_0000_0000 {
        out.push(0xce);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn write_str(value: &str, out: &mut Vec<u8>) {
    let len = value.len();
    write_len(len, (0xa0, 0x20), Some(0xd9), (0xda, 0xdb), out);
    out.extend_from_slice(value.as_bytes());
}

pub fn write_array_len(len: usize, out: &mut Vec<u8>) {
    write_len(len, (0x90, 0x10), None, (0xdc, 0xdd), out);
}

pub fn write_map_len(len: usize, out: &mut Vec<u8>) {
    write_len(len, (0x80, 0x10), None, (0xde, 0xdf), out);
}

/// A length header: the fix form (`fix.0 | len`) below `fix.1`, then the 8-bit form if the type
/// has one, then the 16- and 32-bit forms (`wide`). Lengths past 32 bits cannot occur: the message
/// would be far beyond `max_payload` (and Redis's 512 MB string limit) long before.
fn write_len(len: usize, fix: (u8, usize), w8: Option<u8>, wide: (u8, u8), out: &mut Vec<u8>) {
    if len < fix.1 {
        out.push(fix.0 | len as u8);
    } else if let (Some(marker), true) = (w8, len < 0x100) {
        out.extend_from_slice(&[marker, len as u8]);
    } else if len < 0x1_0000 {
        out.push(wide.0);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(wide.1);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(value: Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&value, &mut out);
        out
    }

    #[test]
    fn integers_take_notepacks_smallest_form() {
        // (value, bytes), the boundaries of each form, as notepack.io 3 writes them.
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0xcc, 0x80]),
            (255, &[0xcc, 0xff]),
            (256, &[0xcd, 0x01, 0x00]),
            (65_535, &[0xcd, 0xff, 0xff]),
            (65_536, &[0xce, 0x00, 0x01, 0x00, 0x00]),
            (4_294_967_295, &[0xce, 0xff, 0xff, 0xff, 0xff]),
            (4_294_967_296, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
            (-1, &[0xff]),
            (-32, &[0xe0]),
            (-33, &[0xd0, 0xdf]),
            (-128, &[0xd0, 0x80]),
            (-129, &[0xd1, 0xff, 0x7f]),
            (-32_768, &[0xd1, 0x80, 0x00]),
            (-32_769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
            (-2_147_483_648, &[0xd2, 0x80, 0, 0, 0]),
            (
                -2_147_483_649,
                &[0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
            ),
            (i64::MIN, &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for (value, bytes) in cases {
            assert_eq!(encoded(json!(value)), *bytes, "{value}");
        }
    }

    #[test]
    fn whole_floats_are_integers_like_javascript_numbers_and_others_float64() {
        assert_eq!(encoded(json!(2.0)), [0x02]);
        assert_eq!(encoded(json!(-0.0)), [0x00]);
        assert_eq!(encoded(json!(-200.0)), [0xd1, 0xff, 0x38]);
        assert_eq!(
            encoded(json!(1e10)),
            [0xcf, 0, 0, 0, 2, 0x54, 0x0b, 0xe4, 0]
        );
        let mut half = vec![0xcb];
        half.extend_from_slice(&0.5f64.to_bits().to_be_bytes());
        assert_eq!(encoded(json!(0.5)), half);
        // Past 2^64 notepack writes garbage; the float stays a float here.
        let mut big = vec![0xcb];
        big.extend_from_slice(&1e25f64.to_bits().to_be_bytes());
        assert_eq!(encoded(json!(1e25)), big);
    }

    #[test]
    fn strings_arrays_and_maps_switch_forms_at_notepacks_lengths() {
        let s31 = "a".repeat(31);
        assert_eq!(encoded(json!(s31))[0], 0xbf);
        assert_eq!(encoded(json!("a".repeat(32)))[..2], [0xd9, 32]);
        assert_eq!(encoded(json!("a".repeat(256)))[..3], [0xda, 0x01, 0x00]);
        assert_eq!(encoded(json!("a".repeat(65_536)))[..5], [0xdb, 0, 1, 0, 0]);
        assert_eq!(encoded(json!("é")), [0xa2, 0xc3, 0xa9]);
        assert_eq!(encoded(json!(vec![0; 15]))[0], 0x9f);
        assert_eq!(encoded(json!(vec![0; 16]))[..3], [0xdc, 0, 16]);
        assert_eq!(encoded(json!(vec![0; 65_536]))[..5], [0xdd, 0, 1, 0, 0]);
        let map: Map<String, Value> = (0..16).map(|i| (i.to_string(), json!(i))).collect();
        assert_eq!(encoded(Value::Object(map))[..3], [0xde, 0, 16]);
        assert_eq!(
            encoded(json!({"a": null, "b": [true, false]})),
            [0x82, 0xa1, b'a', 0xc0, 0xa1, b'b', 0x92, 0xc3, 0xc2]
        );
    }
}
