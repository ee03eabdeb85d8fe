//! `AppState`: the shared, read-only handles every handler receives — settings, pool, clock,
//! token keys, the password hasher, the keyed-HMAC keys and the auditor — built once from
//! `Settings`. Holds infrastructure only: it imports no feature, so every feature can use it.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::audit::Auditor;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::hmac::HmacKey;
use crate::crypto::jwt::{JwtAlgorithm, JwtConfig, JwtKey, JwtKeys, KeyMaterial};
use crate::crypto::keyring::KeyRing;
use crate::crypto::passwords::{PasswordHasher, PasswordParams};
use crate::db::Pool;
use crate::error::AppError;

/// Shared, read-only state handed to handlers.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub clock: Clock,
    pub jwt: Arc<JwtKeys>,
    pub hasher: PasswordHasher,
    pub auditor: Auditor,
    /// HMAC-SHA256 keyed with API_KEY_HASH_SECRET: what API keys are stored and found as.
    pub api_key_hmac: HmacKey,
    /// The console's CSRF key, derived from SESSION_SECRET.
    pub csrf_key: HmacKey,
    /// The master keys that wrap the per-user data keys (ENCRYPTION_KEY + ENCRYPTION_KEYS_PREVIOUS).
    pub keyring: Arc<KeyRing>,
    /// The live-event bus between instances (started by the server; inert in the CLI).
    pub bus: Arc<crate::bus::Bus>,
}

impl AppState {
    pub fn new(settings: Arc<Settings>, pool: Pool, clock: Clock) -> Result<AppState, AppError> {
        Ok(AppState {
            jwt: Arc::new(jwt_keys(&settings)?),
            hasher: password_hasher(&settings)?,
            api_key_hmac: api_key_hmac(&settings)?,
            csrf_key: csrf_key(&settings)?,
            keyring: Arc::new(key_ring(&settings)?),
            bus: Arc::new(crate::bus::Bus::new(&settings)),
            auditor: {
                let clock = clock.clone();
                Auditor::from_settings(&settings)
                    .map_err(|e| AppError::internal(anyhow::anyhow!("audit log: {e}")))?
                    .with_clock(move || clock.now())
            },
            settings,
            pool,
            clock,
        })
    }
}

/// The argon2id hasher with the configured parameters and bounds (also the CLI's).
pub fn password_hasher(settings: &Settings) -> Result<PasswordHasher, AppError> {
    PasswordHasher::new(
        PasswordParams {
            m_cost: settings.auth.argon2_memory_kib,
            t_cost: settings.auth.argon2_iterations,
            p_cost: settings.auth.argon2_parallelism,
        },
        settings.auth.hash_concurrency,
        settings.auth.hash_queue,
    )
    .map_err(|e| AppError::internal(anyhow::anyhow!("password hasher: {e}")))
}

/// A configured secret's key, or — where allowed — an ephemeral random one. Production refuses
/// to start without the secret (check-config says so first); development and test warn, and
/// whatever depends on the key stops working at the next restart.
fn secret_key(
    settings: &Settings,
    secret: Option<&SecretString>,
    name: &str,
    what: &str,
) -> Result<HmacKey, AppError> {
    match secret {
        Some(secret) => Ok(HmacKey::new(secret.expose_secret().as_bytes())),
        None if settings.is_production() => Err(AppError::internal(anyhow::anyhow!(
            "{name} is not set (generate one with `rampart keygen`)"
        ))),
        None => {
            tracing::warn!("{name} is not set: {what} use an EPHEMERAL random key");
            HmacKey::random().map_err(AppError::internal)
        }
    }
}

/// The master key ring: ENCRYPTION_KEY (newest) and ENCRYPTION_KEYS_PREVIOUS. Production refuses
/// to start without ENCRYPTION_KEY; development and test use an ephemeral key (and say so):
/// whatever is encrypted under it is unreadable after a restart.
pub fn key_ring(settings: &Settings) -> Result<KeyRing, AppError> {
    let secrets = &settings.secrets;
    match &secrets.encryption_key {
        Some(key) => KeyRing::new(key, &secrets.encryption_keys_previous),
        None if settings.is_production() => {
            return Err(AppError::internal(anyhow::anyhow!(
                "ENCRYPTION_KEY is not set (generate one with `rampart keygen`)"
            )));
        }
        None => {
            tracing::warn!(
                "ENCRYPTION_KEY is not set: conversations are encrypted under an EPHEMERAL key \
                 and are unreadable after this process exits"
            );
            KeyRing::ephemeral()
        }
    }
    .map_err(|e| AppError::internal(anyhow::anyhow!("encryption keys: {e}")))
}

/// HMAC key of API keys: API_KEY_HASH_SECRET's UTF-8 bytes as written (DESIGN §3).
fn api_key_hmac(settings: &Settings) -> Result<HmacKey, AppError> {
    secret_key(
        settings,
        settings.secrets.api_key_hash_secret.as_ref(),
        "API_KEY_HASH_SECRET",
        "API keys are hashed with an EPHEMERAL key and stop working when this process exits; they",
    )
}

/// The console's CSRF key: derived from SESSION_SECRET, domain-separated from any other use.
fn csrf_key(settings: &Settings) -> Result<HmacKey, AppError> {
    Ok(secret_key(
        settings,
        settings.secrets.session_secret.as_ref(),
        "SESSION_SECRET",
        "console CSRF tokens",
    )?
    .derive(b"rampart console csrf v1"))
}

/// The access-token keys from configuration: HS256 with JWT_SECRET (plus JWT_PREVIOUS_SECRETS for
/// verification during rotation), or EdDSA/ES256 from PEM files (JWT_PRIVATE_KEY_FILE signs;
/// JWT_PUBLIC_KEY_FILES verifies, newest first).
pub fn jwt_keys(settings: &Settings) -> Result<JwtKeys, AppError> {
    let auth = &settings.auth;
    let algorithm: JwtAlgorithm = auth
        .jwt_algorithm
        .parse()
        .map_err(|e| AppError::internal(anyhow::anyhow!("JWT_ALGORITHM: {e}")))?;
    let config = JwtConfig {
        algorithm,
        issuer: auth.jwt_issuer.clone(),
        audience: auth.jwt_audience.clone(),
        ttl: auth.access_token_ttl,
        leeway_seconds: 30,
    };
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| {
            AppError::internal(anyhow::anyhow!(
                "cannot read key file {}: {e}",
                path.display()
            ))
        })
    };
    let keys = match algorithm {
        JwtAlgorithm::Hs256 => {
            let secret = match &settings.secrets.jwt_secret {
                Some(secret) => secret.clone(),
                // Development/test without a JWT_SECRET (check-config already warned): an
                // ephemeral key, so nothing verifies across restarts.
                None => SecretString::from(
                    crate::crypto::random::secret_string().map_err(AppError::internal)?,
                ),
            };
            std::iter::once(secret)
                .chain(auth.jwt_previous_secrets.iter().cloned())
                .map(JwtKey::hmac)
                .collect()
        }
        JwtAlgorithm::EdDsa | JwtAlgorithm::Es256 => {
            let private = auth.jwt_private_key_file.as_deref().ok_or_else(|| {
                AppError::internal(anyhow::anyhow!(
                    "JWT_PRIVATE_KEY_FILE is required for {algorithm}"
                ))
            })?;
            let Some(((kid, public), older)) = auth.jwt_public_key_files.split_first() else {
                return Err(AppError::internal(anyhow::anyhow!(
                    "JWT_PUBLIC_KEY_FILES (kid=path, newest first) is required for {algorithm}"
                )));
            };
            let mut keys = vec![JwtKey {
                kid: kid.clone(),
                material: KeyMaterial::Pem {
                    private_pem: Some(read(private)?),
                    public_pem: read(public)?,
                },
            }];
            for (kid, path) in older {
                keys.push(JwtKey {
                    kid: kid.clone(),
                    material: KeyMaterial::Pem {
                        private_pem: None,
                        public_pem: read(path)?,
                    },
                });
            }
            keys
        }
    };
    JwtKeys::new(config, keys).map_err(|e| AppError::internal(anyhow::anyhow!("JWT keys: {e}")))
}
