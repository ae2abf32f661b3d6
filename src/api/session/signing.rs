//! Signed session cookies. No server keeps a session: its cookie carries the token it was opened
//! with, that token's project and role and when it ends, MAC'd with HMAC-SHA256 under a key the
//! store keeps for the whole deployment (`Store::deployment_secret`). Every server of the store
//! therefore accepts it, and a restart keeps it. The session's CSRF token is a second MAC of the
//! same claims, so it needs no storage either.

use std::sync::RwLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use hmac::{Hmac, KeyInit as _, Mac as _};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::{Store, StoreError, StoreResult};

/// The signing key's name among the deployment's secrets.
const KEY_NAME: &str = "ui-session-key";
/// Bytes of a new key: SHA-256's block of output, as RFC 2104 advises for HMAC.
const KEY_BYTES: usize = 32;
/// A real cookie is about 250 bytes; anything much longer is refused before it is decoded.
const MAX_COOKIE_BYTES: usize = 1024;
/// Names the format, so that a later one can be told apart and refused.
const VERSION_PREFIX: &str = "v1.";
/// Keeps the two MACs made with one key apart: a cookie's MAC is never a valid CSRF token.
const COOKIE_CONTEXT: &[u8] = b"spanhouse ui session v1\0";
const CSRF_CONTEXT: &[u8] = b"spanhouse ui csrf v1\0";

type HmacSha256 = Hmac<Sha256>;

/// What a session cookie says. The names are short because the cookie goes with every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The token signed in with: the session lives only while that token is active.
    #[serde(rename = "tok")]
    pub token_id: String,
    /// The token's project at sign-in, checked against the token's on every request.
    #[serde(rename = "prj")]
    pub project_id: String,
    /// The token's role at sign-in (`read` or `admin`), checked likewise.
    #[serde(rename = "rol")]
    pub role: String,
    /// Seconds since the Unix epoch; from then on the cookie is refused.
    #[serde(rename = "exp")]
    pub expires_at_unix_seconds: u64,
    /// Random per sign-in, so that each session has a CSRF token of its own.
    #[serde(rename = "nce")]
    pub nonce: String,
}

impl SessionClaims {
    pub fn new(token_id: &str, project_id: &str, role: &str, expires_at_unix_seconds: u64) -> Self {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        Self {
            token_id: token_id.to_owned(),
            project_id: project_id.to_owned(),
            role: role.to_owned(),
            expires_at_unix_seconds,
            nonce: hex::encode(nonce),
        }
    }

    fn payload(&self) -> Vec<u8> {
        // Plain strings and a number: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The key that signs session cookies, as this server last read it from the store.
pub struct SessionKey {
    key: RwLock<Vec<u8>>,
}

/// The deployment's key, made (from fresh random bytes) if the store has none yet.
async fn stored_key(store: &dyn Store) -> StoreResult<Vec<u8>> {
    let mut candidate = [0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut candidate);
    let key = store.deployment_secret(KEY_NAME, &candidate).await?;
    if key.len() < KEY_BYTES / 2 {
        return Err(StoreError::Corrupt(format!(
            "the web UI session key is {} bytes",
            key.len()
        )));
    }
    Ok(key)
}

impl SessionKey {
    pub async fn load(store: &dyn Store) -> StoreResult<Self> {
        Ok(Self::from_bytes(stored_key(store).await?))
    }

    pub fn from_bytes(key: Vec<u8>) -> Self {
        Self {
            key: RwLock::new(key),
        }
    }

    /// Reads the key again. Two servers that made the first key at the same instant on
    /// ClickHouse may each have started with their own; after this they use the one the store
    /// answers to all (see `Store::deployment_secret`).
    pub async fn refresh(&self, store: &dyn Store) -> StoreResult<()> {
        let stored = stored_key(store).await?;
        let mut key = self
            .key
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if *key != stored {
            tracing::info!("using the web UI session key the store holds, as every server does");
            *key = stored;
        }
        Ok(())
    }

    fn mac(&self, context: &[u8], payload: &[u8]) -> HmacSha256 {
        let key = self.key.read().unwrap_or_else(|poison| poison.into_inner());
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
        mac.update(context);
        mac.update(payload);
        mac
    }

    /// The cookie value for `claims`: `v1.` base64url(JSON claims) `.` base64url(MAC).
    pub fn sign(&self, claims: &SessionClaims) -> String {
        let payload = claims.payload();
        let tag = self.mac(COOKIE_CONTEXT, &payload).finalize().into_bytes();
        format!(
            "{VERSION_PREFIX}{}.{}",
            BASE64URL.encode(&payload),
            BASE64URL.encode(tag)
        )
    }

    /// The claims of a cookie this deployment signed, unless it has expired; `None` for
    /// anything else. The MAC is checked (in constant time) before the claims are parsed.
    pub fn verify(&self, cookie: &str, now_unix_seconds: u64) -> Option<SessionClaims> {
        if cookie.len() > MAX_COOKIE_BYTES {
            return None;
        }
        let (payload, tag) = cookie.strip_prefix(VERSION_PREFIX)?.split_once('.')?;
        let payload = BASE64URL.decode(payload).ok()?;
        let tag = BASE64URL.decode(tag).ok()?;
        self.mac(COOKIE_CONTEXT, &payload).verify_slice(&tag).ok()?;
        let claims: SessionClaims = serde_json::from_slice(&payload).ok()?;
        (claims.expires_at_unix_seconds > now_unix_seconds).then_some(claims)
    }

    /// The session's CSRF token: only a holder of the key can make it, and the page learns it
    /// from the sign-in answer or `/ui/session`, which a cross-site page cannot read.
    pub fn csrf_token(&self, claims: &SessionClaims) -> String {
        hex::encode(
            self.mac(CSRF_CONTEXT, &claims.payload())
                .finalize()
                .into_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        SessionClaims::new("tok_1", "p1", "read", 1_000)
    }

    #[test]
    fn a_signed_cookie_verifies_until_it_expires() {
        let key = SessionKey::from_bytes(vec![7; 32]);
        let claims = claims();
        let cookie = key.sign(&claims);
        assert!(cookie.starts_with("v1."));
        assert!(cookie.len() < 300, "{cookie}");
        assert!(
            cookie
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b".-_".contains(&byte)),
            "{cookie}"
        );
        assert_eq!(key.verify(&cookie, 999), Some(claims));
        assert_eq!(key.verify(&cookie, 1_000), None, "expired");
    }

    #[test]
    fn changed_claims_another_key_or_garbage_are_refused() {
        let key = SessionKey::from_bytes(vec![7; 32]);
        let cookie = key.sign(&claims());
        let (payload, tag) = cookie.strip_prefix("v1.").unwrap().split_once('.').unwrap();
        let mut forged = claims();
        forged.role = "admin".into();
        forged.expires_at_unix_seconds = u64::MAX;
        let forged_payload = BASE64URL.encode(forged.payload());
        assert_eq!(key.verify(&format!("v1.{forged_payload}.{tag}"), 0), None);
        assert_eq!(key.verify(&format!("v1.{payload}.{}", &tag[1..]), 0), None);
        assert_eq!(key.verify(&format!("v2.{payload}.{tag}"), 0), None);
        let other = SessionKey::from_bytes(vec![8; 32]);
        assert_eq!(other.verify(&cookie, 0), None);
        for garbage in ["", "v1.", "v1..", "v1.!!.!!", "abc"] {
            assert_eq!(key.verify(garbage, 0), None, "{garbage}");
        }
        assert_eq!(key.verify(&"a".repeat(5_000), 0), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_from_the_cookie_mac() {
        let key = SessionKey::from_bytes(vec![7; 32]);
        let first = claims();
        let second = claims();
        assert_ne!(key.csrf_token(&first), key.csrf_token(&second));
        assert_eq!(key.csrf_token(&first), key.csrf_token(&first.clone()));
        let cookie_tag = key.sign(&first).rsplit('.').next().unwrap().to_owned();
        let csrf = key.csrf_token(&first);
        assert_ne!(BASE64URL.encode(hex::decode(&csrf).unwrap()), cookie_tag);
    }
}
