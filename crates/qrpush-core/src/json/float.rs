//! PHP's spelling of a float in JSON: `php_gcvt(value, 17, '.', 'e')` over the shortest
//! round-trip digits (`serialize_precision = -1`), with `JSON_PRESERVE_ZERO_FRACTION`.
//!
//! It switches to exponent notation at other thresholds than Rust or serde_json do and spells
//! exponents as `1.0e+25`; where two shortest candidates are exactly equally near, zend_dtoa keeps
//! the one with the even last digit, whereas Rust's formatter rounds up (which differed from PHP
//! on ~0.1% of random doubles). Nothing here allocates: digits live on the stack.

use std::fmt::{self, Write as _};

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
    let digits = digits.as_slice();

    if !(-3..=17).contains(&decpt) {
        // php_gcvt's exponential form: always a '.', an explicit exponent sign, no padding.
        let (first, rest) = digits.split_first().unwrap_or((&b'0', &[]));
        out.push(*first);
        out.push(b'.');
        if rest.is_empty() {
            out.push(b'0');
        } else {
            out.extend_from_slice(rest);
        }
        out.push(b'e');
        let exp = decpt - 1;
        out.push(if exp < 0 { b'-' } else { b'+' });
        out.extend_from_slice(itoa::Buffer::new().format(exp.unsigned_abs()).as_bytes());
    } else if decpt < 0 {
        out.extend_from_slice(b"0.");
        push_zeros(decpt.unsigned_abs() as usize, out);
        out.extend_from_slice(digits);
    } else {
        let decpt = decpt as usize;
        let int_len = decpt.min(digits.len());
        if decpt == 0 {
            out.push(b'0');
        } else {
            out.extend_from_slice(&digits[..int_len]);
            push_zeros(decpt - int_len, out);
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

fn push_zeros(count: usize, out: &mut Vec<u8>) {
    out.resize(out.len() + count, b'0');
}

/// Up to 20 decimal digits, on the stack: a `u64` has at most 20, and the shortest round-trip
/// form of an f64 at most 17, so the float formatter never allocates.
#[derive(Clone, Copy, Default)]
struct Digits {
    bytes: [u8; 20],
    len: usize,
}

impl Digits {
    fn from_slice(digits: &[u8]) -> Self {
        let mut out = Self::default();
        for &digit in digits {
            out.push(digit);
        }
        out
    }

    /// Keeps `len` within `bytes`; the callers never have more than 20 digits to push.
    fn push(&mut self, digit: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = digit;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl PartialEq for Digits {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// Receives Rust's `{:e}` output for a non-negative float (e.g. "1.5e25", "1e-5", "0e0") and
/// keeps its mantissa digits and its exponent, so that no `String` is needed.
#[derive(Default)]
struct ScientificParts {
    digits: Digits,
    exponent: i32,
    exponent_is_negative: bool,
    in_exponent: bool,
}

impl fmt::Write for ScientificParts {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // std may hand the text over in several pieces, so this is a small streaming parser.
        for byte in text.bytes() {
            match byte {
                b'e' => self.in_exponent = true,
                b'-' if self.in_exponent => self.exponent_is_negative = true,
                b'0'..=b'9' if self.in_exponent => {
                    self.exponent = self
                        .exponent
                        .wrapping_mul(10)
                        .wrapping_add(i32::from(byte - b'0'));
                }
                b'0'..=b'9' => self.digits.push(byte),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The digits zend_dtoa's mode 0 produces for `value` (finite, non-negative), without trailing
/// zeros, and its decimal-point position `decpt` (value = 0.d1d2... × 10^decpt).
fn shortest_digits(value: f64) -> (Digits, i32) {
    // Rust's `{:e}` yields the shortest digits that round-trip, e.g. "1.5e25", "1e-5", "0e0";
    // among equally short candidates it takes the nearest, like dtoa, except on exact ties.
    let mut parts = ScientificParts::default();
    // ScientificParts never fails and f64's Display does not either; were it to, the empty
    // digits get the fallback below.
    let _ = write!(parts, "{value:e}");
    if parts.digits.len == 0 {
        // Unreachable with std's formatting; keeps the callers free of indexing panics.
        parts.digits.push(b'0');
    }
    let exponent = if parts.exponent_is_negative {
        -parts.exponent
    } else {
        parts.exponent
    };
    let decpt = exponent + 1;
    match dtoa_tie_choice(value, &parts.digits, decpt) {
        Some(chosen) => chosen,
        None => (parts.digits, decpt),
    }
}

/// When `value` lies exactly halfway between two equally short round-tripping candidates
/// (e.g. 1141701677661837.25 between ...837.2 and ...837.3), zend_dtoa keeps the one whose last
/// digit is even, whereas Rust rounds such ties up. Returns dtoa's pick when it differs from
/// Rust's (`digits`, `decpt`), and `None` otherwise.
fn dtoa_tie_choice(value: f64, digits: &Digits, decpt: i32) -> Option<(Digits, i32)> {
    // A tie needs `value` to be exactly some `n·10^k` whose last digit is the 5 being dropped.
    let (n, k) = exact_short_decimal(value)?;
    if n % 10 != 5 || n < 10 {
        return None;
    }
    // Rust wrote all of `n`'s digits (the exact value, e.g. 1767225600.125): no shorter
    // candidate was chosen, so there is no tie to settle (and nothing to format below).
    if digits.len >= decimal_len(n) {
        return None;
    }
    let low = n / 10;
    let high = low + 1;
    let rust_pick = (*digits, decpt);
    let low_digits = decimal_digits(low, k + 1);
    let high_digits = decimal_digits(high, k + 1);
    let rust_took_low = rust_pick == low_digits;
    let rust_took_high = rust_pick == high_digits;
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
    let reparsed = parse_decimal(dtoa_pick, k + 1)?;
    if reparsed.to_bits() != value.to_bits() {
        return None;
    }
    Some(if dtoa_took_low {
        low_digits
    } else {
        high_digits
    })
}

/// Parses `mantissa·10^exponent` as Rust reads float literals, with the text on the stack.
fn parse_decimal(mantissa: u64, exponent: i32) -> Option<f64> {
    // "18446744073709551615e-2147483648" is the longest possible text: 32 bytes.
    const CAPACITY: usize = 40;
    let mut buffer = [0u8; CAPACITY];
    let mut unused = &mut buffer[..];
    std::io::Write::write_fmt(&mut unused, format_args!("{mantissa}e{exponent}")).ok()?;
    let written = CAPACITY - unused.len();
    std::str::from_utf8(&buffer[..written]).ok()?.parse().ok()
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

/// How many decimal digits `n` has.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// The digits of `n·10^k` without trailing zeros, and its dtoa decimal-point position.
fn decimal_digits(n: u64, k: i32) -> (Digits, i32) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(n).as_bytes();
    let decpt = text.len() as i32 + k;
    let significant = text
        .iter()
        .rposition(|&b| b != b'0')
        .map_or(0, |last| last + 1);
    (Digits::from_slice(&text[..significant]), decpt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::encode;
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
