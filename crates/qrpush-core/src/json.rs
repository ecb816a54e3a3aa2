//! PHP-compatible JSON encoding.
//!
//! Payloads can be published either by this extension or by plain PHP code calling
//! `json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION)`.
//! Subscribers must see the same bytes whichever publisher was used (they may hash, dedupe or
//! compare messages), so this module reproduces PHP 8.4's output byte for byte, with PHP's default
//! `serialize_precision = -1`.
//!
//! serde_json's compact output already matches PHP for everything except two details:
//! - floats: PHP prints them with `php_gcvt(value, 17, '.', 'e')` over the shortest round-trip
//!   digits, which switches to exponent notation at other thresholds than serde_json does and
//!   spells exponents as `1.0e+25`; [`format_php_float`] reproduces that, including dtoa's
//!   round-half-even choice where two shortest candidates are exactly equally near (Rust's
//!   formatter rounds those up, which differed from PHP on ~0.1% of random doubles);
//! - strings: PHP escapes U+2028 and U+2029 even under `JSON_UNESCAPED_UNICODE`, because
//!   `JSON_UNESCAPED_LINE_TERMINATORS` is not set.
//!
//! A custom `serde_json::ser::Formatter` would be the natural hook for both, but driving one
//! needs the `serde::Serialize` trait, and serde_json does not re-export it (this crate depends
//! on serde_json only). So the value tree is walked here, and everything else is still delegated
//! to serde_json: string escaping (`\b \f \n \r \t`, `\u00xx` in lowercase hex, raw `/`, raw
//! DEL, raw non-ASCII, exactly as PHP) and integer formatting.
//!
//! Integers outside the `i64` range (serde_json's `u64` above `i64::MAX`) are written as integers;
//! PHP would hold them as floats, but values built from PHP data never contain them.

use std::io::Write;

use serde_json::Value;

/// Appends the PHP-compatible JSON encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => match number.as_f64() {
            // `as_i64`/`as_u64` are `None` for floats, so `is_f64` is what tells them apart.
            Some(float) if number.is_f64() => format_php_float(float, out),
            // Integer Display is serde_json's own itoa output, identical to PHP's.
            _ => write!(out, "{number}").expect(VEC_WRITE),
        },
        Value::String(string) => encode_str(string, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_into(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_str(key, out);
                out.push(b':');
                encode_into(item, out);
            }
            out.push(b'}');
        }
    }
}

/// Convenience: encode to a new Vec.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Why the `expect`s in this module cannot fire: `io::Write` for `Vec<u8>` never fails, and a
/// `&str` always serializes.
const VEC_WRITE: &str = "writing JSON into a Vec<u8> cannot fail";

/// Writes `string` as a quoted JSON string, escaped by serde_json, plus PHP's escaping of the
/// JavaScript line terminators U+2028 and U+2029.
fn encode_str(string: &str, out: &mut Vec<u8>) {
    if !string.contains(['\u{2028}', '\u{2029}']) {
        serde_json::to_writer(&mut *out, string).expect(VEC_WRITE);
        return;
    }
    let mut escaped = Vec::with_capacity(string.len() + 8);
    serde_json::to_writer(&mut escaped, string).expect(VEC_WRITE);
    // Matching the raw UTF-8 bytes is safe: serde_json's own escapes are ASCII, and 0xE2 can only
    // be a lead byte, so E2 80 A8 / E2 80 A9 are exactly the two characters.
    let mut rest = escaped.as_slice();
    while !rest.is_empty() {
        match rest {
            [0xE2, 0x80, 0xA8, tail @ ..] => {
                out.extend_from_slice(b"\\u2028");
                rest = tail;
            }
            [0xE2, 0x80, 0xA9, tail @ ..] => {
                out.extend_from_slice(b"\\u2029");
                rest = tail;
            }
            [byte, tail @ ..] => {
                out.push(*byte);
                rest = tail;
            }
            [] => break,
        }
    }
}

/// Formats one finite f64 exactly as PHP's json_encode does (with JSON_PRESERVE_ZERO_FRACTION).
///
/// Non-finite values are written as `0`, which is what PHP emits for them (alongside an error
/// that callers are expected to have raised before getting here).
pub fn format_php_float(value: f64, out: &mut Vec<u8>) {
    if !value.is_finite() {
        out.push(b'0');
        return;
    }
    // Checked on the sign bit rather than `< 0.0` so that -0.0 keeps its sign, as in PHP.
    if value.is_sign_negative() {
        out.push(b'-');
    }

    let (digits, decpt) = shortest_digits(value.abs());

    if !(-3..=17).contains(&decpt) {
        // php_gcvt's exponential form: always a '.', an explicit exponent sign, no padding.
        let (first, rest) = digits.split_at(1);
        out.extend_from_slice(first);
        out.push(b'.');
        if rest.is_empty() {
            out.push(b'0');
        } else {
            out.extend_from_slice(rest);
        }
        out.push(b'e');
        let exp = decpt - 1;
        out.push(if exp < 0 { b'-' } else { b'+' });
        out.extend_from_slice(exp.unsigned_abs().to_string().as_bytes());
    } else if decpt < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', decpt.unsigned_abs() as usize));
        out.extend_from_slice(&digits);
    } else {
        let decpt = decpt as usize;
        let int_len = decpt.min(digits.len());
        if decpt == 0 {
            out.push(b'0');
        } else {
            out.extend_from_slice(&digits[..int_len]);
            out.extend(std::iter::repeat_n(b'0', decpt - int_len));
        }
        out.push(b'.');
        if int_len < digits.len() {
            out.extend_from_slice(&digits[int_len..]);
        } else {
            // JSON_PRESERVE_ZERO_FRACTION: keeps integral floats distinguishable from ints.
            out.push(b'0');
        }
    }
}

/// The digits zend_dtoa's mode 0 produces for `value` (finite, non-negative), without trailing
/// zeros, and its decimal-point position `decpt` (value = 0.d1d2... × 10^decpt).
fn shortest_digits(value: f64) -> (Vec<u8>, i32) {
    // Rust's `{:e}` yields the shortest digits that round-trip, e.g. "1.5e25", "1e-5", "0e0";
    // among equally short candidates it takes the nearest, like dtoa, except on exact ties.
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if digits.is_empty() {
        // Unreachable with std's formatting; keeps the callers free of indexing panics.
        digits.push(b'0');
    }
    let decpt = parse_exponent(exponent) + 1;
    match dtoa_tie_choice(value, &digits, decpt) {
        Some(chosen) => chosen,
        None => (digits, decpt),
    }
}

/// When `value` lies exactly halfway between two equally short round-tripping candidates
/// (e.g. 1141701677661837.25 between ...837.2 and ...837.3), zend_dtoa keeps the one whose last
/// digit is even, whereas Rust rounds such ties up. Returns dtoa's pick when it differs from
/// Rust's (`digits`, `decpt`), and `None` otherwise.
fn dtoa_tie_choice(value: f64, digits: &[u8], decpt: i32) -> Option<(Vec<u8>, i32)> {
    // A tie needs `value` to be exactly some `n·10^k` whose last digit is the 5 being dropped.
    let (n, k) = exact_short_decimal(value)?;
    if n % 10 != 5 || n < 10 {
        return None;
    }
    let low = n / 10;
    let high = low + 1;
    let rust_pick = (digits, decpt);
    let low_digits = decimal_digits(low, k + 1);
    let high_digits = decimal_digits(high, k + 1);
    let rust_took_low = rust_pick == (low_digits.0.as_slice(), low_digits.1);
    let rust_took_high = rust_pick == (high_digits.0.as_slice(), high_digits.1);
    // Otherwise Rust stopped at another length, where this tie plays no part.
    if !rust_took_low && !rust_took_high {
        return None;
    }
    // dtoa rounds the tie up when the digit it would keep is odd (a 9 carries into `high`).
    let (dtoa_pick, dtoa_took_low) = if low % 2 == 0 {
        (low, true)
    } else {
        (high, false)
    };
    if dtoa_took_low == rust_took_low {
        return None;
    }
    // It is only a tie if dtoa's candidate round-trips as well.
    let reparsed: f64 = format!("{dtoa_pick}e{}", k + 1).parse().ok()?;
    if reparsed.to_bits() != value.to_bits() {
        return None;
    }
    Some(if dtoa_took_low {
        low_digits
    } else {
        high_digits
    })
}

/// Expresses `value` exactly as `n·10^k` with `n` not divisible by 10, when `n` has at most 18 digits: the
/// only values that can be ties between two candidates of at most 17 digits. Pure integer
/// arithmetic, so the common case costs no formatting.
fn exact_short_decimal(value: f64) -> Option<(u64, i32)> {
    const LIMIT: u64 = 1_000_000_000_000_000_000;
    let bits = value.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    // value = mantissa · 2^exponent
    let (mut mantissa, mut exponent) = if biased_exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased_exponent - 1075)
    };
    if mantissa == 0 {
        return None;
    }
    let zeros = mantissa.trailing_zeros();
    mantissa >>= zeros;
    exponent += zeros as i32;
    // With an odd mantissa, the power of ten must be exactly 10^exponent and `n` is odd.
    let n = if exponent >= 0 {
        let divisor = 5u64.checked_pow(exponent.unsigned_abs())?;
        if mantissa % divisor != 0 {
            return None;
        }
        mantissa / divisor
    } else {
        5u64.checked_pow(exponent.unsigned_abs())?
            .checked_mul(mantissa)?
    };
    (n < LIMIT).then_some((n, exponent))
}

/// The digits of `n·10^k` without trailing zeros, and its dtoa decimal-point position.
fn decimal_digits(n: u64, k: i32) -> (Vec<u8>, i32) {
    let text = n.to_string();
    let decpt = text.len() as i32 + k;
    (text.trim_end_matches('0').as_bytes().to_vec(), decpt)
}

/// Parses the exponent of Rust's `{:e}` output by hand: its shape is fixed by std, and doing it
/// this way leaves no error path (and no panic) in the float formatter.
fn parse_exponent(text: &str) -> i32 {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let n = magnitude
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0i32, |acc, b| acc * 10 + i32::from(b - b'0'));
    if negative {
        -n
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn float_str(value: f64) -> String {
        let mut out = Vec::new();
        format_php_float(value, &mut out);
        String::from_utf8(out).expect("the float formatter writes ASCII")
    }

    fn encode_str(value: &serde_json::Value) -> String {
        String::from_utf8(encode(value)).expect("the encoder writes UTF-8")
    }

    /// Every expected string here was produced by PHP 8.4's
    /// `json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION)`.
    // Literals are written exactly (e.g. ...837.25), since exact ties are what some cases test.
    #[allow(clippy::excessive_precision)]
    const FLOATS: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (-1.0, "-1.0"),
        (0.1, "0.1"),
        (0.2 + 0.1, "0.30000000000000004"),
        (1.0 / 3.0, "0.3333333333333333"),
        (2.0 / 3.0, "0.6666666666666666"),
        (-1.0 / 3.0, "-0.3333333333333333"),
        (0.5, "0.5"),
        (1.5, "1.5"),
        (-1.5, "-1.5"),
        (100.0, "100.0"),
        (123.456, "123.456"),
        (-123.456, "-123.456"),
        (1234567.0, "1234567.0"),
        (4.35, "4.35"),
        (std::f64::consts::PI, "3.141592653589793"),
        (std::f64::consts::E, "2.718281828459045"),
        (1e15, "1000000000000000.0"),
        (1e16, "10000000000000000.0"),
        (1.23e16, "12300000000000000.0"),
        (12345678901234567.0, "12345678901234568.0"),
        (9007199254740992.0, "9007199254740992.0"),
        (9007199254740993.0, "9007199254740992.0"),
        (1e17, "1.0e+17"),
        (-1e17, "-1.0e+17"),
        (1.1e17, "1.1e+17"),
        (99999999999999999.0, "1.0e+17"),
        (123456789012345680.0, "1.2345678901234568e+17"),
        (1e18, "1.0e+18"),
        (9223372036854775808.0, "9.223372036854776e+18"),
        (18446744073709551616.0, "1.8446744073709552e+19"),
        (1e21, "1.0e+21"),
        (1e22, "1.0e+22"),
        (1e23, "1.0e+23"),
        (1e25, "1.0e+25"),
        (1.5e25, "1.5e+25"),
        (1e100, "1.0e+100"),
        (1e301, "1.0e+301"),
        (f64::MAX, "1.7976931348623157e+308"),
        (-f64::MAX, "-1.7976931348623157e+308"),
        (0.001, "0.001"),
        (0.00125, "0.00125"),
        (1e-4, "0.0001"),
        (0.00012, "0.00012"),
        (1e-5, "1.0e-5"),
        (-1e-5, "-1.0e-5"),
        (5e-5, "5.0e-5"),
        (1.2345e-7, "1.2345e-7"),
        (f64::EPSILON, "2.220446049250313e-16"),
        (1e-100, "1.0e-100"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (5e-324, "5.0e-324"),
        // Exact ties between two shortest candidates: dtoa keeps the even last digit (Rust alone
        // would round each of the first six up).
        (1141701677661837.25, "1141701677661837.2"),
        (695759166684116.25, "695759166684116.2"),
        (1217522370038.65625, "1217522370038.6562"),
        (19206393172120.5625, "19206393172120.562"),
        (0.366062164306640625, "0.3660621643066406"),
        (-1596567428697002.25, "-1596567428697002.2"),
        // ... and rounds up when the kept digit would be odd.
        (913570623242074.875, "913570623242074.9"),
        (-557569980765577.375, "-557569980765577.4"),
        (0.077022552490234375, "0.07702255249023438"),
        (10239428178487.4375, "10239428178487.438"),
    ];

    #[test]
    fn json_floats_match_php() {
        for &(input, expected) in FLOATS {
            assert_eq!(float_str(input), expected, "formatting {input:?}");
            // The same bytes must come out when the float sits inside a Value.
            assert_eq!(encode_str(&json!(input)), expected, "encoding {input:?}");
        }
    }

    #[test]
    fn json_non_finite_floats_write_zero() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(float_str(value), "0");
        }
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

    /// xorshift64: enough randomness for coverage without pulling in a crate.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn json_floats_round_trip() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut checked = 0;
        while checked < 100_000 {
            let r = xorshift(&mut state);
            // Random bit patterns are nearly all huge or tiny, so half the samples are drawn
            // from the range where PHP uses plain decimal notation instead.
            let value = if checked % 2 == 0 {
                f64::from_bits(r)
            } else {
                let scale = 10f64.powi((xorshift(&mut state) % 26) as i32 - 7);
                let sign = if r & 1 == 0 { 1.0 } else { -1.0 };
                sign * (r >> 11) as f64 / (1u64 << 53) as f64 * scale
            };
            if !value.is_finite() {
                continue;
            }
            let text = float_str(value);
            let parsed: f64 = text
                .parse()
                .unwrap_or_else(|e| panic!("{text:?} (from {value:?}) does not parse: {e}"));
            assert_eq!(
                parsed.to_bits(),
                value.to_bits(),
                "{value:?} was written as {text:?}"
            );
            assert!(text.contains('.'), "{text:?} lacks a fraction");
            checked += 1;
        }
    }
}
