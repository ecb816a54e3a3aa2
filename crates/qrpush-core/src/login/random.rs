//! The login's random tokens and the only form in which Redis ever sees them: SHA-256 hashes.
//!
//! Every token comes from the OS CSPRNG (`getrandom`) and is written base64url without padding:
//! the login id has 128 bits (22 characters), the QR token, the browser secret and the ticket
//! 256 bits (43 characters). The QR code's text is `<login id>.<QR token>`.
//!
//! The confirmation code is different: two decimal digits, short enough to read off a phone and
//! type into a browser. Its strength is not its size but the few tries it gets (see
//! `MAX_CODE_TRIES`); Redis stores the SHA-256 of the login id and the code, and the id itself
//! is never stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

/// Bytes of randomness in a login id.
pub const ID_BYTES: usize = 16;
/// Bytes of randomness in the QR token, the browser secret and a ticket.
pub const SECRET_BYTES: usize = 32;
/// Length of a login id in base64url characters.
pub const ID_LEN: usize = 22;
/// Length of a QR token, browser secret or ticket in base64url characters.
pub const SECRET_LEN: usize = 43;

/// Decimal digits of a confirmation code.
pub const CODE_DIGITS: usize = 2;

/// `bytes` random bytes from the OS, base64url without padding.
pub fn token(bytes: usize) -> Result<String> {
    let mut buf = [0u8; SECRET_BYTES];
    let buf = &mut buf[..bytes.min(SECRET_BYTES)];
    getrandom::fill(buf).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("the operating system's random number generator failed: {e}"),
        )
    })?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A new login id (128 bits).
pub fn new_id() -> Result<String> {
    token(ID_BYTES)
}

/// A new 256-bit secret (QR token, browser secret, ticket).
pub fn new_secret() -> Result<String> {
    token(SECRET_BYTES)
}

/// A new confirmation code: [`CODE_DIGITS`] decimal digits, each value equally likely.
pub fn new_code() -> Result<String> {
    let range = 10u32.pow(CODE_DIGITS as u32);
    // The largest multiple of `range` a u32 holds: values above it would favour small codes.
    let limit = u32::MAX - u32::MAX % range;
    loop {
        let mut buf = [0u8; 4];
        getrandom::fill(&mut buf).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("the operating system's random number generator failed: {e}"),
            )
        })?;
        let n = u32::from_le_bytes(buf);
        if n < limit {
            return Ok(format!("{:0width$}", n % range, width = CODE_DIGITS));
        }
    }
}

/// What Redis stores for the confirmation code of login `id`: the code alone has too few values
/// to hide behind a hash, the id (never stored) makes it unguessable from the hash.
pub fn code_hash(id: &str, code: &str) -> String {
    hash(format!("{id}\n{code}").as_bytes())
}

/// The SHA-256 of `text`, base64url: what Redis stores and compares instead of a secret.
pub fn hash(text: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text))
}

/// True when `text` is exactly what `token(bytes)` produces: `len` base64url characters that
/// decode to `bytes` bytes (the last character carries no stray bits).
pub fn is_token(text: &str, len: usize, bytes: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(text)
            .is_ok_and(|decoded| decoded.len() == bytes)
}

/// True for a well-formed login id.
pub fn is_id(text: &str) -> bool {
    is_token(text, ID_LEN, ID_BYTES)
}

/// The QR code's text for a login.
pub fn qr_text(id: &str, qr_token: &str) -> String {
    format!("{id}.{qr_token}")
}

/// Splits a QR code's text into (login id, QR token); `None` when it is not one of ours.
pub fn split_qr(qr: &str) -> Option<(&str, &str)> {
    let (id, token) = qr.split_once('.')?;
    (is_id(id) && is_token(token, SECRET_LEN, SECRET_BYTES)).then_some((id, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_promised_size_and_alphabet() {
        let id = new_id().unwrap();
        let secret = new_secret().unwrap();
        assert_eq!(id.len(), ID_LEN);
        assert_eq!(secret.len(), SECRET_LEN);
        assert!(is_id(&id));
        assert!(is_token(&secret, SECRET_LEN, SECRET_BYTES));
        assert_ne!(new_secret().unwrap(), secret);
    }

    #[test]
    fn qr_round_trip_and_rejects() {
        let id = new_id().unwrap();
        let token = new_secret().unwrap();
        let qr = qr_text(&id, &token);
        assert_eq!(split_qr(&qr), Some((id.as_str(), token.as_str())));
        for bad in [
            "",
            ".",
            "https://example.com/",
            &format!("{id}.{token}x"),
            &format!("{id}x.{token}"),
            &format!("{id}.{}", &token[1..]),
            &format!("{}.{token}", &id.replace(&id[..1], "+")),
        ] {
            assert_eq!(split_qr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn codes_are_two_digits_and_all_of_them_occur() {
        let mut seen = [false; 100];
        for _ in 0..5000 {
            let code = new_code().unwrap();
            assert_eq!(code.len(), CODE_DIGITS);
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
            seen[code.parse::<usize>().unwrap()] = true;
        }
        // 5000 draws miss one given value with probability 0.99^5000, about 1.5e-22.
        assert!(seen.iter().all(|&s| s));
        assert_ne!(code_hash("a", "12"), code_hash("b", "12"));
        assert_ne!(code_hash("a", "12"), code_hash("a", "13"));
    }

    #[test]
    fn hash_is_sha256_base64url() {
        // SHA-256("abc"), RFC 6234.
        assert_eq!(hash(b"abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
