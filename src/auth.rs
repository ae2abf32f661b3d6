//! Tokens, roles and credentials: who may do what in which project.
//!
//! Tokens are random secrets shown once; the store keeps only their SHA-256 hash (a fast hash
//! is right for 192-bit random secrets, which no dictionary can guess). A running server keeps
//! the active tokens in memory and reloads them every two seconds, so a new or revoked token is
//! honoured within the five seconds SPEC §1 allows, without a store lookup per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::store::{ActiveToken, Project, Store};

/// How often a running server reloads the tokens.
pub const TOKEN_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

pub use crate::model::project::{Access, Role};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub role: Role,
    pub project: Project,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send Authorization: Bearer <token>")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("unknown or revoked token")]
    UnknownToken,
    #[error("this token's role ({role}) does not allow {needed}")]
    WrongRole {
        role: &'static str,
        needed: &'static str,
    },
    #[error("the project header names {named:?}, but this token belongs to project {project:?}")]
    WrongProject { named: String, project: String },
}

/// A new random token secret: `sh_` and 48 hex digits.
pub fn generate_token_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("sh_{}", hex::encode(bytes))
}

/// A new token id, safe to show and to log.
pub fn generate_token_id() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    format!("tok_{}", hex::encode(bytes))
}

pub fn hash_token(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Takes the token out of an `Authorization` value: `Bearer TOKEN`, or `Basic` with the token
/// as the password (any user name), which lets Basic-auth exporters send unchanged.
pub fn token_from_authorization(value: &str) -> Result<String, AuthError> {
    let value = value.trim();
    let (scheme, credentials) = value
        .split_once(' ')
        .ok_or(AuthError::Malformed("expected \"Bearer <token>\""))?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if credentials.is_empty() {
            return Err(AuthError::Malformed("empty bearer token"));
        }
        return Ok(credentials.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = BASE64
            .decode(credentials)
            .map_err(|_| AuthError::Malformed("basic credentials are not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| AuthError::Malformed("basic credentials are not UTF-8"))?;
        let (_, password) = decoded
            .split_once(':')
            .ok_or(AuthError::Malformed("basic credentials lack user:password"))?;
        if password.is_empty() {
            return Err(AuthError::Malformed("basic password (the token) is empty"));
        }
        return Ok(password.to_owned());
    }
    Err(AuthError::Malformed(
        "unsupported scheme; use Bearer or Basic",
    ))
}

/// Checks credentials against the cached active tokens.
pub struct Authenticator {
    tokens: RwLock<ActiveTokens>,
}

/// The active tokens, by the hash of their secret (credentials) and by id (web UI sessions,
/// whose signed cookie names the token).
#[derive(Default)]
struct ActiveTokens {
    by_hash: HashMap<[u8; 32], Arc<Principal>>,
    by_id: HashMap<String, Arc<Principal>>,
}

impl Authenticator {
    /// Loads the active tokens from the store.
    pub async fn load(store: &dyn Store) -> Result<Self, crate::store::StoreError> {
        let authenticator = Self {
            tokens: RwLock::new(ActiveTokens::default()),
        };
        authenticator.refresh(store).await?;
        Ok(authenticator)
    }

    /// Reloads the active tokens; a revoked token stops working here.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), crate::store::StoreError> {
        let active = store.active_tokens().await?;
        let mut tokens = ActiveTokens::default();
        for token in active {
            let ActiveToken {
                secret_hash,
                token_id,
                role,
                project,
            } = token;
            let principal = Arc::new(Principal {
                token_id: token_id.clone(),
                role,
                project,
            });
            tokens.by_id.insert(token_id, Arc::clone(&principal));
            tokens.by_hash.insert(secret_hash, principal);
        }
        *self
            .tokens
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = tokens;
        Ok(())
    }

    /// The caller a token secret names, if the token is active (sign-in to the web UI).
    pub fn principal_of_secret(&self, secret: &str) -> Option<Arc<Principal>> {
        self.principal_of_hash(&hash_token(secret))
    }

    /// The caller of a token by the hash of its secret, if the token is active.
    pub fn principal_of_hash(&self, secret_hash: &[u8; 32]) -> Option<Arc<Principal>> {
        self.tokens
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .by_hash
            .get(secret_hash)
            .cloned()
    }

    /// The caller of a token by its id, if the token is still active: a web UI session names
    /// its token, so revoking the token ends its sessions (at the next reload on each server).
    pub fn principal_of_token_id(&self, token_id: &str) -> Option<Arc<Principal>> {
        self.tokens
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .by_id
            .get(token_id)
            .cloned()
    }

    /// Checks that an optional project header (id or name) names the principal's project.
    pub fn check_project(
        principal: &Principal,
        project_header: Option<&str>,
    ) -> Result<(), AuthError> {
        match project_header
            .map(str::trim)
            .filter(|named| !named.is_empty())
        {
            Some(named) if named != principal.project.id && named != principal.project.name => {
                Err(AuthError::WrongProject {
                    named: named.to_owned(),
                    project: principal.project.name.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks that `principal` may do `access`.
    pub fn check_role(principal: &Principal, access: Access) -> Result<(), AuthError> {
        if principal.role.allows(access) {
            return Ok(());
        }
        let needed = match access {
            Access::Ingest => "sending telemetry",
            Access::Read => "reading traces",
            Access::Admin => "administration",
        };
        Err(AuthError::WrongRole {
            role: principal.role.as_str(),
            needed,
        })
    }

    /// Authenticates a request from its `Authorization` value and optional project header.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        project_header: Option<&str>,
        access: Access,
    ) -> Result<Arc<Principal>, AuthError> {
        let secret = token_from_authorization(authorization.ok_or(AuthError::Missing)?)?;
        let principal = self
            .principal_of_secret(&secret)
            .ok_or(AuthError::UnknownToken)?;
        Self::check_project(&principal, project_header)?;
        Self::check_role(&principal, access)?;
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_and_basic() {
        assert_eq!(token_from_authorization("Bearer sh_abc").unwrap(), "sh_abc");
        assert_eq!(
            token_from_authorization("bearer  sh_abc ").unwrap(),
            "sh_abc"
        );
        let basic = format!("Basic {}", BASE64.encode("pk-lf-public:sh_abc"));
        assert_eq!(token_from_authorization(&basic).unwrap(), "sh_abc");
        assert!(token_from_authorization("Token x").is_err());
        assert!(token_from_authorization("Basic !!!").is_err());
        assert!(token_from_authorization("sh_abc").is_err());
    }

    #[test]
    fn roles_grant_what_they_say() {
        assert!(Role::Admin.allows(Access::Ingest));
        assert!(Role::Ingest.allows(Access::Ingest));
        assert!(!Role::Ingest.allows(Access::Read));
        assert!(!Role::Read.allows(Access::Ingest));
        assert!(!Role::Read.allows(Access::Admin));
    }

    #[test]
    fn secrets_are_random_and_hash_stably() {
        let first = generate_token_secret();
        assert_ne!(first, generate_token_secret());
        assert_eq!(first.len(), 51);
        assert_eq!(hash_token(&first), hash_token(&first));
    }

    fn authenticator_with(secret: &str, role: Role) -> Authenticator {
        let principal = Principal {
            token_id: "tok_1".into(),
            role,
            project: Project {
                id: "p1".into(),
                name: "default".into(),
                created_at_unix_nano: 0,
            },
        };
        let principal = Arc::new(principal);
        Authenticator {
            tokens: RwLock::new(ActiveTokens {
                by_hash: HashMap::from([(hash_token(secret), Arc::clone(&principal))]),
                by_id: HashMap::from([("tok_1".to_owned(), principal)]),
            }),
        }
    }

    #[test]
    fn checks_token_role_and_project_header() {
        let auth = authenticator_with("sh_x", Role::Ingest);
        let bearer = Some("Bearer sh_x");
        assert!(auth.authenticate(bearer, None, Access::Ingest).is_ok());
        assert!(
            auth.authenticate(bearer, Some("default"), Access::Ingest)
                .is_ok()
        );
        assert!(
            auth.authenticate(bearer, Some("p1"), Access::Ingest)
                .is_ok()
        );
        assert!(matches!(
            auth.authenticate(bearer, Some("other"), Access::Ingest),
            Err(AuthError::WrongProject { .. })
        ));
        assert!(matches!(
            auth.authenticate(bearer, None, Access::Read),
            Err(AuthError::WrongRole { .. })
        ));
        assert_eq!(
            auth.authenticate(Some("Bearer nope"), None, Access::Ingest)
                .unwrap_err(),
            AuthError::UnknownToken
        );
        assert_eq!(
            auth.authenticate(None, None, Access::Ingest).unwrap_err(),
            AuthError::Missing
        );
        assert_eq!(
            auth.principal_of_token_id("tok_1").unwrap().role,
            Role::Ingest
        );
        assert!(auth.principal_of_token_id("tok_2").is_none());
    }
}
