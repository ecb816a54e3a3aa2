//! A position in a channel's stream: a Redis Stream entry id, `<ms>-<seq>`, where `ms` is Redis's
//! clock when the entry was added and `seq` orders entries added in the same millisecond. Ids only
//! grow within one stream, so comparing two of them tells which entry came first.

use std::fmt;
use std::str::FromStr;

/// A stream entry id. Ordered as Redis orders them: by `ms`, then by `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset {
    pub ms: u64,
    pub seq: u64,
}

/// The longest accepted offset text: two 20-digit numbers and the dash.
pub const MAX_OFFSET_LEN: usize = 41;

impl Offset {
    pub const fn new(ms: u64, seq: u64) -> Offset {
        Offset { ms, seq }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Why a text is not an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadOffset;

impl fmt::Display for BadOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "not a stream offset (expected <milliseconds>-<sequence>, like 1712345678901-0)",
        )
    }
}

impl std::error::Error for BadOffset {}

impl FromStr for Offset {
    type Err = BadOffset;

    /// Only the canonical form Redis writes: decimal digits, a dash, decimal digits, no sign, no
    /// leading zero (so one entry has one spelling, and a client's text never reaches Redis as
    /// something XRANGE would read differently).
    fn from_str(text: &str) -> Result<Offset, BadOffset> {
        if text.len() > MAX_OFFSET_LEN {
            return Err(BadOffset);
        }
        let (ms, seq) = text.split_once('-').ok_or(BadOffset)?;
        let number = |part: &str| -> Result<u64, BadOffset> {
            let canonical = !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'));
            if !canonical {
                return Err(BadOffset);
            }
            part.parse().map_err(|_| BadOffset)
        };
        Ok(Offset::new(number(ms)?, number(seq)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_canonical_form_only() {
        for text in [
            "0-0",
            "1712345678901-0",
            "1712345678901-17",
            "18446744073709551615-18446744073709551615",
        ] {
            let offset: Offset = text.parse().unwrap();
            assert_eq!(offset.to_string(), text);
        }
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1",
            "01-0",
            "1-01",
            "+1-0",
            "1-0-0",
            "a-0",
            " 1-0",
            "1-0 ",
            "18446744073709551616-0",
            "*",
            "$",
            "+",
            "(1-0",
        ] {
            assert_eq!(bad.parse::<Offset>(), Err(BadOffset), "{bad:?}");
        }
    }

    #[test]
    fn orders_like_redis() {
        let a: Offset = "5-9".parse().unwrap();
        let b: Offset = "6-0".parse().unwrap();
        let c: Offset = "6-1".parse().unwrap();
        assert!(a < b && b < c);
        assert_eq!(b.max(c), c);
    }
}
