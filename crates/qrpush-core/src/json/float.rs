//! PHP's spelling of a float in JSON: `zend_gcvt(value, serialize_precision, '.', 'e')`, with
//! `JSON_PRESERVE_ZERO_FRACTION`.
//!
//! With PHP's default `serialize_precision = -1` the digits are the shortest that round-trip
//! (zend_dtoa mode 0) and exponent notation starts past 17 integer digits; with a precision
//! `n >= 0` (the legacy `17`, say) they are the value correctly rounded to `max(1, n)`
//! significant digits (mode 2), trailing zeros dropped, and exponent notation starts past `n`
//! integer digits. Either way exponents are spelled `1.0e+25`.
//!
//! Where two shortest candidates are exactly equally near, zend_dtoa keeps the one with the even
//! last digit, whereas Rust's shortest formatter rounds up (which differed from PHP on ~0.1% of
//! random doubles); Rust's fixed-precision formatter already rounds exact ties to even, as dtoa
//! does. Nothing here allocates: digits live on the stack.

use std::fmt::{self, Write as _};

/// PHP's `serialize_precision`: how many significant digits json_encode writes a float with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// `-1`, PHP's default: the shortest digits that read back as the same float.
    #[default]
    Shortest,
    /// `n >= 0`: the float rounded to `n` significant digits (at least one).
    Significant(u32),
}

impl Precision {
    /// The precision zend_gcvt uses for `serialize_precision` (json_encode passes it as a C
    /// `int`, and any negative value means the shortest form).
    pub fn from_ini(serialize_precision: i64) -> Self {
        let n = serialize_precision as i32;
        u32::try_from(n).map_or(Precision::Shortest, Precision::Significant)
    }
}

/// Up to this many significant digits are ever produced: the exact decimal expansion of any f64
/// has at most 767, so a larger precision only adds zeros, which dtoa drops.
const MAX_DIGITS: usize = 800;

/// Formats one finite f64 exactly as PHP's json_encode does with the default
/// `serialize_precision = -1` (and JSON_PRESERVE_ZERO_FRACTION).
///
/// Non-finite values are written as `0`, which is what PHP emits for them (alongside an error
/// that callers are expected to have raised before getting here).
pub fn format_php_float(value: f64, out: &mut Vec<u8>) {
    format_php_float_with(value, Precision::Shortest, out);
}

/// Formats one finite f64 exactly as PHP's json_encode does with `serialize_precision` set to
/// `precision`; non-finite values as [`format_php_float`] does.
pub fn format_php_float_with(value: f64, precision: Precision, out: &mut Vec<u8>) {
    if !value.is_finite() {
        out.push(b'0');
        return;
    }
    // Checked on the sign bit rather than `< 0.0` so that -0.0 keeps its sign, as in PHP.
    if value.is_sign_negative() {
        out.push(b'-');
    }
    match precision {
        Precision::Shortest => {
            let (digits, decpt) = shortest_digits(value.abs());
            // zend_gcvt takes 17 as the exponent threshold of mode 0.
            write_gcvt(digits.as_slice(), decpt, 17, out);
        }
        Precision::Significant(n) => {
            let (digits, decpt) = rounded_digits(value.abs(), n);
            write_gcvt(digits.as_slice(), decpt, n as i32, out);
        }
    }
}

/// zend_gcvt's layout of `digits` (without trailing zeros) with the decimal point at `decpt`
/// (value = 0.d1d2... × 10^decpt): exponent notation when `decpt` is above `ndigit` or below -3.
fn write_gcvt(digits: &[u8], decpt: i32, ndigit: i32, out: &mut Vec<u8>) {
    if decpt > ndigit || decpt < -3 {
        // The exponential form: always a '.', an explicit exponent sign, no padding.
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

/// Up to `N` decimal digits, on the stack: a `u64` has at most 20, and the shortest round-trip
/// form of an f64 at most 17, so the float formatter never allocates.
#[derive(Clone, Copy)]
struct Digits<const N: usize = 20> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Digits<N> {
    fn default() -> Self {
        Digits {
            bytes: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Digits<N> {
    fn from_slice(digits: &[u8]) -> Self {
        let mut out = Self::default();
        for &digit in digits {
            out.push(digit);
        }
        out
    }

    /// Keeps `len` within `bytes`; the callers never have more than `N` digits to push.
    fn push(&mut self, digit: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = digit;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Drops trailing zeros, keeping at least one digit (dtoa writes zero as "0").
    fn trim_trailing_zeros(&mut self) {
        while self.len > 1 && self.bytes[self.len - 1] == b'0' {
            self.len -= 1;
        }
    }
}

impl<const N: usize> PartialEq for Digits<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// Receives Rust's `{:e}` output for a non-negative float (e.g. "1.5e25", "1e-5", "0e0") and
/// keeps its mantissa digits and its exponent, so that no `String` is needed.
struct ScientificParts<const N: usize = 20> {
    digits: Digits<N>,
    exponent: i32,
    exponent_is_negative: bool,
    in_exponent: bool,
}

impl<const N: usize> Default for ScientificParts<N> {
    fn default() -> Self {
        ScientificParts {
            digits: Digits::default(),
            exponent: 0,
            exponent_is_negative: false,
            in_exponent: false,
        }
    }
}

impl<const N: usize> ScientificParts<N> {
    /// The decimal-point position dtoa reports: one more than the scientific exponent.
    fn decpt(&self) -> i32 {
        let exponent = if self.exponent_is_negative {
            -self.exponent
        } else {
            self.exponent
        };
        exponent + 1
    }
}

impl<const N: usize> fmt::Write for ScientificParts<N> {
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
    let decpt = parts.decpt();
    match dtoa_tie_choice(value, &parts.digits, decpt) {
        Some(chosen) => chosen,
        None => (parts.digits, decpt),
    }
}

/// The digits zend_dtoa's mode 2 produces for `value` (finite, non-negative) with `ndigits`:
/// the value correctly rounded to `max(1, ndigits)` significant digits, exact ties to the even
/// digit, trailing zeros dropped but where dtoa keeps them; and its `decpt`.
fn rounded_digits(value: f64, ndigits: u32) -> (Digits<MAX_DIGITS>, i32) {
    let significant = (ndigits as usize).clamp(1, MAX_DIGITS);
    let mut parts = ScientificParts::<MAX_DIGITS>::default();
    // Rust's `{:.N e}` is exact (big-number fallback) and rounds exact ties to even, as dtoa's
    // mode 2 does; it cannot fail into ScientificParts.
    let _ = write!(parts, "{:.*e}", significant - 1, value);
    if parts.digits.len == 0 {
        parts.digits.push(b'0');
    }
    if !dtoa_keeps_trailing_zeros(value, significant) {
        parts.digits.trim_trailing_zeros();
    }
    let decpt = parts.decpt();
    (parts.digits, decpt)
}

/// Whether zend_dtoa's mode 2 writes the `significant` digits of `value` with their trailing
/// zeros: only on its "small integer" path (an integer below 10^15), which it takes when its
/// floating-point fast path cannot decide, i.e. on an exact tie, and which keeps the digits as
/// they are when the tie rounds down to an even digit (PHP writes 1005.0 with 3 digits as
/// `1.00e+3`, but 1015.0 as `1.02e+3`).
fn dtoa_keeps_trailing_zeros(value: f64, significant: usize) -> bool {
    if value.fract() != 0.0 || value >= 1e15 {
        return false;
    }
    // Exact: an integer below 10^15 < 2^53.
    let n = value as u64;
    let Some(dropped) = decimal_len(n).checked_sub(significant).filter(|&d| d > 0) else {
        return false;
    };
    let unit = 10u64.pow(dropped as u32);
    n % unit * 2 == unit && (n / unit) % 2 == 0
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

    /// Every expected string here was produced by PHP 8.4's json_encode($v,
    /// JSON_PRESERVE_ZERO_FRACTION) after `ini_set('serialize_precision', $precision)`.
    #[allow(clippy::excessive_precision)]
    const FLOATS_WITH_PRECISION: &[(f64, u32, &str)] = &[
        (0.1, 17, "0.10000000000000001"),
        (0.0, 17, "0.0"),
        (-0.0, 17, "-0.0"),
        (1.0, 17, "1.0"),
        (1.5, 17, "1.5"),
        (2.5, 17, "2.5"),
        (0.5, 17, "0.5"),
        (0.05, 17, "0.050000000000000003"),
        (100.0, 17, "100.0"),
        (123.456, 17, "123.456"),
        (1e15, 17, "1000000000000000.0"),
        (1e16, 17, "10000000000000000.0"),
        (1e17, 17, "1.0e+17"),
        (1e22, 17, "1.0e+22"),
        (1e23, 17, "9.9999999999999992e+22"),
        (0.001, 17, "0.001"),
        (1e-4, 17, "0.0001"),
        (1e-5, 17, "1.0000000000000001e-5"),
        (5e-324, 17, "4.9406564584124654e-324"),
        (f64::MAX, 17, "1.7976931348623157e+308"),
        (1.0 / 3.0, 17, "0.33333333333333331"),
        (0.125, 17, "0.125"),
        (12345.678, 17, "12345.678"),
        (9.995, 17, "9.9949999999999992"),
        (1767225600.125, 17, "1767225600.125"),
        (-2.5e-7, 17, "-2.4999999999999999e-7"),
        (0.1, 0, "0.1"),
        (0.0, 0, "0.0e+0"),
        (-0.0, 0, "-0.0e+0"),
        (1.0, 0, "1.0e+0"),
        (1.5, 0, "2.0e+0"),
        (2.5, 0, "2.0e+0"),
        (0.5, 0, "0.5"),
        (0.05, 0, "0.05"),
        (100.0, 0, "1.0e+2"),
        (123.456, 0, "1.0e+2"),
        (1e15, 0, "1.0e+15"),
        (1e16, 0, "1.0e+16"),
        (1e17, 0, "1.0e+17"),
        (1e22, 0, "1.0e+22"),
        (1e23, 0, "1.0e+23"),
        (0.001, 0, "0.001"),
        (1e-4, 0, "0.0001"),
        (1e-5, 0, "1.0e-5"),
        (5e-324, 0, "5.0e-324"),
        (f64::MAX, 0, "2.0e+308"),
        (1.0 / 3.0, 0, "0.3"),
        (0.125, 0, "0.1"),
        (12345.678, 0, "1.0e+4"),
        (9.995, 0, "1.0e+1"),
        (1767225600.125, 0, "2.0e+9"),
        (-2.5e-7, 0, "-2.0e-7"),
        (0.1, 1, "0.1"),
        (0.0, 1, "0.0"),
        (-0.0, 1, "-0.0"),
        (1.0, 1, "1.0"),
        (1.5, 1, "2.0"),
        (2.5, 1, "2.0"),
        (0.5, 1, "0.5"),
        (0.05, 1, "0.05"),
        (100.0, 1, "1.0e+2"),
        (123.456, 1, "1.0e+2"),
        (1e15, 1, "1.0e+15"),
        (1e16, 1, "1.0e+16"),
        (1e17, 1, "1.0e+17"),
        (1e22, 1, "1.0e+22"),
        (1e23, 1, "1.0e+23"),
        (0.001, 1, "0.001"),
        (1e-4, 1, "0.0001"),
        (1e-5, 1, "1.0e-5"),
        (5e-324, 1, "5.0e-324"),
        (f64::MAX, 1, "2.0e+308"),
        (1.0 / 3.0, 1, "0.3"),
        (0.125, 1, "0.1"),
        (12345.678, 1, "1.0e+4"),
        (9.995, 1, "1.0e+1"),
        (1767225600.125, 1, "2.0e+9"),
        (-2.5e-7, 1, "-2.0e-7"),
        (0.1, 2, "0.1"),
        (0.0, 2, "0.0"),
        (-0.0, 2, "-0.0"),
        (1.0, 2, "1.0"),
        (1.5, 2, "1.5"),
        (2.5, 2, "2.5"),
        (0.5, 2, "0.5"),
        (0.05, 2, "0.05"),
        (100.0, 2, "1.0e+2"),
        (123.456, 2, "1.2e+2"),
        (1e15, 2, "1.0e+15"),
        (1e16, 2, "1.0e+16"),
        (1e17, 2, "1.0e+17"),
        (1e22, 2, "1.0e+22"),
        (1e23, 2, "1.0e+23"),
        (0.001, 2, "0.001"),
        (1e-4, 2, "0.0001"),
        (1e-5, 2, "1.0e-5"),
        (5e-324, 2, "4.9e-324"),
        (f64::MAX, 2, "1.8e+308"),
        (1.0 / 3.0, 2, "0.33"),
        (0.125, 2, "0.12"),
        (12345.678, 2, "1.2e+4"),
        (9.995, 2, "10.0"),
        (1767225600.125, 2, "1.8e+9"),
        (-2.5e-7, 2, "-2.5e-7"),
        (0.1, 5, "0.1"),
        (0.0, 5, "0.0"),
        (-0.0, 5, "-0.0"),
        (1.0, 5, "1.0"),
        (1.5, 5, "1.5"),
        (2.5, 5, "2.5"),
        (0.5, 5, "0.5"),
        (0.05, 5, "0.05"),
        (100.0, 5, "100.0"),
        (123.456, 5, "123.46"),
        (1e15, 5, "1.0e+15"),
        (1e16, 5, "1.0e+16"),
        (1e17, 5, "1.0e+17"),
        (1e22, 5, "1.0e+22"),
        (1e23, 5, "1.0e+23"),
        (0.001, 5, "0.001"),
        (1e-4, 5, "0.0001"),
        (1e-5, 5, "1.0e-5"),
        (5e-324, 5, "4.9407e-324"),
        (f64::MAX, 5, "1.7977e+308"),
        (1.0 / 3.0, 5, "0.33333"),
        (0.125, 5, "0.125"),
        (12345.678, 5, "12346.0"),
        (9.995, 5, "9.995"),
        (1767225600.125, 5, "1.7672e+9"),
        (-2.5e-7, 5, "-2.5e-7"),
        (0.1, 15, "0.1"),
        (0.0, 15, "0.0"),
        (-0.0, 15, "-0.0"),
        (1.0, 15, "1.0"),
        (1.5, 15, "1.5"),
        (2.5, 15, "2.5"),
        (0.5, 15, "0.5"),
        (0.05, 15, "0.05"),
        (100.0, 15, "100.0"),
        (123.456, 15, "123.456"),
        (1e15, 15, "1.0e+15"),
        (1e16, 15, "1.0e+16"),
        (1e17, 15, "1.0e+17"),
        (1e22, 15, "1.0e+22"),
        (1e23, 15, "1.0e+23"),
        (0.001, 15, "0.001"),
        (1e-4, 15, "0.0001"),
        (1e-5, 15, "1.0e-5"),
        (5e-324, 15, "4.94065645841247e-324"),
        (f64::MAX, 15, "1.79769313486232e+308"),
        (1.0 / 3.0, 15, "0.333333333333333"),
        (0.125, 15, "0.125"),
        (12345.678, 15, "12345.678"),
        (9.995, 15, "9.995"),
        (1767225600.125, 15, "1767225600.125"),
        (-2.5e-7, 15, "-2.5e-7"),
        (0.1, 16, "0.1"),
        (0.0, 16, "0.0"),
        (-0.0, 16, "-0.0"),
        (1.0, 16, "1.0"),
        (1.5, 16, "1.5"),
        (2.5, 16, "2.5"),
        (0.5, 16, "0.5"),
        (0.05, 16, "0.05"),
        (100.0, 16, "100.0"),
        (123.456, 16, "123.456"),
        (1e15, 16, "1000000000000000.0"),
        (1e16, 16, "1.0e+16"),
        (1e17, 16, "1.0e+17"),
        (1e22, 16, "1.0e+22"),
        (1e23, 16, "9.999999999999999e+22"),
        (0.001, 16, "0.001"),
        (1e-4, 16, "0.0001"),
        (1e-5, 16, "1.0e-5"),
        (5e-324, 16, "4.940656458412465e-324"),
        (f64::MAX, 16, "1.797693134862316e+308"),
        (1.0 / 3.0, 16, "0.3333333333333333"),
        (0.125, 16, "0.125"),
        (12345.678, 16, "12345.678"),
        (9.995, 16, "9.994999999999999"),
        (1767225600.125, 16, "1767225600.125"),
        (-2.5e-7, 16, "-2.5e-7"),
        (0.1, 20, "0.10000000000000000555"),
        (0.0, 20, "0.0"),
        (-0.0, 20, "-0.0"),
        (1.0, 20, "1.0"),
        (1.5, 20, "1.5"),
        (2.5, 20, "2.5"),
        (0.5, 20, "0.5"),
        (0.05, 20, "0.050000000000000002776"),
        (100.0, 20, "100.0"),
        (123.456, 20, "123.45600000000000307"),
        (1e15, 20, "1000000000000000.0"),
        (1e16, 20, "10000000000000000.0"),
        (1e17, 20, "100000000000000000.0"),
        (1e22, 20, "1.0e+22"),
        (1e23, 20, "9.9999999999999991611e+22"),
        (0.001, 20, "0.0010000000000000000208"),
        (1e-4, 20, "0.00010000000000000000479"),
        (1e-5, 20, "1.0000000000000000818e-5"),
        (5e-324, 20, "4.9406564584124654418e-324"),
        (f64::MAX, 20, "1.7976931348623157081e+308"),
        (1.0 / 3.0, 20, "0.33333333333333331483"),
        (0.125, 20, "0.125"),
        (12345.678, 20, "12345.677999999999884"),
        (9.995, 20, "9.9949999999999992184"),
        (1767225600.125, 20, "1767225600.125"),
        (-2.5e-7, 20, "-2.4999999999999998869e-7"),
        (0.1, 40, "0.1000000000000000055511151231257827021182"),
        (0.0, 40, "0.0"),
        (-0.0, 40, "-0.0"),
        (1.0, 40, "1.0"),
        (1.5, 40, "1.5"),
        (2.5, 40, "2.5"),
        (0.5, 40, "0.5"),
        (0.05, 40, "0.05000000000000000277555756156289135105908"),
        (100.0, 40, "100.0"),
        (123.456, 40, "123.4560000000000030695446184836328029633"),
        (1e15, 40, "1000000000000000.0"),
        (1e16, 40, "10000000000000000.0"),
        (1e17, 40, "100000000000000000.0"),
        (1e22, 40, "10000000000000000000000.0"),
        (1e23, 40, "99999999999999991611392.0"),
        (0.001, 40, "0.001000000000000000020816681711721685132943"),
        (1e-4, 40, "0.0001000000000000000047921736023859295983129"),
        (1e-5, 40, "1.000000000000000081803053914031309545862e-5"),
        (5e-324, 40, "4.940656458412465441765687928682213723651e-324"),
        (
            f64::MAX,
            40,
            "1.797693134862315708145274237317043567981e+308",
        ),
        (1.0 / 3.0, 40, "0.3333333333333333148296162562473909929395"),
        (0.125, 40, "0.125"),
        (12345.678, 40, "12345.67799999999988358467817306518554688"),
        (9.995, 40, "9.994999999999999218402990663889795541763"),
        (1767225600.125, 40, "1767225600.125"),
        (-2.5e-7, 40, "-2.499999999999999886870279564715646714035e-7"),
    ];

    /// Exact ties of integers below 10^15, where dtoa keeps trailing zeros when rounding down
    /// (PHP's output, as above).
    const TIES_WITH_PRECISION: &[(f64, u32, &str)] = &[
        (-9418105.0, 6, "-9.41810e+6"),
        (9400005.0, 6, "9.40000e+6"),
        (1005.0, 3, "1.00e+3"),
        (1015.0, 3, "1.02e+3"),
        (1000.5, 4, "1000.0"),
        (100000000000005.0, 14, "1.0000000000000e+14"),
        (1000000000000005.0, 15, "1.0e+15"),
        (250.0, 1, "2.0e+2"),
        (350.0, 1, "4.0e+2"),
        (205.0, 2, "2.0e+2"),
        (2005.0, 3, "2.00e+3"),
        (20.5, 2, "20.0"),
        (1000000000000010.0, 15, "1.00000000000001e+15"),
        (999999999999995.0, 14, "1.0e+15"),
    ];

    #[test]
    fn json_floats_match_php_at_other_serialize_precisions() {
        for &(input, precision, expected) in FLOATS_WITH_PRECISION.iter().chain(TIES_WITH_PRECISION)
        {
            let mut out = Vec::new();
            format_php_float_with(input, Precision::Significant(precision), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "formatting {input:?} with serialize_precision {precision}"
            );
        }
    }

    #[test]
    fn json_precision_follows_the_ini_value_as_php_reads_it() {
        assert_eq!(Precision::from_ini(-1), Precision::Shortest);
        assert_eq!(Precision::from_ini(17), Precision::Significant(17));
        assert_eq!(Precision::from_ini(0), Precision::Significant(0));
        // json_encode passes the value as a C int.
        assert_eq!(
            Precision::from_ini((1 << 32) + 17),
            Precision::Significant(17)
        );
        assert_eq!(Precision::from_ini(1 << 31), Precision::Shortest);
        // A huge precision only adds zeros, which are dropped.
        let mut out = Vec::new();
        format_php_float_with(0.1, Precision::Significant(100_000), &mut out);
        assert_eq!(
            out,
            b"0.1000000000000000055511151231257827021181583404541015625"
        );
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
