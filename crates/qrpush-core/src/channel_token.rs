//! The WebSocket gateway's subscription token: which channels a browser may follow, as whom, and
//! until when — signed by the app (`QrPush::subscriptionToken()`), checked by the gateway.
//!
//! ```text
//! c1.<base64url(claims)>.<key id>.<base64url(HMAC-SHA256(secret, "qrpush-channels-v1\n" claims "\n" key id))>
//! claims: {"ch":["news","notifications#42"],"exp":<expires at, Unix ms>,"sub":"42"}   ("sub" optional)
//! ```
//!
//! The key is the login token's ([`Key`]: the same `gateway_secret`, the same key ids and
//! rotation), the context differs, so neither kind of token can pass for the other. The claims are
//! signed as the base64url text the token carries: no second spelling of them verifies.
//!
//! **Private channels.** A channel named `<name>#<user>[,<user>…]` belongs to the users after the
//! last `#` (`notifications#42`, `dialog#42,43`): a token naming it must name one of them as its
//! user. The app that issues tokens is checked ([`check_channels`]) and so is the gateway, which
//! accepts nothing else, so a token for someone else's channel cannot come out of either by
//! mistake.
//!
//! **Login channels are not channels.** The QR login's events carry tickets; only a login token
//! reaches them (through the gateway's own routing). A subscription token never names
//! `login_channel` nor `login_channel:<id>`; the gateway refuses one that does.
//!
//! Expiry is the issuing host's clock (no round trip to Redis to make a token); the gateway allows
//! its `--clock-skew` between the clocks, as for login tokens.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac;
use serde_json::{json, Value};

use crate::client::MAX_CHANNEL_LEN;
use crate::config::{validate_channel_part, Config};
use crate::error::{Error, Result, Subject};
use crate::login::gateway_token::{Key, TokenError};
use crate::secret::Secret;

/// What every subscription token starts with (a login token starts with a login id, never a dot
/// in its third character).
pub const PREFIX: &str = "c1.";
/// Domain separation: this MAC means "gateway subscription, version 1" and nothing else.
const CONTEXT: &[u8] = b"qrpush-channels-v1\n";
/// The most channels one token names.
pub const MAX_CHANNELS: usize = 32;
/// The longest token: it travels in a URL's query string.
pub const MAX_TOKEN_LEN: usize = 4096;
/// The longest user id a token names, in bytes.
pub const MAX_USER_LEN: usize = 256;
/// The longest lifetime of a token: a browser asks the app for a new one long before.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Without `channel_prefix`, as the app named them.
    pub channels: Vec<String>,
    pub user: Option<String>,
    /// Unix time in milliseconds from which the token is refused.
    pub expires_at_ms: i64,
    /// The id of the key that signed it.
    pub key_id: String,
}

/// True when `token` is a subscription token (not a login token).
pub fn is_subscription_token(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// The users a private channel belongs to (`news`: none, it is not private).
pub fn private_to(channel: &str) -> Option<impl Iterator<Item = &str>> {
    let (_, users) = channel.rsplit_once('#')?;
    Some(users.split(','))
}

/// Checks a token's channels and user: 1 to [`MAX_CHANNELS`] distinct channels, each as publish
/// accepts it (non-empty, at most 1024 bytes, no control characters); a private channel's users
/// include `user`. Errors are about [`Subject::ChannelAt`] or [`Subject::UserId`].
pub fn check_channels<C: AsRef<str>>(channels: &[C], user: Option<&str>) -> Result<()> {
    if let Some(user) = user {
        check_user(user).map_err(|e| e.about(Subject::UserId))?;
    }
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return Err(Error::invalid(format!(
            "must name 1 to {MAX_CHANNELS} channels, got {}",
            channels.len()
        ))
        .about(Subject::Channels));
    }
    for (index, channel) in channels.iter().enumerate() {
        let channel = channel.as_ref();
        let about = |e: Error| e.about(Subject::ChannelAt(index));
        if channel.is_empty() {
            return Err(about(Error::invalid("must not be empty")));
        }
        validate_channel_part(channel.as_bytes(), MAX_CHANNEL_LEN).map_err(about)?;
        if channels[..index].iter().any(|c| c.as_ref() == channel) {
            return Err(about(Error::invalid(format!(
                "'{}' is named twice",
                excerpt(channel)
            ))));
        }
        if let Some(mut users) = private_to(channel) {
            if !user.is_some_and(|user| users.any(|u| u == user)) {
                let who = user
                    .map(|u| format!("user '{}'", excerpt(u)))
                    .unwrap_or("no user".into());
                return Err(about(Error::invalid(format!(
                    "'{}' is private to the users after its '#', and the token is for {who}",
                    excerpt(channel)
                ))));
            }
        }
    }
    Ok(())
}

/// Refuses the QR login's channels (see the module doc): `login_channel` and `login_channel:<id>`.
/// Errors are about [`Subject::ChannelAt`].
pub fn check_not_login<C: AsRef<str>>(channels: &[C], login_channel: &str) -> Result<()> {
    for (index, channel) in channels.iter().enumerate() {
        let channel = channel.as_ref();
        let is_login = channel == login_channel
            || channel
                .strip_prefix(login_channel)
                .is_some_and(|rest| rest.starts_with(':'));
        if is_login {
            return Err(Error::invalid(format!(
                "'{}' is the QR login's channel (qrpush.login_channel): only login tokens reach it",
                excerpt(channel)
            ))
            .about(Subject::ChannelAt(index)));
        }
    }
    Ok(())
}

fn check_user(user: &str) -> Result<()> {
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(Error::invalid(format!(
            "must be 1 to {MAX_USER_LEN} bytes, got {}",
            user.len()
        )));
    }
    if user.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Error::invalid("must not contain control characters"));
    }
    Ok(())
}

fn excerpt(text: &str) -> String {
    text.chars().take(64).collect()
}

/// A token for `channels` (and `user`), signed with `key`, valid until `expires_at_ms`. The
/// caller has checked them ([`check_channels`]).
pub fn issue<C: AsRef<str>>(
    key: &Key,
    channels: &[C],
    user: Option<&str>,
    expires_at_ms: i64,
) -> String {
    let channels: Vec<&str> = channels.iter().map(AsRef::as_ref).collect();
    let mut claims = json!({ "ch": channels, "exp": expires_at_ms });
    if let Some(user) = user {
        claims["sub"] = json!(user);
    }
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = mac(key, &claims).finalize().into_bytes();
    format!(
        "{PREFIX}{claims}.{}.{}",
        key.id(),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The token `QrPush::subscriptionToken()` returns: `channels` (without `channel_prefix`) for
/// `user`, valid for `ttl` from `now_ms`, signed with `config`'s `gateway_secret`. Errors are
/// about [`Subject::ChannelAt`], [`Subject::UserId`], [`Subject::Ttl`] or the
/// `gateway_secret` setting (none set).
pub fn issue_for<C: AsRef<str>>(
    config: &Config,
    channels: &[C],
    ttl: Duration,
    user: Option<&str>,
    now_ms: i64,
) -> Result<Secret> {
    check_channels(channels, user)?;
    check_not_login(channels, &config.login_channel)?;
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(Error::invalid(format!(
            "must be 1 to {} seconds, got {}",
            MAX_TTL.as_secs(),
            ttl.as_secs()
        ))
        .about(Subject::Ttl));
    }
    let Some(secret) = config.gateway_secret.as_ref() else {
        return Err(Error::invalid(
            "is empty: set it (the WebSocket gateway's secret) to sign subscription tokens",
        )
        .about(Subject::Setting(crate::config::name::GATEWAY_SECRET)));
    };
    let key = Key::new(secret.expose().as_bytes());
    let expires_at_ms = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let token = issue(&key, channels, user, expires_at_ms);
    if token.len() > MAX_TOKEN_LEN {
        return Err(Error::invalid(format!(
            "make a token of {} bytes, more than {MAX_TOKEN_LEN} (it travels in a URL): name fewer or shorter channels",
            token.len()
        ))
        .about(Subject::ChannelAt(channels.len() - 1)));
    }
    Ok(Secret::new(token))
}

fn mac(key: &Key, claims: &str) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = key.keyed_mac();
    mac.update(CONTEXT);
    mac.update(claims.as_bytes());
    mac.update(b"\n");
    mac.update(key.id().as_bytes());
    mac
}

/// Checks `token` against `keys` at `now_ms`: it names one of them, carries that key's signature,
/// is not expired, and its claims are well-formed and pass [`check_channels`]. The signature is
/// compared (in constant time) before anything in the claims is believed.
pub fn verify(keys: &[Key], token: &str, now_ms: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
    let mut parts = rest.split('.');
    let (Some(claims), Some(key_id), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let key = keys
        .iter()
        .find(|k| k.id() == key_id)
        .ok_or(TokenError::UnknownKey)?;
    mac(key, claims)
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| TokenError::Malformed)?;
    let value: Value = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    let expires_at_ms = value["exp"].as_i64().ok_or(TokenError::Malformed)?;
    let channels: Vec<String> = value["ch"]
        .as_array()
        .ok_or(TokenError::Malformed)?
        .iter()
        .map(|c| c.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or(TokenError::Malformed)?;
    let user = match &value["sub"] {
        Value::Null => None,
        Value::String(user) => Some(user.clone()),
        _ => return Err(TokenError::Malformed),
    };
    check_channels(&channels, user.as_deref()).map_err(|_| TokenError::Malformed)?;
    if now_ms >= expires_at_ms {
        return Err(TokenError::Expired);
    }
    Ok(Claims {
        channels,
        user,
        expires_at_ms,
        key_id: key.id().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip() {
        let key = Key::new(SECRET);
        let token = issue(&key, &["news", "notifications#42"], Some("42"), 2_000);
        assert!(token.starts_with(PREFIX));
        assert!(is_subscription_token(&token));
        assert_eq!(
            verify(std::slice::from_ref(&key), &token, 1_999),
            Ok(Claims {
                channels: vec!["news".into(), "notifications#42".into()],
                user: Some("42".into()),
                expires_at_ms: 2_000,
                key_id: key.id().to_string(),
            })
        );
        assert_eq!(
            verify(std::slice::from_ref(&key), &token, 2_000),
            Err(TokenError::Expired)
        );
        let anonymous = issue(&key, &["news"], None, 5);
        assert_eq!(verify(&[key], &anonymous, 0).unwrap().user, None);
    }

    #[test]
    fn known_answer() {
        // Computed independently with:
        //   C=$(printf '{"ch":["news"],"exp":1795318073678,"sub":"42"}' | basenc --base64url | tr -d =)
        //   printf 'qrpush-channels-v1\n%s\n%s' $C etHV7bFk | openssl dgst -sha256 -hmac SECRET -binary |
        //     basenc --base64url | tr -d =
        let key = Key::new(SECRET);
        assert_eq!(
            issue(&key, &["news"], Some("42"), 1_795_318_073_678),
            "c1.eyJjaCI6WyJuZXdzIl0sImV4cCI6MTc5NTMxODA3MzY3OCwic3ViIjoiNDIifQ.etHV7bFk.rI1XHcXbM9QjTH_5uIgpYWHFoeDfadCkM7wytpnbfBU"
        );
    }

    #[test]
    fn login_tokens_and_subscription_tokens_never_pass_for_each_other() {
        let key = Key::new(SECRET);
        let login = crate::login::gateway_token::issue(&key, "5AFq2p3i6UkavSNtuH17kA", 2_000);
        assert!(!is_subscription_token(&login));
        assert_eq!(
            verify(std::slice::from_ref(&key), &login, 0),
            Err(TokenError::Malformed)
        );
        let channels = issue(&key, &["news"], None, 2_000);
        assert_eq!(
            crate::login::gateway_token::verify(&[key], &channels, 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn refusals() {
        let key = Key::new(SECRET);
        let keys = [key.clone()];
        let token = issue(&key, &["news"], Some("42"), 2_000);
        let (head, signature) = token.rsplit_once('.').unwrap();
        // A signature of other claims under these claims.
        let other = issue(&key, &["admin"], Some("42"), 2_000);
        let (_, other_signature) = other.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&keys, &format!("{head}.{other_signature}"), 0),
            Err(TokenError::BadSignature)
        );
        // Another key's id.
        let stranger = Key::new(b"another secret, sixteen bytes at least");
        assert_eq!(
            verify(&keys, &issue(&stranger, &["news"], None, 2_000), 0),
            Err(TokenError::UnknownKey)
        );
        // Signed, but claims the gateway would not issue: someone else's private channel.
        let forged_private = issue(&key, &["notifications#43"], Some("42"), 2_000);
        assert_eq!(
            verify(&keys, &forged_private, 0),
            Err(TokenError::Malformed)
        );
        for bad in [
            "",
            "c1.",
            "c1.x.y",
            &format!("{head}.{signature}.x"),
            &format!("{head}.{signature}="),
            &format!("c2.{}", &token[3..]),
            &"c1.A".repeat(2000),
        ] {
            assert_eq!(verify(&keys, bad, 0), Err(TokenError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn channel_rules() {
        let ok: &[(&[&str], Option<&str>)] = &[
            (&["news"], None),
            (&["news", "notifications#42"], Some("42")),
            (&["dialog#41,42"], Some("42")),
            (&["a#b#42"], Some("42")),
        ];
        for (channels, user) in ok {
            check_channels(channels, *user).unwrap();
        }
        let refused: &[(&[&str], Option<&str>, &str)] = &[
            (&[], None, "channels must name 1 to 32 channels, got 0"),
            (&[""], None, "channel #0 must not be empty"),
            (&["a", "b\n"], None, "channel #1 must not contain control characters (byte 0x0a at offset 1)"),
            (&["a", "a"], None, "channel #1 'a' is named twice"),
            (&["notifications#42"], None, "channel #0 'notifications#42' is private to the users after its '#', and the token is for no user"),
            (&["notifications#42"], Some("43"), "channel #0 'notifications#42' is private to the users after its '#', and the token is for user '43'"),
            (&["news"], Some(""), "user id must be 1 to 256 bytes, got 0"),
        ];
        for (channels, user, message) in refused {
            assert_eq!(
                check_channels(channels, *user).unwrap_err().message(),
                *message
            );
        }
        let many: Vec<String> = (0..33).map(|i| format!("c{i}")).collect();
        assert!(check_channels(&many, None).is_err());
        check_not_login(&["qr-login-eventsX", "news"], "qr-login-events").unwrap();
        for login in ["qr-login-events", "qr-login-events:5AFq2p3i6UkavSNtuH17kA"] {
            let e = check_not_login(&["news", login], "qr-login-events").unwrap_err();
            assert_eq!(e.subject(), Some(Subject::ChannelAt(1)));
        }
    }

    #[test]
    fn issued_for_a_config() {
        let mut config = Config::default();
        let e = issue_for(&config, &["news"], Duration::from_secs(60), None, 0).unwrap_err();
        assert_eq!(
            e.message(),
            "gateway_secret: is empty: set it (the WebSocket gateway's secret) to sign subscription tokens"
        );
        config
            .set("gateway_secret", "0123456789abcdef0123456789abcdef")
            .unwrap();
        let token = issue_for(
            &config,
            &["news"],
            Duration::from_secs(60),
            Some("7"),
            1_000,
        )
        .unwrap();
        let claims = verify(&[Key::new(SECRET)], token.expose(), 60_999).unwrap();
        assert_eq!(claims.expires_at_ms, 61_000);
        for ttl in [Duration::ZERO, MAX_TTL + Duration::from_secs(1)] {
            let e = issue_for(&config, &["news"], ttl, None, 0).unwrap_err();
            assert_eq!(e.subject(), Some(Subject::Ttl));
        }
        let e = issue_for(
            &config,
            &["qr-login-events"],
            Duration::from_secs(1),
            None,
            0,
        )
        .unwrap_err();
        assert_eq!(e.subject(), Some(Subject::ChannelAt(0)));
        let long: Vec<String> = (0..32).map(|i| format!("{i}{}", "x".repeat(200))).collect();
        let e = issue_for(&config, &long, Duration::from_secs(1), None, 0).unwrap_err();
        assert!(e.message().contains("more than 4096"), "{e}");
    }
}
