//! Access tokens (DESIGN §3 "access token"): JWTs signed with the one configured algorithm —
//! HS256, EdDSA (Ed25519) or ES256 — under a set of `kid`-named keys for rotation.
//!
//! Must not: trust the token's `alg`, fetch or use a key named by the token (`jku`, `x5u`, `jwk`,
//! `x5c` are ignored; this module never touches the network), accept RS256/`none`, allow more than
//! 30 s of leeway, or tell the caller *why* a token failed (one opaque [`JwtError::Invalid`]).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// The only `typ` claim an access token may carry.
pub const ACCESS_TYP: &str = "access";
/// The most clock skew tolerated on `exp`/`nbf`.
pub const MAX_LEEWAY_SECONDS: u64 = 30;
/// Longer than any token we issue by far; refuses absurd input before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;
const REQUIRED_CLAIMS: [&str; 5] = ["exp", "nbf", "iss", "aud", "sub"];

/// The claims of an access token. `sub` is the user id, `sid` the session id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub role: String,
    pub typ: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// How the user authenticated (RFC 8176 values: `pwd`, `otp`, `rec`…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The assurance level (`aal1`/`aal2`, NIST 800-63B), as `acr` (OIDC) and `aal` (as Supabase
    /// names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aal: Option<String>,
}

/// How a session was authenticated: its assurance level (1: one factor, 2: two) and the methods
/// (`amr`) that proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assurance {
    pub aal: u8,
    pub amr: Vec<String>,
}

impl Assurance {
    /// A password alone.
    pub fn password() -> Assurance {
        Assurance {
            aal: 1,
            amr: vec!["pwd".into()],
        }
    }

    /// `aal1` / `aal2`.
    pub fn acr(&self) -> String {
        format!("aal{}", self.aal.clamp(1, 2))
    }
}

/// The signature algorithms rampart issues tokens with. RS256 is deliberately absent (ASVS 5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    EdDsa,
    Es256,
}

impl JwtAlgorithm {
    /// The JOSE name (`HS256`, `EdDSA`, `ES256`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::EdDsa => "EdDSA",
            JwtAlgorithm::Es256 => "ES256",
        }
    }

    fn jose(self) -> Algorithm {
        match self {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::EdDsa => Algorithm::EdDSA,
            JwtAlgorithm::Es256 => Algorithm::ES256,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwtAlgorithm {
    type Err = JwtError;

    /// Exactly `HS256`, `EdDSA` or `ES256` (case-sensitive, as in JOSE); anything else — RS256,
    /// `none`, other casings — is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "EdDSA" => Ok(JwtAlgorithm::EdDsa),
            "ES256" => Ok(JwtAlgorithm::Es256),
            other => Err(JwtError::Config(format!(
                "JWT algorithm {other:?} is not supported (use HS256, EdDSA or ES256)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    pub issuer: String,
    pub audience: String,
    /// Lifetime of a new token (whole seconds; at least 1 s).
    pub ttl: Duration,
    /// Clock skew tolerated on `exp`/`nbf`; at most [`MAX_LEEWAY_SECONDS`].
    pub leeway_seconds: u64,
}

/// A key's material. HS256 uses the UTF-8 bytes of the secret exactly as written (never decoded).
/// EdDSA/ES256 use PEM: the private key as PKCS#8 (`PRIVATE KEY`; for ES256 also SEC1
/// `EC PRIVATE KEY`), the public key as SPKI (`PUBLIC KEY`). A key without private material only
/// verifies (a retired key during rotation).
pub enum KeyMaterial {
    Hmac {
        secret: SecretString,
    },
    Pem {
        private_pem: Option<String>,
        public_pem: String,
    },
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Hmac { .. } => f
                .debug_struct("Hmac")
                .field("secret", &"***REDACTED***")
                .finish(),
            KeyMaterial::Pem {
                private_pem,
                public_pem,
            } => f
                .debug_struct("Pem")
                .field(
                    "private_pem",
                    &private_pem.as_ref().map(|_| "***REDACTED***"),
                )
                .field("public_pem", public_pem)
                .finish(),
        }
    }
}

/// One named key. An empty `kid` is filled in by [`JwtKeys::new`]: for HS256 `"hs256-"` + the first
/// 12 hex characters of SHA-256(secret), for PEM keys the RFC 7638 JWK thumbprint.
#[derive(Debug)]
pub struct JwtKey {
    pub kid: String,
    pub material: KeyMaterial,
}

impl JwtKey {
    /// An HS256 key with the default kid.
    pub fn hmac(secret: SecretString) -> JwtKey {
        JwtKey {
            kid: hs256_kid(&secret),
            material: KeyMaterial::Hmac { secret },
        }
    }
}

/// The default kid of an HS256 key: `"hs256-"` + the first 12 hex chars of SHA-256(secret bytes).
pub fn hs256_kid(secret: &SecretString) -> String {
    let digest = Sha256::digest(secret.expose_secret().as_bytes());
    let hex = hex::encode(digest.as_slice());
    format!("hs256-{}", hex.get(..12).unwrap_or(&hex))
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Any verification failure, deliberately without detail (the HTTP layer answers one 401).
    #[error("invalid token")]
    Invalid,
    #[error("JWT configuration error: {0}")]
    Config(String),
}

fn config_error(message: impl Into<String>) -> JwtError {
    JwtError::Config(message.into())
}

/// The configured signing key and every verification key, ready to use. Build once at start.
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: JwtAlgorithm,
    issuer: String,
    audience: String,
    ttl: Duration,
    ttl_seconds: i64,
    signing_kid: String,
    signing_key: EncodingKey,
    /// kid → key. A kid from a token is only ever used as a key into this map.
    verifying: HashMap<String, DecodingKey>,
    /// jsonwebtoken's full validation, `exp`/`nbf` against the system clock.
    validation: Validation,
    /// The same without the time checks, for [`JwtKeys::verify_at`] (which does them itself).
    untimed_validation: Validation,
    leeway_seconds: i64,
    jwks: Option<serde_json::Value>,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.verifying.keys().collect();
        kids.sort();
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("signing_kid", &self.signing_kid)
            .field("verifying_kids", &kids)
            .finish_non_exhaustive()
    }
}

/// A key after parsing: what jsonwebtoken needs, plus its public JWK (asymmetric keys only).
struct ParsedKey {
    kid: String,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    public_jwk: Option<serde_json::Map<String, serde_json::Value>>,
}

impl JwtKeys {
    /// `keys[0]` signs (it must have private material); every key verifies. Refuses a leeway over
    /// 30 s, an empty issuer/audience, a zero ttl, duplicate kids, and any key that is not of the
    /// configured algorithm (mixed algorithms).
    pub fn new(config: JwtConfig, keys: Vec<JwtKey>) -> Result<Self, JwtError> {
        if config.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(config_error(format!(
                "JWT leeway must be at most {MAX_LEEWAY_SECONDS} seconds, not {}",
                config.leeway_seconds
            )));
        }
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err(config_error("JWT issuer and audience must not be empty"));
        }
        let ttl_seconds = i64::try_from(config.ttl.as_secs())
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| config_error("JWT ttl must be between 1 second and i64::MAX seconds"))?;
        if keys.is_empty() {
            return Err(config_error("at least one JWT key is required"));
        }

        let mut parsed = Vec::with_capacity(keys.len());
        for key in keys {
            parsed.push(parse_key(config.algorithm, key)?);
        }
        let mut verifying = HashMap::with_capacity(parsed.len());
        let mut jwks = Vec::new();
        let mut signing = None;
        for (index, key) in parsed.into_iter().enumerate() {
            if verifying.contains_key(&key.kid) {
                return Err(config_error(format!("duplicate JWT kid {:?}", key.kid)));
            }
            if index == 0 {
                let encoding = key.encoding.clone().ok_or_else(|| {
                    config_error("the first JWT key signs and needs its private key")
                })?;
                signing = Some((key.kid.clone(), encoding));
            }
            if let Some(jwk) = key.public_jwk {
                jwks.push(serde_json::Value::Object(jwk));
            }
            verifying.insert(key.kid, key.decoding);
        }
        let (signing_kid, signing_key) =
            signing.ok_or_else(|| config_error("at least one JWT key is required"))?;

        let mut validation = Validation::new(config.algorithm.jose());
        validation.leeway = config.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.reject_tokens_expiring_in_less_than = 0;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_required_spec_claims(&REQUIRED_CLAIMS);
        let mut untimed_validation = validation.clone();
        untimed_validation.validate_exp = false;
        untimed_validation.validate_nbf = false;
        // ≤ 30, checked above.
        let leeway_seconds = i64::try_from(config.leeway_seconds).unwrap_or(0);

        let jwks = match config.algorithm {
            JwtAlgorithm::Hs256 => None,
            JwtAlgorithm::EdDsa | JwtAlgorithm::Es256 => Some(json!({ "keys": jwks })),
        };
        let keys = JwtKeys {
            algorithm: config.algorithm,
            issuer: config.issuer,
            audience: config.audience,
            ttl: config.ttl,
            ttl_seconds,
            signing_kid,
            signing_key,
            verifying,
            validation,
            untimed_validation,
            leeway_seconds,
            jwks,
        };
        // Prove the pair works end to end now rather than at the first login.
        let (token, _) = keys.sign(
            Uuid::nil(),
            Uuid::nil(),
            "self-test",
            OffsetDateTime::now_utc(),
        )?;
        keys.verify(&token).map_err(|_| {
            config_error("the signing JWT key does not verify its own token (key pair mismatch?)")
        })?;
        Ok(keys)
    }

    /// A new access token for `sub`/`sid`: `typ` "access", `jti` a UUID v7, `iat` = `nbf` = `now`,
    /// `exp` = `now` + ttl; the header carries the configured `alg` and the signing `kid`.
    pub fn sign(
        &self,
        sub: Uuid,
        sid: Uuid,
        role: &str,
        now: OffsetDateTime,
    ) -> Result<(String, Claims), JwtError> {
        self.sign_assured(sub, sid, role, now, &Assurance::password())
    }

    /// [`JwtKeys::sign`] for a session authenticated as `assurance` says (`amr`, `acr`, `aal`).
    pub fn sign_assured(
        &self,
        sub: Uuid,
        sid: Uuid,
        role: &str,
        now: OffsetDateTime,
        assurance: &Assurance,
    ) -> Result<(String, Claims), JwtError> {
        let iat = now.unix_timestamp();
        let exp = iat
            .checked_add(self.ttl_seconds)
            .ok_or_else(|| config_error("token expiry overflows"))?;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.to_string(),
            sid: sid.to_string(),
            role: role.to_string(),
            typ: ACCESS_TYP.to_string(),
            iat,
            nbf: iat,
            exp,
            jti: Uuid::now_v7().to_string(),
            amr: assurance.amr.clone(),
            acr: Some(assurance.acr()),
            aal: Some(assurance.acr()),
        };
        let mut header = Header::new(self.algorithm.jose());
        header.kid = Some(self.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|e| config_error(format!("signing the access token failed: {e}")))?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, kid, `exp`/`nbf` (with the configured leeway), `iss`, `aud`,
    /// the presence of `sub`, `typ == "access"`, and that `sub`/`sid` are UUIDs. Every failure is
    /// [`JwtError::Invalid`].
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_inner(token, None).map_err(rejected)
    }

    /// As [`JwtKeys::verify`], but `exp`/`nbf` are judged against `now` — the service's clock, which
    /// tests move forward — instead of the system clock. Same leeway (≤ 30 s); `exp` and `nbf` are
    /// still required and must be numbers.
    pub fn verify_at(&self, token: &str, now: OffsetDateTime) -> Result<Claims, JwtError> {
        self.verify_inner(token, Some(now)).map_err(rejected)
    }

    fn verify_inner(
        &self,
        token: &str,
        now: Option<OffsetDateTime>,
    ) -> Result<Claims, &'static str> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("too long");
        }
        // The header is read unverified, and only for `alg` (compared with the configuration,
        // never obeyed) and `kid` (a map key). jku/x5u/jwk/x5c are never looked at.
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed header")?;
        if header.alg != self.algorithm.jose() {
            return Err("unexpected alg");
        }
        if header.crit.is_some() {
            return Err("crit header");
        }
        let key = match header.kid.as_deref() {
            Some(kid) => self.verifying.get(kid),
            None if self.verifying.len() == 1 => self.verifying.values().next(),
            None => None,
        }
        .ok_or("unknown kid")?;
        let validation = match now {
            None => &self.validation,
            Some(_) => &self.untimed_validation,
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|_| "signature or claims invalid")?;
        if let Some(now) = now {
            // The rules jsonwebtoken applies, against our clock: expired once `exp` is more than
            // `leeway` in the past; early while `nbf` is more than `leeway` in the future.
            let now = now.unix_timestamp();
            if data.claims.exp.saturating_add(self.leeway_seconds) < now {
                return Err("expired");
            }
            if data.claims.nbf.saturating_sub(self.leeway_seconds) > now {
                return Err("not yet valid");
            }
        }
        if data.claims.typ != ACCESS_TYP {
            return Err("not an access token");
        }
        // We only ever issue UUIDs here; anything else was not made by us.
        if Uuid::parse_str(&data.claims.sub).is_err() || Uuid::parse_str(&data.claims.sid).is_err()
        {
            return Err("sub or sid is not a uuid");
        }
        Ok(data.claims)
    }

    /// `{"keys": [...]}` with public members only (kty, crv, x[, y], kid, alg, use "sig"), for
    /// `/.well-known/jwks.json`; None for HS256.
    pub fn jwks(&self) -> Option<serde_json::Value> {
        self.jwks.clone()
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// The kid new tokens are signed with.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }
}

fn rejected(reason: &'static str) -> JwtError {
    tracing::debug!(reason, "access token rejected");
    JwtError::Invalid
}

fn parse_key(algorithm: JwtAlgorithm, key: JwtKey) -> Result<ParsedKey, JwtError> {
    let JwtKey { kid, material } = key;
    match (algorithm, material) {
        (JwtAlgorithm::Hs256, KeyMaterial::Hmac { secret }) => {
            if secret.expose_secret().is_empty() {
                return Err(config_error("the HS256 secret must not be empty"));
            }
            let bytes = secret.expose_secret().as_bytes();
            let kid = if kid.is_empty() {
                hs256_kid(&secret)
            } else {
                kid
            };
            Ok(ParsedKey {
                kid,
                encoding: Some(EncodingKey::from_secret(bytes)),
                decoding: DecodingKey::from_secret(bytes),
                public_jwk: None,
            })
        }
        (
            JwtAlgorithm::EdDsa,
            KeyMaterial::Pem {
                private_pem,
                public_pem,
            },
        ) => parse_ed25519(kid, private_pem.as_deref(), &public_pem),
        (
            JwtAlgorithm::Es256,
            KeyMaterial::Pem {
                private_pem,
                public_pem,
            },
        ) => parse_p256(kid, private_pem.as_deref(), &public_pem),
        (JwtAlgorithm::Hs256, KeyMaterial::Pem { .. }) => Err(config_error(
            "HS256 takes a secret, not PEM keys (mixed algorithms)",
        )),
        (JwtAlgorithm::EdDsa | JwtAlgorithm::Es256, KeyMaterial::Hmac { .. }) => Err(config_error(
            format!("{algorithm} takes PEM keys, not a secret (mixed algorithms)"),
        )),
    }
}

fn parse_ed25519(
    kid: String,
    private_pem: Option<&str>,
    public_pem: &str,
) -> Result<ParsedKey, JwtError> {
    let public = ed25519_dalek::VerifyingKey::from_public_key_pem(public_pem.trim())
        .map_err(|e| config_error(format!("EdDSA public key is not an Ed25519 SPKI PEM: {e}")))?;
    if public.is_weak() {
        return Err(config_error(
            "EdDSA public key is a weak (small-order) point",
        ));
    }
    let encoding = match private_pem {
        None => None,
        Some(pem) => {
            let private = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| {
                config_error(format!(
                    "EdDSA private key is not an Ed25519 PKCS#8 PEM: {e}"
                ))
            })?;
            if private.verifying_key() != public {
                return Err(config_error("EdDSA private and public keys are not a pair"));
            }
            let der = private
                .to_pkcs8_der()
                .map_err(|e| config_error(format!("EdDSA private key: {e}")))?;
            Some(EncodingKey::from_ed_der(der.as_bytes()))
        }
    };
    let x = URL_SAFE_NO_PAD.encode(public.as_bytes());
    let decoding = DecodingKey::from_ed_components(&x)
        .map_err(|e| config_error(format!("EdDSA public key: {e}")))?;
    let kid = if kid.is_empty() {
        // RFC 7638: members in lexicographic order, no whitespace.
        thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#))
    } else {
        kid
    };
    let mut jwk = serde_json::Map::new();
    jwk.insert("kty".into(), "OKP".into());
    jwk.insert("crv".into(), "Ed25519".into());
    jwk.insert("x".into(), x.into());
    jwk.insert("kid".into(), kid.clone().into());
    jwk.insert("alg".into(), "EdDSA".into());
    jwk.insert("use".into(), "sig".into());
    Ok(ParsedKey {
        kid,
        encoding,
        decoding,
        public_jwk: Some(jwk),
    })
}

fn parse_p256(
    kid: String,
    private_pem: Option<&str>,
    public_pem: &str,
) -> Result<ParsedKey, JwtError> {
    let public = p256::PublicKey::from_public_key_pem(public_pem.trim())
        .map_err(|e| config_error(format!("ES256 public key is not a P-256 SPKI PEM: {e}")))?;
    let encoding = match private_pem {
        None => None,
        Some(pem) => {
            let pem = pem.trim();
            let private = p256::SecretKey::from_pkcs8_pem(pem)
                .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
                .map_err(|_| config_error("ES256 private key is not a P-256 PKCS#8 or SEC1 PEM"))?;
            if private.public_key() != public {
                return Err(config_error("ES256 private and public keys are not a pair"));
            }
            let der = private
                .to_pkcs8_der()
                .map_err(|e| config_error(format!("ES256 private key: {e}")))?;
            Some(EncodingKey::from_ec_der(der.as_bytes()))
        }
    };
    let point = public.to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(config_error("ES256 public key is the point at infinity"));
    };
    let x = URL_SAFE_NO_PAD.encode(x);
    let y = URL_SAFE_NO_PAD.encode(y);
    let decoding = DecodingKey::from_ec_components(&x, &y)
        .map_err(|e| config_error(format!("ES256 public key: {e}")))?;
    let kid = if kid.is_empty() {
        thumbprint(&format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ))
    } else {
        kid
    };
    let mut jwk = serde_json::Map::new();
    jwk.insert("kty".into(), "EC".into());
    jwk.insert("crv".into(), "P-256".into());
    jwk.insert("x".into(), x.into());
    jwk.insert("y".into(), y.into());
    jwk.insert("kid".into(), kid.clone().into());
    jwk.insert("alg".into(), "ES256".into());
    jwk.insert("use".into(), "sig".into());
    Ok(ParsedKey {
        kid,
        encoding,
        decoding,
        public_jwk: Some(jwk),
    })
}

fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_jwk.as_bytes()).as_slice())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Instant;

    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::Signer as _;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
    use hmac::{KeyInit as _, Mac as _};
    use serde_json::Value;

    use super::*;

    const ISS: &str = "https://rampart.test";
    const AUD: &str = "rampart-api";
    const HS_SECRET: &str = "this-is-a-test-secret-of-more-than-32-bytes!";

    // ---------- keys and configurations ----------

    fn random32() -> [u8; 32] {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("rng");
        bytes
    }

    struct EdPair {
        signing: ed25519_dalek::SigningKey,
        private_pem: String,
        public_pem: String,
        public_der: Vec<u8>,
    }

    fn ed_pair() -> EdPair {
        let signing = ed25519_dalek::SigningKey::from_bytes(&random32());
        let private_pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pkcs8")
            .to_string();
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("spki");
        let public_der = signing
            .verifying_key()
            .to_public_key_der()
            .expect("spki der")
            .into_vec();
        EdPair {
            signing,
            private_pem,
            public_pem,
            public_der,
        }
    }

    struct EcPair {
        secret: p256::SecretKey,
        private_pem: String,
        public_pem: String,
        public_der: Vec<u8>,
    }

    fn ec_pair() -> EcPair {
        let secret = loop {
            if let Ok(secret) = p256::SecretKey::from_slice(&random32()) {
                break secret;
            }
        };
        let private_pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pkcs8")
            .to_string();
        let public_pem = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("spki");
        let public_der = secret
            .public_key()
            .to_public_key_der()
            .expect("spki der")
            .into_vec();
        EcPair {
            secret,
            private_pem,
            public_pem,
            public_der,
        }
    }

    fn config(algorithm: JwtAlgorithm) -> JwtConfig {
        JwtConfig {
            algorithm,
            issuer: ISS.into(),
            audience: AUD.into(),
            ttl: Duration::from_secs(15 * 60),
            leeway_seconds: 30,
        }
    }

    fn hs_keys() -> JwtKeys {
        JwtKeys::new(
            config(JwtAlgorithm::Hs256),
            vec![JwtKey::hmac(SecretString::from(HS_SECRET))],
        )
        .expect("keys")
    }

    fn pem_key(kid: &str, private_pem: Option<&str>, public_pem: &str) -> JwtKey {
        JwtKey {
            kid: kid.into(),
            material: KeyMaterial::Pem {
                private_pem: private_pem.map(str::to_string),
                public_pem: public_pem.to_string(),
            },
        }
    }

    fn ed_keys(pair: &EdPair, kid: &str) -> JwtKeys {
        JwtKeys::new(
            config(JwtAlgorithm::EdDsa),
            vec![pem_key(kid, Some(&pair.private_pem), &pair.public_pem)],
        )
        .expect("keys")
    }

    fn ec_keys(pair: &EcPair, kid: &str) -> JwtKeys {
        JwtKeys::new(
            config(JwtAlgorithm::Es256),
            vec![pem_key(kid, Some(&pair.private_pem), &pair.public_pem)],
        )
        .expect("keys")
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn issue(keys: &JwtKeys) -> (String, Claims) {
        keys.sign(Uuid::now_v7(), Uuid::now_v7(), "team_member", now())
            .expect("sign")
    }

    /// Why `verify` refused the token (tests only: callers only ever see `JwtError::Invalid`).
    fn reason(keys: &JwtKeys, token: &str) -> &'static str {
        assert!(matches!(keys.verify(token), Err(JwtError::Invalid)));
        keys.verify_inner(token, None)
            .expect_err("token was accepted")
    }

    fn assert_invalid(keys: &JwtKeys, token: &str, what: &str) {
        assert!(
            matches!(keys.verify(token), Err(JwtError::Invalid)),
            "{what}: expected rejection of {token}"
        );
    }

    // ---------- forging by hand ----------

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn signing_input(header: &Value, payload: &Value) -> String {
        format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        )
    }

    fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    fn forge_hs256(key: &[u8], header: &Value, payload: &Value) -> String {
        let input = signing_input(header, payload);
        let signature = hmac_sha256(key, input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }

    fn forge_ed(key: &ed25519_dalek::SigningKey, header: &Value, payload: &Value) -> String {
        let input = signing_input(header, payload);
        let signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    fn forge_es(key: &p256::SecretKey, header: &Value, payload: &Value) -> String {
        let input = signing_input(header, payload);
        let signing = p256::ecdsa::SigningKey::from(key);
        let signature: p256::ecdsa::Signature = signing.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    /// A payload that would pass every claim check.
    fn good_payload() -> Value {
        let now = now().unix_timestamp();
        json!({
            "iss": ISS, "aud": AUD, "sub": Uuid::now_v7().to_string(), "sid": Uuid::now_v7().to_string(),
            "role": "admin", "typ": "access", "iat": now, "nbf": now, "exp": now + 600,
            "jti": Uuid::now_v7().to_string(),
        })
    }

    fn hs_header(keys: &JwtKeys) -> Value {
        json!({"alg": "HS256", "typ": "JWT", "kid": keys.signing_kid()})
    }

    /// A throw-away RSA key made at test time (never committed): PKCS#1 DER from `openssl`.
    fn rsa_private_der() -> Vec<u8> {
        let output = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "2048"])
            .output()
            .expect("openssl is needed to make a throw-away RSA key");
        assert!(output.status.success(), "openssl genrsa failed");
        let pem = String::from_utf8(output.stdout).expect("pem");
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        STANDARD.decode(body).expect("pem base64")
    }

    // ---------- algorithm and configuration ----------

    #[test]
    fn algorithm_names() {
        assert_eq!(
            "HS256".parse::<JwtAlgorithm>().expect("hs"),
            JwtAlgorithm::Hs256
        );
        assert_eq!(
            "EdDSA".parse::<JwtAlgorithm>().expect("ed"),
            JwtAlgorithm::EdDsa
        );
        assert_eq!(
            "ES256".parse::<JwtAlgorithm>().expect("es"),
            JwtAlgorithm::Es256
        );
        for bad in [
            "RS256", "PS256", "none", "None", "hs256", "EDDSA", "ES384", "HS512", "",
        ] {
            assert!(bad.parse::<JwtAlgorithm>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hs256_kid_default() {
        let secret = SecretString::from(HS_SECRET);
        let kid = hs256_kid(&secret);
        let expected = hex::encode(Sha256::digest(HS_SECRET.as_bytes()).as_slice());
        assert_eq!(kid, format!("hs256-{}", &expected[..12]));
        // An empty kid is filled in the same way.
        let keys = JwtKeys::new(
            config(JwtAlgorithm::Hs256),
            vec![JwtKey {
                kid: String::new(),
                material: KeyMaterial::Hmac { secret },
            }],
        )
        .expect("keys");
        assert_eq!(keys.signing_kid(), kid);
    }

    #[test]
    fn hs256_uses_the_secret_as_written_not_base64_decoded() {
        // A secret that is also valid base64: it must be used as its UTF-8 bytes.
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==";
        let keys = JwtKeys::new(
            config(JwtAlgorithm::Hs256),
            vec![JwtKey::hmac(SecretString::from(secret))],
        )
        .expect("keys");
        let (token, _) = issue(&keys);
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        assert_eq!(
            signature,
            b64(&hmac_sha256(secret.as_bytes(), input.as_bytes()))
        );
    }

    #[test]
    fn configuration_is_checked() {
        let ed = ed_pair();
        let ec = ec_pair();
        let hs = || JwtKey::hmac(SecretString::from(HS_SECRET));
        let mut lax = config(JwtAlgorithm::Hs256);
        lax.leeway_seconds = 31;
        assert!(JwtKeys::new(lax, vec![hs()]).is_err(), "leeway > 30");
        let mut zero = config(JwtAlgorithm::Hs256);
        zero.ttl = Duration::from_millis(500);
        assert!(JwtKeys::new(zero, vec![hs()]).is_err(), "ttl < 1 s");
        let mut no_iss = config(JwtAlgorithm::Hs256);
        no_iss.issuer.clear();
        assert!(JwtKeys::new(no_iss, vec![hs()]).is_err(), "empty issuer");
        assert!(
            JwtKeys::new(config(JwtAlgorithm::Hs256), vec![]).is_err(),
            "no keys"
        );
        assert!(
            JwtKeys::new(config(JwtAlgorithm::Hs256), vec![hs(), hs()]).is_err(),
            "duplicate kid"
        );
        assert!(
            JwtKeys::new(
                config(JwtAlgorithm::Hs256),
                vec![JwtKey::hmac(SecretString::from(""))]
            )
            .is_err(),
            "empty secret"
        );
        // Mixed algorithms.
        assert!(
            JwtKeys::new(
                config(JwtAlgorithm::Hs256),
                vec![pem_key("e", Some(&ed.private_pem), &ed.public_pem)]
            )
            .is_err()
        );
        assert!(JwtKeys::new(config(JwtAlgorithm::EdDsa), vec![hs()]).is_err());
        assert!(
            JwtKeys::new(
                config(JwtAlgorithm::EdDsa),
                vec![
                    pem_key("e", Some(&ed.private_pem), &ed.public_pem),
                    pem_key("c", None, &ec.public_pem)
                ]
            )
            .is_err()
        );
        assert!(
            JwtKeys::new(
                config(JwtAlgorithm::Es256),
                vec![pem_key("e", Some(&ed.private_pem), &ed.public_pem)]
            )
            .is_err()
        );
        // The signing key needs its private half; private and public must be a pair.
        assert!(
            JwtKeys::new(
                config(JwtAlgorithm::EdDsa),
                vec![pem_key("e", None, &ed.public_pem)]
            )
            .is_err()
        );
        let other = ed_pair();
        assert!(
            JwtKeys::new(
                config(JwtAlgorithm::EdDsa),
                vec![pem_key("e", Some(&ed.private_pem), &other.public_pem)]
            )
            .is_err()
        );
        let other = ec_pair();
        assert!(
            JwtKeys::new(
                config(JwtAlgorithm::Es256),
                vec![pem_key("c", Some(&ec.private_pem), &other.public_pem)]
            )
            .is_err()
        );
        assert!(
            JwtKeys::new(
                config(JwtAlgorithm::Es256),
                vec![pem_key("c", Some("not a pem"), &ec.public_pem)]
            )
            .is_err()
        );
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let ed = ed_pair();
        let key = pem_key("e", Some(&ed.private_pem), &ed.public_pem);
        let printed = format!("{key:?}");
        assert!(!printed.contains("PRIVATE KEY"), "{printed}");
        let printed = format!("{:?}", JwtKey::hmac(SecretString::from(HS_SECRET)));
        assert!(!printed.contains(HS_SECRET), "{printed}");
        let printed = format!("{:?}", hs_keys());
        assert!(!printed.contains(HS_SECRET), "{printed}");
    }

    // ---------- round trips ----------

    #[test]
    fn hs256_round_trip() {
        let keys = hs_keys();
        let sub = Uuid::now_v7();
        let sid = Uuid::now_v7();
        let at = now();
        let (token, claims) = keys.sign(sub, sid, "team_member", at).expect("sign");
        assert_eq!(claims.sub, sub.to_string());
        assert_eq!(claims.sid, sid.to_string());
        assert_eq!(claims.typ, "access");
        assert_eq!(claims.iss, ISS);
        assert_eq!(claims.aud, AUD);
        assert_eq!(claims.iat, at.unix_timestamp());
        assert_eq!(claims.nbf, claims.iat);
        assert_eq!(claims.exp, claims.iat + 900);
        let jti = Uuid::parse_str(&claims.jti).expect("jti is a uuid");
        assert_eq!(jti.get_version_num(), 7);
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some(keys.signing_kid()));
        assert_eq!(keys.verify(&token).expect("verify"), claims);
        assert_eq!(keys.ttl(), Duration::from_secs(900));
        assert!(keys.jwks().is_none());
    }

    #[test]
    fn eddsa_round_trip() {
        let pair = ed_pair();
        let keys = ed_keys(&pair, "ed-1");
        let (token, claims) = issue(&keys);
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some("ed-1"));
        assert_eq!(keys.verify(&token).expect("verify"), claims);
        // A key set where it is only a verification key (public PEM only) accepts it too.
        let other = ed_pair();
        let verifier = JwtKeys::new(
            config(JwtAlgorithm::EdDsa),
            vec![
                pem_key("ed-2", Some(&other.private_pem), &other.public_pem),
                pem_key("ed-1", None, &pair.public_pem),
            ],
        )
        .expect("keys");
        assert_eq!(verifier.verify(&token).expect("verify"), claims);
    }

    #[test]
    fn es256_round_trip_including_sec1_private_keys() {
        let pair = ec_pair();
        let keys = ec_keys(&pair, "ec-1");
        let (token, claims) = issue(&keys);
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("ec-1"));
        assert_eq!(keys.verify(&token).expect("verify"), claims);

        // `openssl ecparam -genkey` writes SEC1 ("EC PRIVATE KEY"): accepted too.
        let sec1 = pair
            .secret
            .to_sec1_pem(LineEnding::LF)
            .expect("sec1")
            .to_string();
        assert!(sec1.contains("EC PRIVATE KEY"));
        let keys = JwtKeys::new(
            config(JwtAlgorithm::Es256),
            vec![pem_key("ec-1", Some(&sec1), &pair.public_pem)],
        )
        .expect("keys");
        let (token, claims) = issue(&keys);
        assert_eq!(keys.verify(&token).expect("verify"), claims);
    }

    #[test]
    fn jwks_has_public_members_only() {
        let ed = ed_pair();
        let jwks = ed_keys(&ed, "ed-1").jwks().expect("jwks");
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        let jwk = keys[0].as_object().expect("object");
        let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"]);
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], "ed-1");
        assert_eq!(jwk["x"], b64(ed.signing.verifying_key().as_bytes()));
        // The JWK really is the verification key: jsonwebtoken can verify with it.
        let keys_ = ed_keys(&ed, "ed-1");
        let (token, _) = issue(&keys_);
        let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(keys[0].clone()).expect("jwk");
        let key = DecodingKey::from_jwk(&parsed).expect("key");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUD]);
        jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("verifies with the JWK");

        let ec = ec_pair();
        let jwks = ec_keys(&ec, "ec-1").jwks().expect("jwks");
        let jwk = jwks["keys"][0].as_object().expect("object");
        let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert!(!jwks.to_string().contains("\"d\""));

        // An empty kid becomes the RFC 7638 thumbprint.
        let keys = JwtKeys::new(
            config(JwtAlgorithm::EdDsa),
            vec![pem_key("", Some(&ed.private_pem), &ed.public_pem)],
        )
        .expect("keys");
        let x = b64(ed.signing.verifying_key().as_bytes());
        let expected = b64(Sha256::digest(
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes(),
        )
        .as_slice());
        assert_eq!(keys.signing_kid(), expected);
    }

    #[test]
    fn key_rotation() {
        let old = ed_pair();
        let new = ed_pair();
        let old_keys = ed_keys(&old, "old");
        let (token, claims) = issue(&old_keys);

        let rotating = JwtKeys::new(
            config(JwtAlgorithm::EdDsa),
            vec![
                pem_key("new", Some(&new.private_pem), &new.public_pem),
                pem_key("old", None, &old.public_pem),
            ],
        )
        .expect("keys");
        assert_eq!(
            rotating.verify(&token).expect("old key still listed"),
            claims
        );
        let (fresh, _) = issue(&rotating);
        assert_eq!(
            jsonwebtoken::decode_header(&fresh)
                .expect("header")
                .kid
                .as_deref(),
            Some("new")
        );
        assert!(rotating.verify(&fresh).is_ok());

        let rotated = ed_keys(&new, "new");
        assert_invalid(&rotated, &token, "old key removed");

        // HS256 rotation the same way.
        let old_secret = SecretString::from("old-secret-old-secret-old-secret-old!");
        let old_hs = JwtKeys::new(
            config(JwtAlgorithm::Hs256),
            vec![JwtKey::hmac(old_secret.clone())],
        )
        .expect("keys");
        let (token, _) = issue(&old_hs);
        let both = JwtKeys::new(
            config(JwtAlgorithm::Hs256),
            vec![
                JwtKey::hmac(SecretString::from(HS_SECRET)),
                JwtKey::hmac(old_secret),
            ],
        )
        .expect("keys");
        assert!(both.verify(&token).is_ok());
        assert_invalid(&hs_keys(), &token, "old HS256 secret removed");
    }

    #[test]
    fn missing_kid_only_with_a_single_key() {
        let keys = hs_keys();
        let token = forge_hs256(
            HS_SECRET.as_bytes(),
            &json!({"alg": "HS256", "typ": "JWT"}),
            &good_payload(),
        );
        assert!(keys.verify(&token).is_ok(), "one key: kid may be absent");

        let two = JwtKeys::new(
            config(JwtAlgorithm::Hs256),
            vec![
                JwtKey::hmac(SecretString::from(HS_SECRET)),
                JwtKey::hmac(SecretString::from("another-secret-another-secret-another")),
            ],
        )
        .expect("keys");
        assert_invalid(&two, &token, "two keys and no kid");
    }

    // ---------- the attacker's side ----------

    #[test]
    fn alg_none_in_any_casing() {
        let keys = hs_keys();
        let ed = ed_pair();
        let ed_keys = ed_keys(&ed, "ed-1");
        for alg in ["none", "None", "NONE", "nOnE"] {
            for (keys, kid) in [(&keys, keys.signing_kid()), (&ed_keys, "ed-1")] {
                let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
                let token = format!("{}.", signing_input(&header, &good_payload()));
                assert_eq!(reason(keys, &token), "malformed header", "{alg}");
                let header = json!({"alg": alg, "typ": "JWT"});
                let token = format!("{}.", signing_input(&header, &good_payload()));
                assert_eq!(reason(keys, &token), "malformed header", "{alg}");
            }
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let ed = ed_pair();
        let ec = ec_pair();
        let ed_keys = ed_keys(&ed, "ed-1");
        let ec_keys = ec_keys(&ec, "ec-1");
        let ed_raw = ed.signing.verifying_key().to_bytes().to_vec();
        let ec_sec1 = ec
            .secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let cases: [(&JwtKeys, &str, Vec<Vec<u8>>); 2] = [
            (
                &ed_keys,
                "ed-1",
                vec![
                    ed.public_pem.clone().into_bytes(),
                    ed.public_pem.trim_end().as_bytes().to_vec(),
                    ed.public_der.clone(),
                    ed_raw,
                ],
            ),
            (
                &ec_keys,
                "ec-1",
                vec![
                    ec.public_pem.clone().into_bytes(),
                    ec.public_pem.trim_end().as_bytes().to_vec(),
                    ec.public_der.clone(),
                    ec_sec1,
                ],
            ),
        ];
        for (keys, kid, public_forms) in cases {
            for public in public_forms {
                for header in [
                    json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                    json!({"alg": "HS256", "typ": "JWT"}),
                ] {
                    let token = forge_hs256(&public, &header, &good_payload());
                    assert_eq!(reason(keys, &token), "unexpected alg");
                }
                // Claiming the right alg does not help an HMAC signature either.
                let header = json!({"alg": keys.algorithm().as_str(), "typ": "JWT", "kid": kid});
                let token = forge_hs256(&public, &header, &good_payload());
                assert_eq!(reason(keys, &token), "signature or claims invalid");
            }
        }
    }

    #[test]
    fn es256_all_zero_signature() {
        let ec = ec_pair();
        let keys = ec_keys(&ec, "ec-1");
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"});
        let input = signing_input(&header, &good_payload());
        for signature in [vec![0u8; 64], vec![0u8; 0], vec![0u8; 1]] {
            let token = format!("{input}.{}", b64(&signature));
            assert_invalid(&keys, &token, "zero signature");
        }
        // r = s = 0 in DER form too.
        let token = format!(
            "{input}.{}",
            b64(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00])
        );
        assert_invalid(&keys, &token, "DER zero signature");
        // Sanity: the same input with a real signature is accepted.
        let token = forge_es(&ec.secret, &header, &good_payload());
        assert!(keys.verify(&token).is_ok());
    }

    #[test]
    fn eddsa_all_zero_signature() {
        let ed = ed_pair();
        let keys = ed_keys(&ed, "ed-1");
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "ed-1"});
        let input = signing_input(&header, &good_payload());
        let token = format!("{input}.{}", b64(&[0u8; 64]));
        assert_invalid(&keys, &token, "zero signature");
        let token = format!("{input}.");
        assert_invalid(&keys, &token, "empty signature");
        let token = forge_ed(&ed.signing, &header, &good_payload());
        assert!(
            keys.verify(&token).is_ok(),
            "sanity: real signature accepted"
        );
    }

    #[test]
    fn string_exp_and_nbf_are_refused() {
        let keys = hs_keys();
        let header = hs_header(&keys);
        let now = now().unix_timestamp();
        for (field, value) in [
            ("exp", json!((now + 600).to_string())),
            ("nbf", json!(now.to_string())),
            ("exp", json!("never")),
            ("nbf", json!(null)),
            ("exp", json!(-1)),
        ] {
            let mut payload = good_payload();
            payload[field] = value.clone();
            let token = forge_hs256(HS_SECRET.as_bytes(), &header, &payload);
            assert_invalid(&keys, &token, &format!("{field} = {value}"));

            // jsonwebtoken itself refuses string exp/nbf (≥ 10.3), independently of our typed
            // `Claims`: decode into an untyped JSON value.
            let mut validation = Validation::new(Algorithm::HS256);
            validation.validate_nbf = true;
            validation.set_audience(&[AUD]);
            validation.set_required_spec_claims(&REQUIRED_CLAIMS);
            let result = jsonwebtoken::decode::<Value>(
                &token,
                &DecodingKey::from_secret(HS_SECRET.as_bytes()),
                &validation,
            );
            assert!(result.is_err(), "jsonwebtoken accepted {field} = {value}");
        }
    }

    #[test]
    fn crit_header_is_refused() {
        let keys = hs_keys();
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": keys.signing_kid(), "crit": ["exp"], "exp": 1});
        let token = forge_hs256(HS_SECRET.as_bytes(), &header, &good_payload());
        assert_eq!(reason(&keys, &token), "crit header");
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": keys.signing_kid(), "crit": []});
        let token = forge_hs256(HS_SECRET.as_bytes(), &header, &good_payload());
        assert_eq!(reason(&keys, &token), "crit header");
    }

    #[test]
    fn jku_x5u_jwk_x5c_are_never_used_nor_fetched() {
        // A listener on loopback stands in for the attacker's key server: nothing may connect.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let trap = format!("http://127.0.0.1:{port}/jwks.json");
        let dead = "http://127.0.0.1:9/jwks.json";

        let ours = ed_pair();
        let keys = ed_keys(&ours, "ed-1");
        let attacker = ed_pair();
        let x = b64(attacker.signing.verifying_key().as_bytes());
        let attacker_jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "use": "sig", "kid": "attacker"});
        let headers = [
            json!({"alg": "EdDSA", "jku": trap, "kid": "attacker"}),
            json!({"alg": "EdDSA", "jku": dead, "kid": "ed-1"}),
            json!({"alg": "EdDSA", "x5u": trap, "kid": "ed-1"}),
            json!({"alg": "EdDSA", "x5u": dead}),
            json!({"alg": "EdDSA", "jwk": attacker_jwk, "kid": "ed-1"}),
            json!({"alg": "EdDSA", "jwk": attacker_jwk}),
            json!({"alg": "EdDSA", "jwk": attacker_jwk, "kid": "attacker"}),
            json!({"alg": "EdDSA", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"], "kid": "ed-1"}),
        ];
        let started = Instant::now();
        for header in &headers {
            let token = forge_ed(&attacker.signing, header, &good_payload());
            let why = reason(&keys, &token);
            let expected = if header["kid"] == "attacker" {
                "unknown kid"
            } else {
                "signature or claims invalid"
            };
            assert_eq!(why, expected, "{header}");
        }
        // Our own signature with those headers present verifies — they are simply ignored.
        let header =
            json!({"alg": "EdDSA", "kid": "ed-1", "jku": trap, "x5u": dead, "jwk": attacker_jwk});
        let token = forge_ed(&ours.signing, &header, &good_payload());
        assert!(keys.verify(&token).is_ok());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "verification connected to the jku/x5u URL"
        );
    }

    #[test]
    fn kid_with_sql_or_path_characters_and_unknown_kids() {
        let keys = hs_keys();
        for kid in [
            "../../etc/passwd",
            "/dev/null",
            "' OR 1=1 --",
            "\"; DROP TABLE users; --",
            "hs256-000000000000",
            "",
            "\u{0}",
        ] {
            let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
            // Signed with the empty key, with the real secret, and with the kid itself.
            for key in [b"".as_slice(), HS_SECRET.as_bytes(), kid.as_bytes()] {
                let token = forge_hs256(key, &header, &good_payload());
                assert_eq!(reason(&keys, &token), "unknown kid", "{kid:?}");
            }
        }
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": 42});
        let token = forge_hs256(HS_SECRET.as_bytes(), &header, &good_payload());
        assert_eq!(reason(&keys, &token), "malformed header");
    }

    #[test]
    fn tampered_payload() {
        let keys = hs_keys();
        let (token, _) = issue(&keys);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("json");
        payload["role"] = json!("admin");
        parts[1] = b64(payload.to_string().as_bytes());
        assert_invalid(&keys, &parts.join("."), "role flipped to admin");

        let ed = ed_pair();
        let ed_keys = ed_keys(&ed, "ed-1");
        let (token, _) = issue(&ed_keys);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = b64(payload.to_string().as_bytes());
        assert_invalid(&ed_keys, &parts.join("."), "EdDSA payload swapped");
    }

    #[test]
    fn time_claims() {
        let keys = hs_keys();
        let ttl = time::Duration::seconds(900);
        // exp two minutes ago: beyond the 30 s leeway.
        let (expired, _) = keys
            .sign(
                Uuid::now_v7(),
                Uuid::now_v7(),
                "team_member",
                now() - ttl - time::Duration::minutes(2),
            )
            .expect("sign");
        assert_invalid(&keys, &expired, "expired");
        // exp 10 s ago: within the leeway.
        let (recent, _) = keys
            .sign(
                Uuid::now_v7(),
                Uuid::now_v7(),
                "team_member",
                now() - ttl - time::Duration::seconds(10),
            )
            .expect("sign");
        assert!(keys.verify(&recent).is_ok(), "within leeway");
        // nbf two minutes in the future.
        let (early, _) = keys
            .sign(
                Uuid::now_v7(),
                Uuid::now_v7(),
                "team_member",
                now() + time::Duration::minutes(2),
            )
            .expect("sign");
        assert_invalid(&keys, &early, "nbf in the future");
    }

    #[test]
    fn time_claims_against_the_service_clock() {
        let keys = hs_keys();
        let t0 = now();
        let (token, claims) = keys
            .sign(Uuid::now_v7(), Uuid::now_v7(), "team_member", t0)
            .expect("sign");
        let at = |offset: i64| t0 + time::Duration::seconds(offset);
        assert_eq!(keys.verify_at(&token, t0).expect("fresh"), claims);
        assert!(keys.verify_at(&token, at(900 + 30)).is_ok(), "exp + leeway");
        assert!(
            keys.verify_at(&token, at(900 + 31)).is_err(),
            "exp + leeway + 1"
        );
        assert!(
            keys.verify_at(&token, at(900 + 120)).is_err(),
            "exp 2 min ago"
        );
        assert!(keys.verify_at(&token, at(-30)).is_ok(), "nbf - leeway");
        assert!(keys.verify_at(&token, at(-31)).is_err(), "nbf - leeway - 1");
        assert!(keys.verify_at(&token, at(-120)).is_err(), "nbf 2 min ahead");

        // A clock moved a day forward (as tests do) issues tokens it also accepts, which the
        // system clock would call "not yet valid".
        let tomorrow = at(86_400);
        let (later, _) = keys
            .sign(Uuid::now_v7(), Uuid::now_v7(), "team_member", tomorrow)
            .expect("sign");
        assert!(keys.verify_at(&later, tomorrow).is_ok());
        assert!(keys.verify(&later).is_err());

        // Everything else is checked exactly as by `verify`.
        let header = hs_header(&keys);
        for (claim, value) in [
            ("exp", json!((t0.unix_timestamp() + 600).to_string())),
            ("nbf", json!(t0.unix_timestamp().to_string())),
            ("typ", json!("refresh")),
            ("iss", json!("https://evil.test")),
            ("aud", json!("another-api")),
        ] {
            let mut payload = good_payload();
            payload[claim] = value;
            let token = forge_hs256(HS_SECRET.as_bytes(), &header, &payload);
            assert!(keys.verify_at(&token, t0).is_err(), "{claim}");
        }
        for claim in ["exp", "nbf", "iss", "aud", "sub"] {
            let mut payload = good_payload();
            payload.as_object_mut().expect("object").remove(claim);
            let token = forge_hs256(HS_SECRET.as_bytes(), &header, &payload);
            assert!(keys.verify_at(&token, t0).is_err(), "missing {claim}");
        }
        let none = format!(
            "{}.",
            signing_input(&json!({"alg": "none"}), &good_payload())
        );
        assert!(keys.verify_at(&none, t0).is_err());
    }

    #[test]
    fn wrong_issuer_audience_and_type() {
        let keys = hs_keys();
        let secret = || vec![JwtKey::hmac(SecretString::from(HS_SECRET))];
        let mut other_iss = config(JwtAlgorithm::Hs256);
        other_iss.issuer = "https://evil.test".into();
        let (token, _) = issue(&JwtKeys::new(other_iss, secret()).expect("keys"));
        assert_invalid(&keys, &token, "wrong iss");
        let mut other_aud = config(JwtAlgorithm::Hs256);
        other_aud.audience = "another-api".into();
        let (token, _) = issue(&JwtKeys::new(other_aud, secret()).expect("keys"));
        assert_invalid(&keys, &token, "wrong aud");

        let header = hs_header(&keys);
        let mut payload = good_payload();
        payload["typ"] = json!("refresh");
        assert_eq!(
            reason(&keys, &forge_hs256(HS_SECRET.as_bytes(), &header, &payload)),
            "not an access token"
        );
        let mut payload = good_payload();
        payload["aud"] = json!([AUD, "another-api"]);
        assert_invalid(
            &keys,
            &forge_hs256(HS_SECRET.as_bytes(), &header, &payload),
            "aud array",
        );
        // Sanity: the forged good payload itself is accepted.
        assert!(
            keys.verify(&forge_hs256(HS_SECRET.as_bytes(), &header, &good_payload()))
                .is_ok()
        );
    }

    #[test]
    fn missing_claims() {
        let keys = hs_keys();
        let header = hs_header(&keys);
        for claim in ["exp", "nbf", "iss", "aud", "sub", "typ", "sid", "jti"] {
            let mut payload = good_payload();
            payload.as_object_mut().expect("object").remove(claim);
            let token = forge_hs256(HS_SECRET.as_bytes(), &header, &payload);
            assert_invalid(&keys, &token, &format!("missing {claim}"));
        }
    }

    #[test]
    fn sub_and_sid_must_be_uuids() {
        let keys = hs_keys();
        let header = hs_header(&keys);
        for (claim, value) in [("sub", "admin"), ("sid", "../../etc/passwd"), ("sub", "")] {
            let mut payload = good_payload();
            payload[claim] = json!(value);
            let token = forge_hs256(HS_SECRET.as_bytes(), &header, &payload);
            assert_eq!(
                reason(&keys, &token),
                "sub or sid is not a uuid",
                "{claim}={value:?}"
            );
        }
    }

    #[test]
    fn rs256_token_is_refused() {
        let rsa = EncodingKey::from_rsa_der(&rsa_private_der());
        let ed = ed_pair();
        let ec = ec_pair();
        let all = [
            (hs_keys(), hs_keys().signing_kid().to_string()),
            (ed_keys(&ed, "ed-1"), "ed-1".to_string()),
            (ec_keys(&ec, "ec-1"), "ec-1".to_string()),
        ];
        let claims: Value = good_payload();
        for (keys, kid) in &all {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(kid.clone());
            let token = jsonwebtoken::encode(&header, &claims, &rsa).expect("RS256 signs");
            assert_eq!(reason(keys, &token), "unexpected alg");
        }
    }

    #[test]
    fn malformed_tokens() {
        let keys = hs_keys();
        let (token, _) = issue(&keys);
        for bad in [
            String::new(),
            ".".into(),
            "..".into(),
            "a.b.c".into(),
            format!("{token}.extra"),
            token.replacen('.', "", 1),
            format!(" {token}"),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_invalid(&keys, &bad, "malformed");
        }
    }
}
