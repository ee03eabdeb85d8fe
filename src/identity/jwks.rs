//! The JWKS client: an identity provider's public signing keys, fetched over HTTP(S) from its
//! `/.well-known/jwks.json` and cached.
//!
//! Rules (issue 14): a 3 s timeout; keys are used for at most [`MAX_AGE`] (10 min) before a
//! refetch; a `kid` the cache does not know triggers at most one refetch per [`UNKNOWN_KID_EVERY`]
//! (30 s) per provider, so a flood of random kids costs one request; while the endpoint is down,
//! the keys last fetched keep working until they are [`STALE_LIMIT`] (1 h) old, then every token
//! is refused (fail closed) and [`Jwks::health`] reports the provider degraded. The outage is
//! logged once, when it starts, and once when it ends — never per request. Time comes from the
//! caller (`now`, from `crate::clock::Clock`), so tests move it forward instead of sleeping.
//!
//! Hand-written rather than a JWKS crate: the caching rules above are the point, jsonwebtoken
//! already parses keys (`DecodingKey::from_*_components`), and the crates that bundle a fetcher
//! either pull in OpenSSL, cache by their own wall clock, or refetch on every unknown kid.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// Keys are refetched once they are this old.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// An unknown kid refetches at most this often (per provider); so does a failing endpoint.
pub const UNKNOWN_KID_EVERY: Duration = Duration::from_secs(30);
/// While the endpoint is down, cached keys work until they are this old.
pub const STALE_LIMIT: Duration = Duration::from_secs(60 * 60);
/// The HTTP timeout of one fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// A JWKS document larger than this is refused (real ones are a few KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Keys kept from one document at most.
const MAX_KEYS: usize = 32;

/// One verification key and the only algorithm it verifies.
#[derive(Clone)]
pub struct VerifyingKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Whether a provider's keys are usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// The endpoint has failed and the keys are older than [`STALE_LIMIT`] (or were never
    /// fetched after a failure): tokens are refused.
    Degraded,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
        }
    }
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, VerifyingKey>,
    /// The last successful fetch.
    fetched_at: Option<OffsetDateTime>,
    /// The last attempt, successful or not (spaces out retries against a failing endpoint).
    attempted_at: Option<OffsetDateTime>,
    /// The last refetch caused by an unknown kid.
    unknown_kid_at: Option<OffsetDateTime>,
    /// Whether the last attempt failed (an outage in progress; logged once).
    failing: bool,
}

/// One provider's JWKS endpoint and its cache. Cheap to share (`Arc` it).
pub struct Jwks {
    provider: &'static str,
    url: String,
    http: reqwest::Client,
    /// Held across a fetch, so concurrent misses wait for one request instead of each sending one.
    cache: Mutex<Cache>,
    /// Copies of `fetched_at` (Unix ms, `i64::MIN`: never) and `failing`, for [`Jwks::health`],
    /// which must not wait behind a fetch in progress.
    fetched_at_ms: AtomicI64,
    failing: AtomicBool,
    /// Where the start of an outage is audited (`identity.provider_outage`, once per outage).
    reporter: std::sync::OnceLock<crate::audit::AuditQueue>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn elapsed(since: Option<OffsetDateTime>, now: OffsetDateTime) -> Option<Duration> {
    since.map(|t| Duration::try_from(now - t).unwrap_or(Duration::ZERO))
}

impl Jwks {
    /// A client for `url` (nothing is fetched until a key is needed).
    pub fn new(provider: &'static str, url: String) -> Result<Jwks, String> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the {provider} JWKS client: {e}"))?;
        Ok(Jwks {
            provider,
            url,
            http,
            cache: Mutex::new(Cache::default()),
            fetched_at_ms: AtomicI64::new(i64::MIN),
            failing: AtomicBool::new(false),
            reporter: std::sync::OnceLock::new(),
        })
    }

    /// Audits the start of each outage through `queue` (set once, at start).
    pub fn set_reporter(&self, queue: crate::audit::AuditQueue) {
        let _ = self.reporter.set(queue);
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key named `kid`, fetching or refetching under the rules in the module doc. `None`:
    /// no such key, or the keys are unusable (fail closed). `kid` must already be checked with
    /// [`kid_is_plausible`].
    pub async fn key(&self, kid: &str, now: OffsetDateTime) -> Option<VerifyingKey> {
        let mut cache = self.cache.lock().await;
        let fresh = elapsed(cache.fetched_at, now).is_some_and(|age| age < MAX_AGE);
        let may_retry = elapsed(cache.attempted_at, now).is_none_or(|t| t >= UNKNOWN_KID_EVERY);
        let mut fetched_now = false;
        if !fresh && (may_retry || !cache.failing) {
            self.refresh(&mut cache, now).await;
            fetched_now = true;
        }
        if !usable(&cache, now) {
            return None;
        }
        if let Some(key) = cache.keys.get(kid) {
            return Some(key.clone());
        }
        // An unknown kid: perhaps a rotation we have not seen. One refetch per 30 s at most.
        let kid_window_over =
            elapsed(cache.unknown_kid_at, now).is_none_or(|t| t >= UNKNOWN_KID_EVERY);
        let may_refetch = kid_window_over && (may_retry || !cache.failing);
        if fetched_now || !may_refetch {
            return None;
        }
        cache.unknown_kid_at = Some(now);
        self.refresh(&mut cache, now).await;
        if !usable(&cache, now) {
            return None;
        }
        cache.keys.get(kid).cloned()
    }

    /// Whether tokens of this provider can be verified now (for `/ready`). Never fetches and
    /// never waits for a fetch in progress.
    pub fn health(&self, now: OffsetDateTime) -> Health {
        let fetched_at = match self.fetched_at_ms.load(Ordering::Acquire) {
            i64::MIN => None,
            ms => OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok(),
        };
        let fresh_enough = elapsed(fetched_at, now).is_some_and(|age| age < STALE_LIMIT);
        if self.failing.load(Ordering::Acquire) && !fresh_enough {
            Health::Degraded
        } else {
            Health::Ok
        }
    }

    async fn refresh(&self, cache: &mut Cache, now: OffsetDateTime) {
        cache.attempted_at = Some(now);
        match self.fetch().await {
            Ok(keys) => {
                if cache.failing {
                    tracing::warn!(
                        provider = self.provider,
                        "identity provider JWKS endpoint is reachable again"
                    );
                }
                cache.keys = keys;
                cache.fetched_at = Some(now);
                cache.failing = false;
                let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                self.fetched_at_ms.store(ms, Ordering::Release);
                self.failing.store(false, Ordering::Release);
            }
            Err(reason) => {
                if !cache.failing {
                    // Once per outage: the flag stays set until a fetch succeeds.
                    tracing::error!(
                        provider = self.provider,
                        url = %self.url,
                        reason = %reason,
                        "identity provider JWKS endpoint is failing; cached keys are used for up to an hour"
                    );
                    if let Some(queue) = self.reporter.get() {
                        use crate::audit::{Action, Actor, Aggregated, Event, Outcome};
                        queue.report(Aggregated {
                            meta: crate::audit::RequestMeta::default(),
                            event: Event::new(
                                Action::IdentityProviderOutage,
                                Outcome::Failure,
                                Actor::system(),
                            )
                            .metadata(serde_json::json!({
                                "provider": self.provider,
                                "url": self.url,
                                "reason": reason,
                                "cached_keys": !cache.keys.is_empty(),
                            })),
                            scope: self.provider.to_string(),
                        });
                    }
                }
                cache.failing = true;
                self.failing.store(true, Ordering::Release);
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, VerifyingKey>, String> {
        let response = self
            .http
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err("document too large".into());
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("document too large".into());
        }
        parse_jwks(&body)
    }
}

/// Keys are usable when fetched successfully within [`MAX_AGE`], or — while the endpoint fails —
/// within [`STALE_LIMIT`].
fn usable(cache: &Cache, now: OffsetDateTime) -> bool {
    // Not failing implies a fetch within MAX_AGE (a stale cache is refreshed before use).
    elapsed(cache.fetched_at, now).is_some_and(|age| age < STALE_LIMIT)
}

/// A kid is looked up only when it is 1–128 characters of `A-Z a-z 0-9 - _` (base64url, UUIDs,
/// Clerk's `ins_…`): anything else — paths, quotes, SQL, dots — is refused before any lookup.
pub fn kid_is_plausible(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 128
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The signing keys of a JWKS document, by kid. Keys without a plausible kid, with a `use` other
/// than `sig`, of an unsupported type/curve, or whose `alg` disagrees with their type are
/// skipped; a document that is not a JWKS at all is an error.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, VerifyingKey>, String> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = HashMap::new();
    for value in set.keys.into_iter().take(MAX_KEYS) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.kid.clone().filter(|k| kid_is_plausible(k)) else {
            continue;
        };
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            continue;
        }
        if let Some(key) = verifying_key(&jwk) {
            keys.insert(kid, key);
        }
    }
    Ok(keys)
}

fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    let (algorithm, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
        ),
        ("EC", Some("P-256")) => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?,
        ),
        ("OKP", Some("Ed25519")) => (
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?,
        ),
        _ => return None,
    };
    let expected = match algorithm {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        _ => "EdDSA",
    };
    // A key that names another algorithm (RS384, PS256, ES384 …) is not one we verify with.
    if jwk.alg.as_deref().is_some_and(|a| a != expected) {
        return None;
    }
    Some(VerifyingKey { algorithm, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_kids() {
        for kid in [
            "ins_2abcDEF",
            "0b1c2d3e-aaaa-bbbb-cccc-1234567890ab",
            "k1",
            "a_b-c",
        ] {
            assert!(kid_is_plausible(kid), "{kid}");
        }
        let long = "a".repeat(129);
        for kid in [
            "",
            "../../etc/passwd",
            "k1' OR '1'='1",
            "k1;DROP TABLE users",
            "a/b",
            "a.b",
            "a b",
            "é",
            "k1\0",
            long.as_str(),
        ] {
            assert!(!kid_is_plausible(kid), "{kid:?}");
        }
    }

    #[test]
    fn parse_keeps_signing_keys_of_supported_types_only() {
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = signing.verifying_key().to_encoded_point(false);
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let (x, y) = (b64(point.x().unwrap()), b64(point.y().unwrap()));
        let ed = b64(ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
            .verifying_key()
            .as_bytes());
        let doc = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "ec1", "use": "sig", "alg": "ES256"},
            {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "enc1", "use": "enc"},
            {"kty": "EC", "crv": "P-384", "x": x, "y": y, "kid": "p384"},
            {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "wrongalg", "alg": "ES384"},
            {"kty": "OKP", "crv": "Ed25519", "x": ed, "kid": "ed1"},
            {"kty": "OKP", "crv": "X25519", "x": ed, "kid": "x1"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "oct1"},
            {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "../evil"},
            {"kty": "EC", "crv": "P-256", "x": x, "y": y},
            {"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "badrsa"},
            "not an object"
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["ec1", "ed1"]);
        assert_eq!(keys["ec1"].algorithm, Algorithm::ES256);
        assert_eq!(keys["ed1"].algorithm, Algorithm::EdDSA);
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }
}
