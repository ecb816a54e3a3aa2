// Unix only: the test support uses signals, fork and Unix permissions.
#![cfg(unix)]

//! Property tests of the PHP-compatible JSON encoder (`qrpush_core::json`).
//!
//! - The output is always valid JSON (serde_json::from_slice accepts it) and reads back to the
//!   value it was made from — floats bit for bit (serde_json's exact float parsing is enabled for
//!   the tests), integers, strings with any Unicode, nested arrays and objects in order.
//! - It is serde_json's own compact output except where PHP differs: floats and U+2028/U+2029.
//! - Every finite float is written in one of PHP's two shapes and parses back to the same bits.
//! - Deep nesting (600 levels, beyond PHP's 512) encodes without a stack problem.
//! - Raw bytes (what PHP strings are): `write_utf8` accepts exactly what `std::str::from_utf8`
//!   accepts, reports the same offset otherwise, and escapes like `encode` does for a `String`.
//!
//! Failures are persisted in proptest-regressions/proptest_json.txt and replayed first.

use proptest::prelude::*;
use qrpush_core::json::{encode, format_php_float, write_utf8, MalformedUtf8};
use serde_json::{Map, Number, Value};

#[path = "common/proptest_config.rs"]
mod proptest_config;

fn config(cases: u32) -> ProptestConfig {
    proptest_config::config("proptest-regressions/proptest_json.txt", cases)
}

/// Finite floats of every kind: random bit patterns (mostly huge or tiny), "human" decimals,
/// integers as floats, and the edges.
fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |f| f.is_finite()),
        (-1_000_000_000i64..1_000_000_000, 0u32..12)
            .prop_map(|(m, e)| m as f64 / 10f64.powi(e as i32)),
        (-(1i64 << 53)..(1i64 << 53)).prop_map(|i| i as f64),
        (any::<f64>()).prop_filter("finite", |f| f.is_finite()),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e15,
            1e16,
            1e17,
            1e-4,
            1e-5,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            f64::EPSILON,
            9007199254740993.0,
            1e21,
            1e22,
            1e23,
        ]),
    ]
}

/// Strings that stress escaping: any Unicode, controls, quotes, backslashes, slashes, the line
/// separators PHP escapes, and the BOM.
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop::sample::select(vec![
                "\u{0}",
                "\u{1f}",
                "\u{7f}",
                "\"",
                "\\",
                "/",
                "\n",
                "\r",
                "\t",
                "\u{8}",
                "\u{c}",
                "\u{2028}",
                "\u{2029}",
                "\u{feff}",
                "\u{85}",
                "é",
                "😀",
                "日本",
                "a",
                " ",
                "</script>",
                "\u{fffd}",
                "\u{10ffff}",
                "\\u0000",
            ]),
            0..12,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        (i64::MAX as u64..=u64::MAX).prop_map(|u| Value::Number(u.into())),
        finite_f64().prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        json_string().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(8, 256, 10, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..10).prop_map(Value::Array),
            proptest::collection::vec((json_string(), inner), 0..10).prop_map(|pairs| {
                let mut map = Map::new();
                for (k, v) in pairs {
                    map.insert(k, v);
                }
                Value::Object(map)
            }),
        ]
    })
}

/// Equality that also tells 0.0 from -0.0 and compares floats by bits.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.is_f64(), y.is_f64()) {
            (true, true) => x.as_f64().unwrap().to_bits() == y.as_f64().unwrap().to_bits(),
            (false, false) => x == y,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

fn contains_float_or_separator(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::String(s) => s.contains(['\u{2028}', '\u{2029}']),
        Value::Array(items) => items.iter().any(contains_float_or_separator),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(['\u{2028}', '\u{2029}']) || contains_float_or_separator(v)),
        _ => false,
    }
}

fn float_text(f: f64) -> String {
    let mut out = Vec::new();
    format_php_float(f, &mut out);
    String::from_utf8(out).expect("ASCII")
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn encoded_json_is_valid_and_round_trips(v in value()) {
        let bytes = encode(&v);
        let text = std::str::from_utf8(&bytes).map_err(|e| TestCaseError::fail(format!("not UTF-8: {e}")))?;
        // PHP escapes these even with JSON_UNESCAPED_UNICODE; raw controls are never valid JSON.
        prop_assert!(!text.contains(['\u{2028}', '\u{2029}']), "raw line separator in {text:?}");
        prop_assert!(!text.bytes().any(|b| b < 0x20), "raw control character in {text:?}");
        let back: Value = serde_json::from_slice(&bytes)
            .map_err(|e| TestCaseError::fail(format!("invalid JSON ({e}): {text}")))?;
        prop_assert!(same(&v, &back), "{v:?} came back as {back:?} from {text}");
        if !contains_float_or_separator(&v) {
            // Where PHP and serde_json agree, the bytes are serde_json's exactly.
            prop_assert_eq!(text, serde_json::to_string(&v).unwrap());
        }
    }

    #[test]
    fn every_finite_float_round_trips_in_php_shape(f in finite_f64()) {
        let text = float_text(f);
        let parsed: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(parsed.to_bits(), f.to_bits(), "{:?} written as {}", f, text);
        // PHP's shapes: -?D+.D+ for exponents -4..15 (decpt -3..=17), else -?D.D+e[+-]D+.
        let unsigned = text.strip_prefix('-').unwrap_or(&text);
        let ok = match unsigned.split_once('e') {
            Some((mantissa, exp)) => {
                let (int, frac) = mantissa.split_once('.').unwrap_or(("", ""));
                int.len() == 1 && int != "0" && !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())
                    && (exp.starts_with('+') || exp.starts_with('-')) && exp[1..].bytes().all(|b| b.is_ascii_digit())
                    && !exp[1..].starts_with('0')
            }
            None => {
                let (int, frac) = unsigned.split_once('.').unwrap_or(("", ""));
                !int.is_empty() && !frac.is_empty() && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
                    && (int == "0" || !int.starts_with('0'))
            }
        };
        prop_assert!(ok, "{:?} written as {:?}, not in PHP's shape", f, text);
        prop_assert_eq!(text.starts_with('-'), f.is_sign_negative());
        // Inside a value, the same bytes.
        prop_assert_eq!(encode(&Value::Number(Number::from_f64(f).unwrap())), text.into_bytes());
    }

    #[test]
    fn strings_escape_like_php(s in json_string()) {
        let bytes = encode(&Value::String(s.clone()));
        let expected = serde_json::to_string(&s).unwrap().replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029");
        prop_assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }
}

/// Byte strings as PHP hands them over: valid UTF-8 pieces mixed with every kind of malformed
/// sequence (stray continuations, truncations, overlongs, surrogates, above U+10FFFF, bytes that
/// never occur), including partial U+2028/U+2029.
fn php_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        json_string().prop_map(String::into_bytes),
        proptest::collection::vec(
            prop_oneof![
                json_string().prop_map(String::into_bytes),
                prop::sample::select(vec![
                    &b"\x80"[..],
                    b"\xbf",
                    b"\xc0\xaf",
                    b"\xc1\xbf",
                    b"\xc2",
                    b"\xe0\x80\xaf",
                    b"\xe0\xa0",
                    b"\xe2\x80",
                    b"\xe2\x80\xa8",
                    b"\xe2\x80\xa9",
                    b"\xe2\x80\xaa",
                    b"\xed\x9f\xbf",
                    b"\xed\xa0\x80",
                    b"\xef\xbf\xbf",
                    b"\xf0\x8f\xbf\xbf",
                    b"\xf0\x9f\x98",
                    b"\xf4\x8f\xbf\xbf",
                    b"\xf4\x90\x80\x80",
                    b"\xf5\x80\x80\x80",
                    b"\xfe",
                    b"\xff",
                ])
                .prop_map(<[u8]>::to_vec),
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

proptest! {
    #![proptest_config(config(2048))]

    /// The binding hands PHP strings to write_utf8 unchecked: it must accept exactly what
    /// std::str::from_utf8 accepts, report the same offset, and encode accepted strings exactly
    /// like encode() encodes the same &str.
    #[test]
    fn php_bytes_are_checked_like_std_and_escaped_like_strings(bytes in php_bytes()) {
        let mut out = b"[".to_vec();
        let written = write_utf8(&bytes, &mut out);
        match std::str::from_utf8(&bytes) {
            Ok(text) => {
                prop_assert_eq!(written, Ok(()));
                let mut expected = b"[".to_vec();
                expected.extend(encode(&Value::String(text.to_owned())));
                prop_assert_eq!(out, expected);
            }
            Err(e) => {
                prop_assert_eq!(written, Err(MalformedUtf8 { valid_up_to: e.valid_up_to() }));
            }
        }
    }
}

#[test]
fn deep_nesting_encodes() {
    // 600 is beyond PHP's json_encode depth (512), which the binding enforces before encoding.
    for depth in [512usize, 600] {
        let mut v = Value::Array(vec![Value::from(1)]);
        for i in 0..depth {
            let mut map = Map::new();
            map.insert(format!("k{i}"), v);
            v = if i % 2 == 0 {
                Value::Array(vec![Value::Object(map)])
            } else {
                Value::Object(map)
            };
        }
        let bytes = encode(&v);
        let opens = bytes.iter().filter(|b| **b == b'[' || **b == b'{').count();
        let closes = bytes.iter().filter(|b| **b == b']' || **b == b'}').count();
        assert_eq!(opens, closes, "depth {depth}");
        assert!(opens > depth, "depth {depth}");
        // serde_json's own parser stops at 128 levels: check the shape by hand instead.
        assert!(
            bytes.starts_with(if depth % 2 == 0 { b"{\"k" } else { b"[{\"" }),
            "depth {depth}"
        );
    }
}
