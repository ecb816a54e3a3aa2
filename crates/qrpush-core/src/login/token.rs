//! Handshake tokens for the WebSocket gateway: who may follow which login's events.
//!
//! `QrPush\Login::start()` issues one when `qrpush.gateway_secret` is set; the browser opens
//! `/ws/?token=<token>`, and the gateway (which has the same secret in its own config) checks it
//! before it accepts the socket. A token names one login and an expiry, signed with HMAC-SHA256:
//!
//! ```text
//! <login id>.<expires at, Unix ms>.<base64url(HMAC-SHA256(secret, "qrpush-gateway-v1\n" id "\n" expires))>
//! ```
//!
//! It grants nothing but receiving that login's events (which carry no user data: see the event
//! schema), and only until it expires: the end of the login's live life (pending TTL plus
//! approved TTL after the login was created), so a browser may reconnect as long as the login can
//! still change. The secret never leaves the server side; the token holds no secret of the login
//! (the QR token, the browser secret and the ticket are separate values).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::random as secrets;
use super::Status;
use crate::config::Config;

/// The shortest accepted secret, in bytes (php.ini `qrpush.gateway_secret`, the gateway's config).
pub const MIN_SECRET_LEN: usize = 16;
/// Domain separation: this MAC means "gateway handshake, version 1" and nothing else.
const CONTEXT: &[u8] = b"qrpush-gateway-v1\n";
/// Length of the signature part (HMAC-SHA256, base64url without padding).
const SIGNATURE_LEN: usize = 43;
/// Longest accepted token: id, 13-digit-ish expiry, signature and the dots, with room to spare.
pub const MAX_TOKEN_LEN: usize = 128;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub login_id: String,
    /// Unix time in milliseconds after which the token is refused.
    pub expires_at_ms: i64,
}

/// Why a token was refused. The gateway closes the socket with 4001 for every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token at all (wrong shape, bad login id, bad number).
    Malformed,
    /// Well-formed, but not signed with our secret (forged, altered, or another secret).
    BadSignature,
    /// Signed by us, but its time is up.
    Expired,
}

impl TokenError {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed token",
            TokenError::BadSignature => "invalid token",
            TokenError::Expired => "token expired",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn mac(secret: &[u8], login_id: &str, expires_at_ms: i64) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(CONTEXT);
    mac.update(login_id.as_bytes());
    mac.update(b"\n");
    mac.update(expires_at_ms.to_string().as_bytes());
    mac
}

/// A token for `login_id`, valid until `expires_at_ms` (Unix ms).
pub fn issue(secret: &[u8], login_id: &str, expires_at_ms: i64) -> String {
    let signature = mac(secret, login_id, expires_at_ms).finalize().into_bytes();
    format!(
        "{login_id}.{expires_at_ms}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Checks `token` against `secret` at time `now_ms`. The signature is compared in constant time,
/// and before the expiry, so a forged token never learns whether its time would have been valid.
pub fn verify(secret: &[u8], token: &str, now_ms: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(expires), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if !secrets::is_id(id)
        || expires.is_empty()
        || expires.len() > 16
        || !expires.bytes().all(|b| b.is_ascii_digit())
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
    mac(secret, id, expires_at_ms)
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    if now_ms >= expires_at_ms {
        return Err(TokenError::Expired);
    }
    Ok(Claims {
        login_id: id.to_string(),
        expires_at_ms,
    })
}

/// The end of a login's live life, as the token's expiry: created + pending TTL + approved TTL.
/// (Redis's clock, like every deadline of the login.)
pub fn expiry_for(config: &Config, status: &Status) -> i64 {
    let ms = |d: std::time::Duration| d.as_millis().min(i64::MAX as u128) as i64;
    status
        .created_at_ms
        .saturating_add(ms(config.login_pending_ttl))
        .saturating_add(ms(config.login_approved_ttl))
}

/// The token `start()` returns for a new login, when the config has a gateway secret.
pub fn for_login(config: &Config, status: &Status) -> Option<String> {
    let secret = config.gateway_secret.as_ref()?;
    Some(issue(
        secret.expose().as_bytes(),
        &status.id,
        expiry_for(config, status),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ID: &str = "5AFq2p3i6UkavSNtuH17kA";

    #[test]
    fn round_trip() {
        let token = issue(SECRET, ID, 2_000);
        assert!(token.starts_with("5AFq2p3i6UkavSNtuH17kA.2000."));
        assert_eq!(token.len(), ID.len() + 1 + 4 + 1 + SIGNATURE_LEN);
        assert_eq!(
            verify(SECRET, &token, 1_999),
            Ok(Claims {
                login_id: ID.to_string(),
                expires_at_ms: 2_000
            })
        );
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256(key, "qrpush-gateway-v1\n5AFq2p3i6UkavSNtuH17kA\n1795318073678"), computed
        // independently with: printf 'qrpush-gateway-v1\n%s\n%s' ID EXP |
        //   openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef -binary | basenc --base64url | tr -d =
        let token = issue(SECRET, ID, 1_795_318_073_678);
        assert_eq!(
            token,
            "5AFq2p3i6UkavSNtuH17kA.1795318073678.vUkTMvhQ0uiAu3E0i7UgjNWh94J29tn9iYZyQv--_gk"
        );
    }

    #[test]
    fn refusals() {
        let token = issue(SECRET, ID, 2_000);
        assert_eq!(verify(SECRET, &token, 2_000), Err(TokenError::Expired));
        assert_eq!(
            verify(b"another secret, 32 bytes long!!!", &token, 0),
            Err(TokenError::BadSignature)
        );
        // Every single-character change of the signature or the claims is caught.
        let other_id = issue(SECRET, "AAAAAAAAAAAAAAAAAAAAAA", 2_000);
        let (_, signature) = other_id.split_at(ID.len());
        assert_eq!(
            verify(SECRET, &format!("{ID}{signature}"), 0),
            Err(TokenError::BadSignature)
        );
        let longer = token.replace(".2000.", ".2001.");
        assert_eq!(verify(SECRET, &longer, 0), Err(TokenError::BadSignature));
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify(SECRET, std::str::from_utf8(&flipped).unwrap(), 0),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "..",
            "x.1.y",
            &token.replace(".2000.", ".02000."),
            &token.replace(".2000.", ".-2000."),
            &token.replace(".2000.", ".."),
            &format!("{token}x"),
            &format!("{token}.x"),
            &"A".repeat(500),
        ] {
            assert_eq!(
                verify(SECRET, bad, 0),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expiry_covers_the_live_life() {
        let mut config = Config::default();
        config
            .set("gateway_secret", std::str::from_utf8(SECRET).unwrap())
            .unwrap();
        let status = Status {
            id: ID.to_string(),
            state: super::super::State::Pending,
            version: 1,
            created_at_ms: 1_000,
            expires_at_ms: Some(121_000),
            channel: "qr-login-events".to_string(),
            ticket: None,
        };
        assert_eq!(expiry_for(&config, &status), 1_000 + 120_000 + 30_000);
        let token = for_login(&config, &status).unwrap();
        assert_eq!(verify(SECRET, &token, 150_999).unwrap().login_id, ID);
        assert_eq!(verify(SECRET, &token, 151_000), Err(TokenError::Expired));
        assert_eq!(for_login(&Config::default(), &status), None);
    }

    #[test]
    fn the_setting_is_validated_and_never_shown() {
        let mut config = Config::default();
        assert_eq!(config.gateway_secret, None);
        assert_eq!(config.display_value("gateway_secret"), "");
        let e = config.set("gateway_secret", "short").unwrap_err();
        assert_eq!(
            e.message(),
            "gateway_secret: must be empty (no gateway tokens) or at least 16 bytes, got 5"
        );
        config.set("gateway_secret", " 0123456789abcdef\n").unwrap();
        assert_eq!(config.display_value("gateway_secret"), "<redacted>");
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
        assert_eq!(
            config.gateway_secret.as_ref().unwrap().expose(),
            "0123456789abcdef",
            "trimmed, like every setting (a secret file's newline is not part of it)"
        );
        config.set("gateway_secret", "").unwrap();
        assert_eq!(config.gateway_secret, None);
    }
}
