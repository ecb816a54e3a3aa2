//! The WebSocket gateway's handshake token: who may follow which login's events, and until when.
//!
//! `QrPush\Login::start()` issues one when `qrpush.gateway_secret` is set; the browser opens
//! `/ws/?token=<token>`, and the gateway (which has the same secret) checks it before it accepts
//! the socket. A token names one login, an expiry and the key that signed it, with HMAC-SHA256:
//!
//! ```text
//! <login id>.<expires at, Unix ms>.<key id>.<base64url(HMAC-SHA256(secret, "qrpush-gateway-v2\n" id "\n" expires "\n" key id))>
//! ```
//!
//! This module is the crypto only: every input is explicit (the key, the login id, the expiry, the
//! time to check against). Which expiry a login's token gets is `Login::start`'s business, and how
//! much clock skew to allow when checking is the gateway's.
//!
//! **Key ids.** A [`Key`]'s id is derived from its secret (the first 48 bits of a SHA-256 of it,
//! base64url), never configured, so PHP and the gateway always agree on it. It tells a gateway
//! that holds the current and the previous secret which one to check, so rotating the secret does
//! not break the reconnects of tokens issued just before (they stay valid until they expire). It
//! reveals nothing a token's MAC does not already: both are functions of the secret.
//!
//! A token grants nothing but receiving that login's events (which carry no user data: see the
//! event schema), and only until it expires. The secret never leaves the server side; the token
//! holds no secret of the login (the QR token, the browser secret and the ticket are separate).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::random;

/// Domain separation: this MAC means "gateway handshake, version 2" and nothing else.
const CONTEXT: &[u8] = b"qrpush-gateway-v2\n";
/// Domain separation of the key id's hash: never equal to any other hash of the secret.
const KEY_ID_CONTEXT: &[u8] = b"qrpush-gateway-key-id\n";
/// Length of a key id: 6 bytes of hash, base64url.
pub const KEY_ID_LEN: usize = 8;
/// Length of the signature part (HMAC-SHA256, base64url without padding).
const SIGNATURE_LEN: usize = 43;
/// Longest accepted token: id, a 13-digit-ish expiry, key id, signature and the dots, with room.
pub const MAX_TOKEN_LEN: usize = 128;

/// A signing key: a secret and the id derived from it. `Debug` shows the id only.
#[derive(Clone)]
pub struct Key {
    id: String,
    secret: Vec<u8>,
}

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        let mut hash = Sha256::new();
        hash.update(KEY_ID_CONTEXT);
        hash.update(secret);
        Key {
            id: URL_SAFE_NO_PAD.encode(&hash.finalize()[..6]),
            secret: secret.to_vec(),
        }
    }

    /// The key id tokens signed with this key carry (8 base64url characters).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An HMAC-SHA256 keyed with the secret, for every token signed with it; each kind of token
    /// starts its input with a context of its own (domain separation).
    pub(crate) fn keyed_mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).expect("HMAC takes any key")
    }

    fn mac(&self, login_id: &str, expires_at_ms: i64) -> Hmac<Sha256> {
        let mut mac = self.keyed_mac();
        mac.update(CONTEXT);
        mac.update(login_id.as_bytes());
        mac.update(b"\n");
        mac.update(expires_at_ms.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(self.id.as_bytes());
        mac
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub login_id: String,
    /// Unix time in milliseconds from which the token is refused.
    pub expires_at_ms: i64,
    /// The id of the key that signed it.
    pub key_id: String,
}

/// Why a token was refused. The gateway closes the socket with 4001 for every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token at all (wrong shape, bad login id, bad number).
    Malformed,
    /// Signed with a key this side does not have (an older secret, or another deployment's).
    UnknownKey,
    /// Names one of our keys, but is not signed with it (forged or altered).
    BadSignature,
    /// Signed by us, but its time is up.
    Expired,
}

impl TokenError {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed token",
            TokenError::UnknownKey => "unknown token key",
            TokenError::BadSignature => "invalid token",
            TokenError::Expired => "token expired",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token for `login_id`, signed with `key`, valid until `expires_at_ms` (Unix ms).
pub fn issue(key: &Key, login_id: &str, expires_at_ms: i64) -> String {
    let signature = key.mac(login_id, expires_at_ms).finalize().into_bytes();
    format!(
        "{login_id}.{expires_at_ms}.{}.{}",
        key.id,
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Checks `token` against `keys` at time `now_ms`: it must name one of them, carry its valid
/// signature, and `now_ms` must be before its expiry. The signature is compared in constant time,
/// and before the expiry, so a forged token never learns whether its time would have been valid.
pub fn verify(keys: &[Key], token: &str, now_ms: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.splitn(4, '.');
    let (Some(id), Some(expires), Some(key_id), Some(signature)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if !random::is_id(id)
        || expires.is_empty()
        || expires.len() > 16
        || !expires.bytes().all(|b| b.is_ascii_digit())
        || key_id.len() != KEY_ID_LEN
        || signature.len() != SIGNATURE_LEN
    {
        return Err(TokenError::Malformed);
    }
    let expires_at_ms: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
    // Canonical form only: "0123" would sign as "123" and must not be a second spelling.
    if expires_at_ms.to_string() != expires {
        return Err(TokenError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let key = keys
        .iter()
        .find(|k| k.id == key_id)
        .ok_or(TokenError::UnknownKey)?;
    key.mac(id, expires_at_ms)
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    if now_ms >= expires_at_ms {
        return Err(TokenError::Expired);
    }
    Ok(Claims {
        login_id: id.to_string(),
        expires_at_ms,
        key_id: key.id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ID: &str = "5AFq2p3i6UkavSNtuH17kA";

    #[test]
    fn round_trip() {
        let key = Key::new(SECRET);
        let token = issue(&key, ID, 2_000);
        assert!(token.starts_with(&format!("{ID}.2000.{}.", key.id())));
        assert_eq!(
            token.len(),
            ID.len() + 1 + 4 + 1 + KEY_ID_LEN + 1 + SIGNATURE_LEN
        );
        assert_eq!(
            verify(std::slice::from_ref(&key), &token, 1_999),
            Ok(Claims {
                login_id: ID.to_string(),
                expires_at_ms: 2_000,
                key_id: key.id().to_string(),
            })
        );
        assert_eq!(
            format!("{key:?}"),
            format!("Key({})", key.id()),
            "no secret in Debug"
        );
    }

    #[test]
    fn known_answer() {
        // Computed independently with:
        //   printf 'qrpush-gateway-key-id\n%s' SECRET | openssl dgst -sha256 -binary | head -c 6 |
        //     basenc --base64url
        //   printf 'qrpush-gateway-v2\n%s\n%s\n%s' ID EXP KID |
        //     openssl dgst -sha256 -hmac SECRET -binary | basenc --base64url | tr -d =
        let key = Key::new(SECRET);
        assert_eq!(key.id(), "etHV7bFk");
        assert_eq!(
            issue(&key, ID, 1_795_318_073_678),
            "5AFq2p3i6UkavSNtuH17kA.1795318073678.etHV7bFk.Y5As2dVbEp7eU96zU3FKlStRt_chOofW1XHVJCP8eKQ"
        );
    }

    #[test]
    fn the_key_it_names_decides() {
        let current = Key::new(b"the current secret, 32 bytes ok!");
        let previous = Key::new(SECRET);
        assert_ne!(current.id(), previous.id());
        let keys = [current.clone(), previous.clone()];
        // Signed with either: accepted, and the claims say which.
        let old = issue(&previous, ID, 2_000);
        assert_eq!(verify(&keys, &old, 0).unwrap().key_id, previous.id());
        let new = issue(&current, ID, 2_000);
        assert_eq!(verify(&keys, &new, 0).unwrap().key_id, current.id());
        // Without the previous key: unknown.
        assert_eq!(verify(&keys[..1], &old, 0), Err(TokenError::UnknownKey));
        // A signature of one key under the other's id: bad.
        let swapped = old.replace(previous.id(), current.id());
        assert_eq!(verify(&keys, &swapped, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn refusals() {
        let key = Key::new(SECRET);
        let keys = [key.clone()];
        let token = issue(&key, ID, 2_000);
        assert_eq!(verify(&keys, &token, 2_000), Err(TokenError::Expired));
        // Every single-character change of the signature or the claims is caught.
        let other_id = issue(&key, "AAAAAAAAAAAAAAAAAAAAAA", 2_000);
        let (_, rest) = other_id.split_at(ID.len());
        assert_eq!(
            verify(&keys, &format!("{ID}{rest}"), 0),
            Err(TokenError::BadSignature)
        );
        let later = token.replace(".2000.", ".2001.");
        assert_eq!(verify(&keys, &later, 0), Err(TokenError::BadSignature));
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify(&keys, std::str::from_utf8(&flipped).unwrap(), 0),
            Err(TokenError::BadSignature)
        );
        let (claims, signature) = token.rsplit_once('.').unwrap();
        let (without_key, _) = claims.rsplit_once('.').unwrap();
        for bad in [
            "",
            "...",
            "x.1.y.z",
            &format!("{without_key}.{signature}"),
            &token.replace(".2000.", ".02000."),
            &token.replace(".2000.", ".-2000."),
            &token.replace(".2000.", ".."),
            &token.replace(key.id(), "short"),
            &format!("{token}x"),
            &format!("{token}.x"),
            &"A".repeat(500),
        ] {
            assert_eq!(verify(&keys, bad, 0), Err(TokenError::Malformed), "{bad:?}");
        }
    }
}
