//! Provider tokens (issue 14, part A): which identity provider issued a bearer token, and
//! whether it is a valid session token of that provider — Supabase (JWKS keys, or the legacy
//! HS256 secret) or Clerk (JWKS keys, or the configured PEM key; RS256 only).
//!
//! Must not: take the algorithm from the token (the key chosen by `kid` — or the configured key —
//! decides it, and the header's `alg` must equal it), follow or use a key named by the token
//! (`jku`, `x5u`, `jwk`, `crit` in the header refuse the token), allow more clock skew than 5 s
//! (Clerk) / 30 s (Supabase), accept a rampart token (rampart's issuer is never a provider's: the
//! issuer is peeked before any key is looked up), or tell the caller why a token failed (one
//! [`IdentityError::Invalid`]; [`IdentityError::NotProviderToken`] only says "not ours, route
//! elsewhere").
//!
//! The claim checks are hand-written (jsonwebtoken checks only the signature and the exact
//! issuer here): jsonwebtoken's time checks read the system clock, and the providers' rules
//! (`role`, `is_anonymous`, `sts`, `azp`, `aud` as string or list) are not its business.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;
use time::OffsetDateTime;

use super::CLERK;
use sha2::Digest as _;

use super::jwks::{Health, Jwks, VerifyingKey, kid_is_plausible};
use super::model::Provider;
use crate::config::settings::Settings;

/// Longer than any provider session token by far; refuses absurd input before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew tolerated on Clerk tokens (`exp`, `nbf`, `iat`).
pub const CLERK_LEEWAY_SECONDS: i64 = 5;
/// Clock skew tolerated on Supabase tokens.
pub const SUPABASE_LEEWAY_SECONDS: i64 = 30;
/// Header parameters that name or constrain keys: a token carrying one is refused.
const FORBIDDEN_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "crit"];

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The token's issuer is no configured provider (perhaps a rampart token): route it elsewhere.
    #[error("not a token of a configured identity provider")]
    NotProviderToken,
    /// A provider's token that fails any check (the HTTP layer answers one 401).
    #[error("invalid token")]
    Invalid,
    /// The identity-provider settings are unusable (start refuses).
    #[error("identity provider configuration: {0}")]
    Config(String),
}

/// What a verified provider token says. The caller finds the local user by
/// (`issuer_key`, `subject`) — never by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderClaims {
    pub provider: Provider,
    /// The issuer the identity is keyed under in `user_identities`: the issuer URL for Supabase,
    /// [`CLERK`] for Clerk (the webhook sync's key).
    pub issuer_key: String,
    pub subject: String,
    pub email: Option<String>,
    /// True only when the provider asserts it explicitly.
    pub email_verified: bool,
    /// The provider's session id (Clerk `sid`, Supabase `session_id`).
    pub session_id: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    /// `exp` of the token (Unix seconds).
    pub expires_at: i64,
    /// `iat` of the token (Unix seconds): how recently the person signed in at the provider.
    pub issued_at: i64,
    /// The assurance level the provider asserts: 2 for Supabase `aal: "aal2"` or a Clerk token
    /// whose `fva` shows a verified second factor; 1 otherwise.
    pub aal: u8,
    /// When the person last proved who they are at the provider (Unix seconds): the newest
    /// Supabase `amr` timestamp, or `iat` less the newest Clerk `fva` age; `iat` when the token
    /// says nothing more.
    pub authenticated_at: i64,
}

impl ProviderClaims {
    /// The provider's assertion as rampart's [`crate::auth::Authentication`].
    pub fn authentication(&self) -> crate::auth::Authentication {
        crate::auth::Authentication {
            aal: self.aal,
            at: OffsetDateTime::from_unix_timestamp(self.authenticated_at).ok(),
        }
    }
}

enum KeySource {
    Jwks(Arc<Jwks>),
    Pem(VerifyingKey),
}

struct Supabase {
    issuer: String,
    jwks: Arc<Jwks>,
    legacy_secret: Option<DecodingKey>,
    allow_anonymous: bool,
}

struct Clerk {
    issuer: String,
    keys: KeySource,
    authorized_parties: Vec<String>,
}

/// Every configured identity provider. Build once at start ([`Providers::from_settings`]) and
/// share; cheap to clone.
#[derive(Clone, Default)]
pub struct Providers {
    supabase: Option<Arc<Supabase>>,
    clerk: Option<Arc<Clerk>>,
    /// Tokens verified recently: a client sends the same token on every request for its
    /// lifetime, and an ES256/RS256 signature check costs far more than the request's query.
    verified: Arc<std::sync::Mutex<VerifiedCache>>,
}

/// Verified tokens by SHA-256, each until `min(exp, verified + VERIFIED_TTL)` — so a key
/// removed from the JWKS stops a cached token within a minute — and at most [`VERIFIED_MAX`].
/// Only successes are kept; a failure is checked again every time.
#[derive(Default)]
struct VerifiedCache {
    entries: std::collections::HashMap<[u8; 32], (ProviderClaims, OffsetDateTime)>,
}

/// How long a verified token is trusted without checking its signature again.
pub const VERIFIED_TTL: time::Duration = time::Duration::seconds(60);
/// Tokens the cache holds at most (expired ones are dropped first, then everything).
pub const VERIFIED_MAX: usize = 10_000;

impl VerifiedCache {
    fn get(&self, key: &[u8; 32], now: OffsetDateTime) -> Option<ProviderClaims> {
        self.entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(claims, _)| claims.clone())
    }

    fn put(&mut self, key: [u8; 32], claims: ProviderClaims, now: OffsetDateTime) {
        let expires = OffsetDateTime::from_unix_timestamp(claims.expires_at).unwrap_or(now);
        let until = expires.min(now + VERIFIED_TTL);
        if until <= now {
            return;
        }
        if self.entries.len() >= VERIFIED_MAX {
            self.entries.retain(|_, (_, u)| now < *u);
            if self.entries.len() >= VERIFIED_MAX {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (claims, until));
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("supabase", &self.supabase.as_ref().map(|s| &s.issuer))
            .field("clerk", &self.clerk.as_ref().map(|c| &c.issuer))
            .finish()
    }
}

fn config_error(message: impl Into<String>) -> IdentityError {
    IdentityError::Config(message.into())
}

impl Providers {
    /// The providers the settings configure (none: every bearer token is "not a provider
    /// token"). Refuses what `check-config` reports for these settings: a bad URL (plain http
    /// outside loopback, or at all in production), an unparsable `CLERK_JWT_KEY`, a key or
    /// secret without its issuer. Fetches nothing.
    pub fn from_settings(settings: &Settings) -> Result<Providers, IdentityError> {
        let production = settings.is_production();
        let id = &settings.identity;
        let check_url = |name: &str, url: &str| match crate::config::validate::provider_url_issue(
            url, production,
        ) {
            Some(issue) => Err(config_error(format!("{name} {issue}"))),
            None => Ok(()),
        };
        let supabase = match &id.supabase_url {
            None => {
                if settings.secrets.supabase_jwt_secret.is_some() {
                    return Err(config_error(
                        "SUPABASE_JWT_SECRET is set without SUPABASE_URL",
                    ));
                }
                None
            }
            Some(url) => {
                check_url("SUPABASE_URL", url)?;
                let issuer = format!("{url}/auth/v1");
                let jwks = Jwks::new("supabase", format!("{issuer}/.well-known/jwks.json"))
                    .map_err(config_error)?;
                let legacy_secret = settings
                    .secrets
                    .supabase_jwt_secret
                    .as_ref()
                    .map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes()));
                Some(Arc::new(Supabase {
                    issuer,
                    jwks: Arc::new(jwks),
                    legacy_secret,
                    allow_anonymous: id.supabase_allow_anonymous,
                }))
            }
        };
        let clerk = match &id.clerk_issuer {
            None => {
                if id.clerk_jwt_key.is_some() || !id.clerk_authorized_parties.is_empty() {
                    return Err(config_error(
                        "CLERK_JWT_KEY or CLERK_AUTHORIZED_PARTIES is set without CLERK_ISSUER",
                    ));
                }
                None
            }
            Some(issuer) => {
                check_url("CLERK_ISSUER", issuer)?;
                for party in &id.clerk_authorized_parties {
                    check_url("CLERK_AUTHORIZED_PARTIES", party)?;
                }
                let keys = match &id.clerk_jwt_key {
                    Some(pem) => {
                        let (n, e) = crate::config::validate::rsa_public_key_pem(pem).ok_or_else(
                            || {
                                config_error(
                                    "CLERK_JWT_KEY is not an RSA public key (2048 bits or more) in PEM",
                                )
                            },
                        )?;
                        KeySource::Pem(VerifyingKey {
                            algorithm: Algorithm::RS256,
                            key: DecodingKey::from_rsa_raw_components(&n, &e),
                        })
                    }
                    None => KeySource::Jwks(Arc::new(
                        Jwks::new("clerk", format!("{issuer}/.well-known/jwks.json"))
                            .map_err(config_error)?,
                    )),
                };
                Some(Arc::new(Clerk {
                    issuer: issuer.clone(),
                    keys,
                    authorized_parties: id.clerk_authorized_parties.clone(),
                }))
            }
        };
        if let (Some(s), Some(c)) = (&supabase, &clerk)
            && s.issuer == c.issuer
        {
            return Err(config_error("Supabase and Clerk have the same issuer"));
        }
        if [
            &supabase.as_ref().map(|s| &s.issuer),
            &clerk.as_ref().map(|c| &c.issuer),
        ]
        .into_iter()
        .flatten()
        .any(|iss| **iss == settings.auth.jwt_issuer)
        {
            return Err(config_error(
                "an identity provider's issuer equals JWT_ISSUER (rampart's own tokens)",
            ));
        }
        Ok(Providers {
            supabase,
            clerk,
            verified: Arc::default(),
        })
    }

    /// Whether any provider is configured.
    pub fn any(&self) -> bool {
        self.supabase.is_some() || self.clerk.is_some()
    }

    /// Whether `token`'s (unverified) `iss` is a configured provider's issuer: a cheap peek that
    /// routes a bearer token to [`Providers::verify`] or to rampart's own verification. Trusts
    /// nothing: `verify` checks everything again.
    pub fn is_provider_token(&self, token: &str) -> bool {
        self.provider_of(token).is_some()
    }

    /// Verifies a provider token at `now` (from `crate::clock::Clock`). `NotProviderToken` when
    /// its issuer is no configured provider's; `Invalid` for every other failure.
    pub async fn verify(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<ProviderClaims, IdentityError> {
        let Some(which) = self.provider_of(token) else {
            return Err(IdentityError::NotProviderToken);
        };
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key, now);
        if let Some(claims) = cached {
            return Ok(claims);
        }
        let result = match which {
            Which::Supabase(s) => verify_supabase(s, token, now).await,
            Which::Clerk(c) => verify_clerk(c, token, now).await,
        };
        let claims = result.map_err(|reason| {
            tracing::debug!(reason, "provider token rejected");
            IdentityError::Invalid
        })?;
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key, claims.clone(), now);
        Ok(claims)
    }

    /// Audits the start of every JWKS outage through `queue` (`identity.provider_outage`, once per
    /// outage, not per request or retry).
    pub fn set_reporter(&self, queue: &crate::audit::AuditQueue) {
        if let Some(s) = &self.supabase {
            s.jwks.set_reporter(queue.clone());
        }
        if let Some(clerk) = &self.clerk
            && let KeySource::Jwks(jwks) = &clerk.keys
        {
            jwks.set_reporter(queue.clone());
        }
    }

    /// Each configured provider and whether its keys are usable (for `/ready`). Never fetches
    /// and never waits.
    pub fn health(&self, now: OffsetDateTime) -> Vec<(Provider, Health)> {
        let mut out = Vec::new();
        if let Some(s) = &self.supabase {
            out.push((Provider::Supabase, s.jwks.health(now)));
        }
        if let Some(c) = &self.clerk {
            let health = match &c.keys {
                KeySource::Jwks(jwks) => jwks.health(now),
                KeySource::Pem(_) => Health::Ok,
            };
            out.push((Provider::Clerk, health));
        }
        out
    }

    fn provider_of(&self, token: &str) -> Option<Which<'_>> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let issuer = peek_issuer(token)?;
        if let Some(s) = &self.supabase
            && s.issuer == issuer
        {
            return Some(Which::Supabase(s));
        }
        if let Some(c) = &self.clerk
            && c.issuer == issuer
        {
            return Some(Which::Clerk(c));
        }
        None
    }
}

enum Which<'a> {
    Supabase(&'a Supabase),
    Clerk(&'a Clerk),
}

/// The unverified `iss` of a compact JWS (three base64url segments), if it has one.
fn peek_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// The header's `alg` and `kid`, read unverified: `alg` is compared with the key's, never obeyed;
/// `kid` is a map key once it passes [`kid_is_plausible`]. Refuses the headers in
/// [`FORBIDDEN_HEADERS`].
fn read_header(token: &str) -> Result<(String, Option<String>), &'static str> {
    let segment = token.split('.').next().ok_or("malformed")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| "malformed header")?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| "malformed header")?;
    if FORBIDDEN_HEADERS.iter().any(|h| header.contains_key(*h)) {
        return Err("forbidden header parameter");
    }
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or("no alg")?
        .to_string();
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(kid)) if kid_is_plausible(kid) => Some(kid.clone()),
        Some(_) => return Err("implausible kid"),
    };
    Ok((alg, kid))
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        _ => "",
    }
}

/// `aud` as a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// The claims either provider may send (unknown ones are ignored).
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    role: Option<String>,
    is_anonymous: Option<bool>,
    email: Option<String>,
    email_verified: Option<bool>,
    session_id: Option<String>,
    sid: Option<String>,
    azp: Option<String>,
    sts: Option<String>,
    name: Option<String>,
    username: Option<String>,
    user_metadata: Option<serde_json::Value>,
    /// Supabase: `aal1` / `aal2`.
    aal: Option<String>,
    /// Supabase: `[{"method": "password", "timestamp": 1700000000}, …]`.
    amr: Option<serde_json::Value>,
    /// Clerk: factor verification ages in minutes, `[first, second]`, -1 for never.
    fva: Option<Vec<i64>>,
}

/// The newest `timestamp` of Supabase's `amr` entries.
fn supabase_authenticated_at(claims: &RawClaims) -> Option<i64> {
    claims
        .amr
        .as_ref()?
        .as_array()?
        .iter()
        .filter_map(|entry| entry.get("timestamp")?.as_i64())
        .max()
}

/// Clerk's `fva`: (aal, minutes since the newest factor verification).
fn clerk_fva(claims: &RawClaims) -> (u8, Option<i64>) {
    let Some(fva) = claims.fva.as_deref() else {
        return (1, None);
    };
    let second = fva.get(1).copied().unwrap_or(-1);
    let aal = if second >= 0 { 2 } else { 1 };
    (aal, fva.iter().copied().filter(|age| *age >= 0).min())
}

/// Signature (with `key`, whose algorithm the header must name) and exact `iss`; the claims.
fn decode(
    token: &str,
    key: &VerifyingKey,
    header_alg: &str,
    issuer: &str,
) -> Result<RawClaims, &'static str> {
    if header_alg != alg_name(key.algorithm) {
        return Err("alg does not match the key");
    }
    let mut validation = Validation::new(key.algorithm);
    validation.leeway = 0;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims::<&str>(&[]);
    validation.set_issuer(&[issuer]);
    let data = jsonwebtoken::decode::<RawClaims>(token, &key.key, &validation)
        .map_err(|_| "signature or claims invalid")?;
    if data.claims.iss.as_deref() != Some(issuer) {
        return Err("wrong issuer");
    }
    Ok(data.claims)
}

/// `exp` (required), `iat` (required), `nbf` (required when `nbf_required`) against `now`.
fn check_times(
    claims: &RawClaims,
    now: OffsetDateTime,
    leeway: i64,
    nbf_required: bool,
) -> Result<i64, &'static str> {
    let now = now.unix_timestamp();
    let exp = claims.exp.ok_or("no exp")?;
    let iat = claims.iat.ok_or("no iat")?;
    if exp.saturating_add(leeway) <= now {
        return Err("expired");
    }
    if iat.saturating_sub(leeway) > now {
        return Err("issued in the future");
    }
    match claims.nbf {
        Some(nbf) if nbf.saturating_sub(leeway) > now => return Err("not yet valid"),
        None if nbf_required => return Err("no nbf"),
        _ => {}
    }
    Ok(exp)
}

fn nonempty(value: Option<&String>) -> Option<String> {
    value
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn metadata_str(claims: &RawClaims, keys: &[&str]) -> Option<String> {
    let meta = claims.user_metadata.as_ref()?;
    keys.iter()
        .find_map(|k| meta.get(*k).and_then(|v| v.as_str()))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

async fn verify_supabase(
    provider: &Supabase,
    token: &str,
    now: OffsetDateTime,
) -> Result<ProviderClaims, &'static str> {
    let (alg, kid) = read_header(token)?;
    let key = if alg == "HS256" {
        // The legacy shared secret, only when configured; never a JWKS key.
        VerifyingKey {
            algorithm: Algorithm::HS256,
            key: provider
                .legacy_secret
                .clone()
                .ok_or("HS256 without a legacy secret")?,
        }
    } else {
        let kid = kid.ok_or("no kid")?;
        provider.jwks.key(&kid, now).await.ok_or("unknown kid")?
    };
    let claims = decode(token, &key, &alg, &provider.issuer)?;
    let expires_at = check_times(&claims, now, SUPABASE_LEEWAY_SECONDS, false)?;
    if !claims
        .aud
        .as_ref()
        .is_some_and(|a| a.contains("authenticated"))
    {
        return Err("audience is not authenticated");
    }
    if claims.role.as_deref() != Some("authenticated") {
        return Err("role is not authenticated");
    }
    if claims.is_anonymous == Some(true) && !provider.allow_anonymous {
        return Err("anonymous sign-in");
    }
    let subject = nonempty(claims.sub.as_ref()).ok_or("no sub")?;
    let email_verified = claims.email_verified == Some(true)
        || claims
            .user_metadata
            .as_ref()
            .and_then(|m| m.get("email_verified"))
            .and_then(|v| v.as_bool())
            == Some(true);
    Ok(ProviderClaims {
        provider: Provider::Supabase,
        issuer_key: provider.issuer.clone(),
        subject,
        email: nonempty(claims.email.as_ref()),
        email_verified,
        session_id: nonempty(claims.session_id.as_ref()),
        name: metadata_str(&claims, &["full_name", "name"]).or(nonempty(claims.name.as_ref())),
        username: metadata_str(&claims, &["user_name", "preferred_username"]),
        expires_at,
        issued_at: claims.iat.unwrap_or_default(),
        aal: if claims.aal.as_deref() == Some("aal2") {
            2
        } else {
            1
        },
        authenticated_at: supabase_authenticated_at(&claims)
            .unwrap_or(claims.iat.unwrap_or_default()),
    })
}

async fn verify_clerk(
    provider: &Clerk,
    token: &str,
    now: OffsetDateTime,
) -> Result<ProviderClaims, &'static str> {
    let (alg, kid) = read_header(token)?;
    if alg != "RS256" {
        return Err("Clerk tokens are RS256");
    }
    let key = match &provider.keys {
        KeySource::Pem(key) => key.clone(),
        KeySource::Jwks(jwks) => {
            let kid = kid.ok_or("no kid")?;
            jwks.key(&kid, now).await.ok_or("unknown kid")?
        }
    };
    let claims = decode(token, &key, &alg, &provider.issuer)?;
    let expires_at = check_times(&claims, now, CLERK_LEEWAY_SECONDS, true)?;
    let subject = nonempty(claims.sub.as_ref()).ok_or("no sub")?;
    let session_id = nonempty(claims.sid.as_ref()).ok_or("no sid")?;
    if claims.sts.as_deref() == Some("pending") {
        return Err("pending session");
    }
    if !provider.authorized_parties.is_empty() {
        let azp = claims.azp.as_deref().ok_or("no azp")?;
        if !provider.authorized_parties.iter().any(|p| p == azp) {
            return Err("azp not authorized");
        }
    }
    Ok(ProviderClaims {
        provider: Provider::Clerk,
        issuer_key: CLERK.to_string(),
        subject,
        email: nonempty(claims.email.as_ref()),
        email_verified: claims.email_verified == Some(true),
        session_id: Some(session_id),
        name: nonempty(claims.name.as_ref()),
        username: nonempty(claims.username.as_ref()),
        expires_at,
        issued_at: claims.iat.unwrap_or_default(),
        aal: clerk_fva(&claims).0,
        authenticated_at: {
            let iat = claims.iat.unwrap_or_default();
            clerk_fva(&claims).1.map_or(iat, |minutes| {
                iat.saturating_sub(minutes.saturating_mul(60))
            })
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn verified_tokens_are_trusted_a_minute_at_most_never_past_exp_and_the_cache_is_bounded() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let claims = |exp: i64| ProviderClaims {
            provider: Provider::Clerk,
            issuer_key: "clerk".into(),
            subject: "user_1".into(),
            email: None,
            email_verified: false,
            session_id: None,
            name: None,
            username: None,
            expires_at: exp,
            issued_at: exp - 60,
            aal: 1,
            authenticated_at: exp - 60,
        };
        let mut cache = VerifiedCache::default();
        cache.put([1; 32], claims(now.unix_timestamp() + 3600), now);
        assert!(
            cache
                .get(&[1; 32], now + time::Duration::seconds(59))
                .is_some()
        );
        assert!(
            cache.get(&[1; 32], now + VERIFIED_TTL).is_none(),
            "a minute at most"
        );
        cache.put([2; 32], claims(now.unix_timestamp() + 10), now);
        assert!(
            cache
                .get(&[2; 32], now + time::Duration::seconds(9))
                .is_some()
        );
        assert!(
            cache
                .get(&[2; 32], now + time::Duration::seconds(10))
                .is_none(),
            "never past exp"
        );
        cache.put([3; 32], claims(now.unix_timestamp() - 1), now);
        assert!(
            cache.get(&[3; 32], now).is_none(),
            "an expired token is not kept"
        );
        for i in 0..(VERIFIED_MAX + 5) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.put(key, claims(now.unix_timestamp() + 3600), now);
        }
        assert!(cache.entries.len() <= VERIFIED_MAX);
    }

    use super::*;

    fn segment(v: serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    }

    fn token(header: serde_json::Value, claims: serde_json::Value) -> String {
        format!("{}.{}.c2ln", segment(header), segment(claims))
    }

    #[test]
    fn the_issuer_peek_reads_only_a_well_formed_compact_token() {
        let iss = serde_json::json!({"iss": "https://x.example/auth/v1"});
        let alg = serde_json::json!({"alg": "ES256"});
        assert_eq!(
            peek_issuer(&token(alg.clone(), iss.clone())).as_deref(),
            Some("https://x.example/auth/v1")
        );
        assert_eq!(
            peek_issuer(&format!(
                "{}.{}",
                segment(alg.clone()),
                segment(iss.clone())
            )),
            None
        );
        assert_eq!(peek_issuer(&format!("{}.x", token(alg.clone(), iss))), None);
        assert_eq!(
            peek_issuer(&token(alg.clone(), serde_json::json!({"iss": 7}))),
            None
        );
        assert_eq!(peek_issuer(&token(alg, serde_json::json!({}))), None);
        assert_eq!(peek_issuer("not a token"), None);
    }

    #[test]
    fn key_naming_headers_and_implausible_kids_are_refused() {
        let claims = serde_json::json!({});
        let ok = token(
            serde_json::json!({"alg": "ES256", "kid": "k1"}),
            claims.clone(),
        );
        assert_eq!(read_header(&ok), Ok(("ES256".into(), Some("k1".into()))));
        for name in FORBIDDEN_HEADERS {
            let mut header = serde_json::json!({"alg": "ES256", "kid": "k1"});
            header[name] = serde_json::json!("x");
            assert!(
                read_header(&token(header, claims.clone())).is_err(),
                "{name}"
            );
        }
        for kid in [
            serde_json::json!("../k"),
            serde_json::json!("k' OR 1=1"),
            serde_json::json!(5),
            serde_json::json!(""),
        ] {
            let header = serde_json::json!({"alg": "ES256", "kid": kid});
            assert!(
                read_header(&token(header, claims.clone())).is_err(),
                "{kid}"
            );
        }
        assert!(read_header(&token(serde_json::json!({"kid": "k1"}), claims)).is_err());
    }

    fn claims(exp: Option<i64>, nbf: Option<i64>, iat: Option<i64>) -> RawClaims {
        serde_json::from_value(serde_json::json!({"exp": exp, "nbf": nbf, "iat": iat})).unwrap()
    }

    #[test]
    fn time_checks_use_the_given_clock_and_leeway() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let t = 1_000_000;
        assert!(check_times(&claims(Some(t + 1), None, Some(t)), now, 5, false).is_ok());
        assert!(check_times(&claims(Some(t - 4), None, Some(t)), now, 5, false).is_ok());
        assert!(check_times(&claims(Some(t - 5), None, Some(t)), now, 5, false).is_err());
        assert!(check_times(&claims(Some(t + 60), Some(t + 5), Some(t)), now, 5, true).is_ok());
        assert!(check_times(&claims(Some(t + 60), Some(t + 6), Some(t)), now, 5, true).is_err());
        assert!(check_times(&claims(Some(t + 60), None, Some(t)), now, 5, true).is_err());
        assert!(check_times(&claims(Some(t + 60), None, Some(t + 6)), now, 5, false).is_err());
        assert!(check_times(&claims(None, None, Some(t)), now, 5, false).is_err());
        assert!(check_times(&claims(Some(t + 60), None, None), now, 5, false).is_err());
        assert!(
            check_times(
                &claims(Some(i64::MIN), None, Some(i64::MAX)),
                now,
                30,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        let one: Audience = serde_json::from_value(serde_json::json!("authenticated")).unwrap();
        let many: Audience =
            serde_json::from_value(serde_json::json!(["x", "authenticated"])).unwrap();
        let other: Audience = serde_json::from_value(serde_json::json!(["anon"])).unwrap();
        assert!(one.contains("authenticated") && many.contains("authenticated"));
        assert!(!other.contains("authenticated"));
    }

    #[test]
    fn no_provider_configured_means_no_provider_token() {
        let providers = Providers::default();
        assert!(!providers.any());
        let t = token(
            serde_json::json!({"alg": "HS256"}),
            serde_json::json!({"iss": "https://x.example/auth/v1"}),
        );
        assert!(!providers.is_provider_token(&t));
        assert!(!providers.is_provider_token(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }
}
