//! The login's random tokens and the only form in which Redis ever sees them: SHA-256 hashes.
//!
//! Every token comes from the OS CSPRNG (`getrandom`) and is written base64url without padding:
//! the login id has 128 bits (22 characters), the QR token, the browser secret and the ticket
//! 256 bits (43 characters). The QR code's text is `<login id>.<QR token>`.

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
    fn hash_is_sha256_base64url() {
        // SHA-256("abc"), RFC 6234.
        assert_eq!(hash(b"abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
