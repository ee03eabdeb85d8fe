//! Identity-provider tokens (issue 14, part A): `rampart::identity::Providers` against real
//! JWKS documents served over real HTTP by a loopback server the test starts (keys generated in
//! the test, hits counted), with the service's clock moved forward instead of sleeping.
//!
//! Part B (provider tokens on the API routes) is not wired yet, so these call the library
//! directly; no database is needed.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey};
use rampart::clock::Clock;
use rampart::identity::{Health, IdentityError, Provider, Providers};
use serde_json::{Value, json};

use crate::support::{base_env, settings_from};

// ---------------------------------------------------------------------------------------------
// A JWKS server on loopback.

struct Served {
    doc: Value,
    up: bool,
}

struct JwksServer {
    base: String,
    hits: Arc<AtomicUsize>,
    state: Arc<Mutex<Served>>,
}

impl JwksServer {
    fn start(doc: Value) -> JwksServer {
        let hits = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Mutex::new(Served { doc, up: true }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (h, s) = (hits.clone(), state.clone());
        let server = HttpServer::new(move || {
            let (h, s) = (h.clone(), s.clone());
            App::new().default_service(web::to(move || {
                let (h, s) = (h.clone(), s.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let served = s.lock().unwrap();
                    if served.up {
                        HttpResponse::Ok().json(&served.doc)
                    } else {
                        HttpResponse::ServiceUnavailable().finish()
                    }
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        JwksServer {
            base: format!("http://127.0.0.1:{port}"),
            hits,
            state,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn serve(&self, doc: Value) {
        self.state.lock().unwrap().doc = doc;
    }

    fn set_up(&self, up: bool) {
        self.state.lock().unwrap().up = up;
    }
}

// ---------------------------------------------------------------------------------------------
// Keys generated here.

fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn es256(kid: &str) -> TestKey {
    use p256::pkcs8::EncodePrivateKey as _;
    let signing = p256::ecdsa::SigningKey::from_slice(&random32()).unwrap();
    let point = signing.verifying_key().to_encoded_point(false);
    TestKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(signing.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": B64.encode(point.x().unwrap()),
                    "y": B64.encode(point.y().unwrap()), "kid": kid, "use": "sig", "alg": "ES256"}),
    }
}

fn eddsa(kid: &str) -> TestKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let signing = ed25519_dalek::SigningKey::from_bytes(&random32());
    TestKey {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(signing.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519",
                    "x": B64.encode(signing.verifying_key().as_bytes()), "kid": kid}),
    }
}

/// One RSA key pair per test binary (2048-bit generation is the slow part).
fn rsa_pair() -> &'static (rsa::RsaPrivateKey, String) {
    static PAIR: OnceLock<(rsa::RsaPrivateKey, String)> = OnceLock::new();
    PAIR.get_or_init(|| {
        use rsa::pkcs8::EncodePublicKey as _;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pem = private
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        (private, pem)
    })
}

fn rs256(kid: &str) -> TestKey {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let (private, _) = rsa_pair();
    TestKey {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes()),
        jwk: json!({"kty": "RSA", "n": B64.encode(private.n().to_bytes_be()),
                    "e": B64.encode(private.e().to_bytes_be()), "kid": kid, "use": "sig",
                    "alg": "RS256"}),
    }
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::HS256 => "HS256",
        _ => unreachable!(),
    }
}

/// A compact JWS with exactly this header and these claims.
fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let header = json!({"alg": alg_name(key.alg), "typ": "JWT", "kid": key.kid});
    sign_raw(&header, claims, &key.encoding, key.alg)
}

fn hs256(secret: &str, claims: &Value) -> String {
    sign_raw(
        &json!({"alg": "HS256", "typ": "JWT"}),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
}

// ---------------------------------------------------------------------------------------------
// Providers from test settings.

const LEGACY_SECRET: &str = "q8Zr2mX5vL0tN7bP4cW9yK3hF6jD1sGa";

fn providers(env: &[(&str, &str)]) -> Providers {
    let mut all: BTreeMap<String, String> = base_env("postgres://postgres@127.0.0.1:5432/unused");
    for (k, v) in env {
        all.insert(k.to_string(), v.to_string());
    }
    Providers::from_settings(&settings_from(all)).unwrap()
}

fn supabase_claims(issuer: &str, now: i64) -> Value {
    json!({
        "iss": issuer, "sub": "7f1c1d2e-0000-4000-8000-000000000001", "aud": "authenticated",
        "role": "authenticated", "exp": now + 3600, "iat": now, "email": "ada@example.org",
        "session_id": "5b0e5a4c-0000-4000-8000-000000000002", "is_anonymous": false,
        "user_metadata": {"email_verified": true, "full_name": "Ada Lovelace"}
    })
}

fn clerk_claims(issuer: &str, now: i64) -> Value {
    json!({
        "iss": issuer, "sub": "user_2abc", "sid": "sess_2xyz", "exp": now + 60, "nbf": now - 5,
        "iat": now, "azp": "https://app.example.org", "v": 2, "sts": "active"
    })
}

async fn invalid(providers: &Providers, token: &str, clock: &Clock) -> bool {
    matches!(
        providers.verify(token, clock.now()).await,
        Err(IdentityError::Invalid)
    )
}

// ---------------------------------------------------------------------------------------------
// Supabase.

#[actix_web::test]
async fn supabase_es256_eddsa_and_rs256_tokens_verify_through_the_jwks() {
    let (ec, ed, rs) = (es256("ec-1"), eddsa("ed-1"), rs256("rs-1"));
    let server = JwksServer::start(jwks(&[&ec, &ed, &rs]));
    let p = providers(&[("SUPABASE_URL", &server.base)]);
    let clock = Clock::system();
    let issuer = format!("{}/auth/v1", server.base);
    let claims = supabase_claims(&issuer, clock.now().unix_timestamp());
    for key in [&ec, &ed, &rs] {
        let token = sign(key, &claims);
        assert!(p.is_provider_token(&token));
        let got = p.verify(&token, clock.now()).await.unwrap();
        assert_eq!(got.provider, Provider::Supabase);
        assert_eq!(got.issuer_key, issuer);
        assert_eq!(got.subject, "7f1c1d2e-0000-4000-8000-000000000001");
        assert_eq!(got.email.as_deref(), Some("ada@example.org"));
        assert!(got.email_verified);
        assert_eq!(got.name.as_deref(), Some("Ada Lovelace"));
        assert!(got.session_id.is_some());
    }
    // All three tokens came from one fetch.
    assert_eq!(server.hits(), 1);
    assert_eq!(p.health(clock.now()), [(Provider::Supabase, Health::Ok)]);
}

#[actix_web::test]
async fn supabase_claim_rules_refuse_wrong_issuer_audience_role_anonymous_and_missing_sub() {
    let ec = es256("ec-1");
    let server = JwksServer::start(jwks(&[&ec]));
    let p = providers(&[
        ("SUPABASE_URL", &server.base),
        ("SUPABASE_JWT_SECRET", LEGACY_SECRET),
    ]);
    let clock = Clock::system();
    let issuer = format!("{}/auth/v1", server.base);
    let now = clock.now().unix_timestamp();
    let good = supabase_claims(&issuer, now);
    assert!(p.verify(&sign(&ec, &good), clock.now()).await.is_ok());
    // The legacy secret verifies legacy user tokens.
    assert!(
        p.verify(&hs256(LEGACY_SECRET, &good), clock.now())
            .await
            .is_ok()
    );

    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    // Future times carry a few seconds of margin: the test's `now` is read before it runs.
    let cases = [
        ("wrong audience", with("aud", json!("anon"))),
        (
            "audience list without authenticated",
            with("aud", json!(["other"])),
        ),
        ("no audience", without("aud")),
        ("role service_role", with("role", json!("service_role"))),
        ("role anon", with("role", json!("anon"))),
        ("no role", without("role")),
        ("anonymous sign-in", with("is_anonymous", json!(true))),
        ("no sub", without("sub")),
        ("empty sub", with("sub", json!(""))),
        ("no exp", without("exp")),
        ("no iat", without("iat")),
        ("expired beyond 30 s", with("exp", json!(now - 31))),
        ("issued 35 s in the future", with("iat", json!(now + 35))),
        ("nbf 35 s in the future", with("nbf", json!(now + 35))),
    ];
    for (what, claims) in &cases {
        assert!(
            invalid(&p, &sign(&ec, claims), &clock).await,
            "{what} (ES256)"
        );
        assert!(
            invalid(&p, &hs256(LEGACY_SECRET, claims), &clock).await,
            "{what} (HS256)"
        );
    }
    // Within the 30 s skew is fine.
    assert!(
        p.verify(&sign(&ec, &with("exp", json!(now - 25))), clock.now())
            .await
            .is_ok()
    );
    // The legacy anon and service_role keys: signed with the real secret, no sub.
    for role in ["anon", "service_role"] {
        let key = json!({"iss": "supabase", "ref": "abcd", "role": role, "iat": now,
                         "exp": now + 3600});
        let token = hs256(LEGACY_SECRET, &key);
        assert!(matches!(
            p.verify(&token, clock.now()).await,
            Err(IdentityError::NotProviderToken)
        ));
        let mut key = key;
        key["iss"] = json!(issuer);
        assert!(
            invalid(&p, &hs256(LEGACY_SECRET, &key), &clock).await,
            "{role}"
        );
    }
    // A wrong issuer is simply not this provider's token.
    let other = with("iss", json!("https://other.supabase.co/auth/v1"));
    assert!(!p.is_provider_token(&sign(&ec, &other)));
    assert!(matches!(
        p.verify(&sign(&ec, &other), clock.now()).await,
        Err(IdentityError::NotProviderToken)
    ));
}

#[actix_web::test]
async fn supabase_anonymous_sign_ins_only_when_allowed() {
    let ec = es256("ec-1");
    let server = JwksServer::start(jwks(&[&ec]));
    let p = providers(&[
        ("SUPABASE_URL", &server.base),
        ("SUPABASE_ALLOW_ANONYMOUS", "true"),
    ]);
    let clock = Clock::system();
    let mut claims = supabase_claims(
        &format!("{}/auth/v1", server.base),
        clock.now().unix_timestamp(),
    );
    claims["is_anonymous"] = json!(true);
    assert!(p.verify(&sign(&ec, &claims), clock.now()).await.is_ok());
}

#[actix_web::test]
async fn algorithm_confusion_none_and_key_naming_headers_are_refused() {
    let ec = es256("ec-1");
    let server = JwksServer::start(jwks(&[&ec]));
    // No legacy secret: HS256 is refused outright.
    let p = providers(&[("SUPABASE_URL", &server.base)]);
    let clock = Clock::system();
    let claims = supabase_claims(
        &format!("{}/auth/v1", server.base),
        clock.now().unix_timestamp(),
    );
    assert!(p.verify(&sign(&ec, &claims), clock.now()).await.is_ok());

    // HS256 "signed" with the provider's public key (its JWK text, and its x coordinate).
    let public = serde_json::to_string(&ec.jwk).unwrap();
    let x = ec.jwk["x"].as_str().unwrap().to_string();
    for secret in [public.as_str(), x.as_str()] {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": "ec-1"});
        let token = sign_raw(
            &header,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
        );
        assert!(
            invalid(&p, &token, &clock).await,
            "HS256 with the public key"
        );
    }
    // The header's alg must be the key's: an EdDSA header on the EC key's kid.
    let ed = eddsa("ec-1");
    assert!(
        invalid(&p, &sign(&ed, &claims), &clock).await,
        "alg mismatch"
    );
    // alg none, with and without a signature.
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT","kid":"ec-1"}"#),
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    assert!(invalid(&p, &none, &clock).await, "alg none");
    let genuine = sign(&ec, &claims);
    let signature = genuine.rsplit('.').next().unwrap();
    assert!(
        invalid(&p, &format!("{none}{signature}"), &clock).await,
        "alg none + sig"
    );
    // Headers that name or constrain keys, even on an otherwise genuine token.
    for (name, value) in [
        ("jku", json!(format!("{}/evil.json", server.base))),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("jwk", ec.jwk.clone()),
        ("crit", json!(["exp"])),
    ] {
        let mut header = json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"});
        header[name] = value;
        let token = sign_raw(&header, &claims, &ec.encoding, Algorithm::ES256);
        assert!(invalid(&p, &token, &clock).await, "{name} header");
    }
    // No kid for a JWKS key.
    let token = sign_raw(
        &json!({"alg": "ES256"}),
        &claims,
        &ec.encoding,
        Algorithm::ES256,
    );
    assert!(invalid(&p, &token, &clock).await, "no kid");
}

#[actix_web::test]
async fn kids_with_path_or_sql_characters_are_refused_before_any_lookup() {
    let ec = es256("ec-1");
    let server = JwksServer::start(jwks(&[&ec]));
    let p = providers(&[("SUPABASE_URL", &server.base)]);
    let clock = Clock::system();
    let claims = supabase_claims(
        &format!("{}/auth/v1", server.base),
        clock.now().unix_timestamp(),
    );
    for kid in [
        "../../etc/passwd",
        "ec-1' OR '1'='1",
        "ec-1;DROP TABLE users",
        "a/b",
        "ec-1\u{0}",
        "",
    ] {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let token = sign_raw(&header, &claims, &ec.encoding, Algorithm::ES256);
        assert!(invalid(&p, &token, &clock).await, "{kid:?}");
    }
    // Never fetched: the kid was refused first.
    assert_eq!(server.hits(), 0);
}

// ---------------------------------------------------------------------------------------------
// The JWKS cache.

#[actix_web::test]
async fn rotation_new_kid_after_refetch_old_kid_gone_after_cache_expiry() {
    let (old, new) = (es256("old"), es256("new"));
    let server = JwksServer::start(jwks(&[&old]));
    let p = providers(&[("SUPABASE_URL", &server.base)]);
    let clock = Clock::system();
    let issuer = format!("{}/auth/v1", server.base);
    let claims = |clock: &Clock| supabase_claims(&issuer, clock.now().unix_timestamp());
    assert!(
        p.verify(&sign(&old, &claims(&clock)), clock.now())
            .await
            .is_ok()
    );
    assert_eq!(server.hits(), 1);
    // The provider rotates: the new kid is unknown to the cache, one refetch finds it.
    server.serve(jwks(&[&new, &old]));
    assert!(
        p.verify(&sign(&new, &claims(&clock)), clock.now())
            .await
            .is_ok()
    );
    assert_eq!(server.hits(), 2);
    // The old key is removed; cached, it still verifies until the cache expires (10 min).
    server.serve(jwks(&[&new]));
    assert!(
        p.verify(&sign(&old, &claims(&clock)), clock.now())
            .await
            .is_ok()
    );
    clock.advance(Duration::from_secs(10 * 60 + 1));
    assert!(invalid(&p, &sign(&old, &claims(&clock)), &clock).await);
    assert!(
        p.verify(&sign(&new, &claims(&clock)), clock.now())
            .await
            .is_ok()
    );
}

#[actix_web::test]
async fn an_unknown_kid_flood_costs_at_most_one_fetch_per_30_seconds() {
    let ec = es256("ec-1");
    let server = JwksServer::start(jwks(&[&ec]));
    let p = providers(&[("SUPABASE_URL", &server.base)]);
    let clock = Clock::system();
    let issuer = format!("{}/auth/v1", server.base);
    let claims = supabase_claims(&issuer, clock.now().unix_timestamp());
    assert!(p.verify(&sign(&ec, &claims), clock.now()).await.is_ok());
    assert_eq!(server.hits(), 1);
    let flood = |n: usize| {
        let p = p.clone();
        let claims = claims.clone();
        let clock = clock.clone();
        async move {
            for i in 0..n {
                let attacker = es256(&format!("random-{i}-{}", uuid::Uuid::now_v7().simple()));
                assert!(invalid(&p, &sign(&attacker, &claims), &clock).await);
            }
        }
    };
    // Concurrently too: the refetch is serialised.
    futures_util::future::join_all((0..4).map(|_| flood(50))).await;
    assert_eq!(server.hits(), 2, "one refetch for the whole flood");
    clock.advance(Duration::from_secs(31));
    flood(50).await;
    assert_eq!(server.hits(), 3);
    // Genuine tokens kept working throughout.
    assert!(p.verify(&sign(&ec, &claims), clock.now()).await.is_ok());
}

/// The log lines written on this thread (the test runtime is single-threaded).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

#[actix_web::test]
async fn endpoint_down_cached_keys_work_for_an_hour_then_fail_closed() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let ec = es256("ec-1");
    let server = JwksServer::start(jwks(&[&ec]));
    let p = providers(&[("SUPABASE_URL", &server.base)]);
    let clock = Clock::system();
    let issuer = format!("{}/auth/v1", server.base);
    let fresh = |clock: &Clock| sign(&ec, &supabase_claims(&issuer, clock.now().unix_timestamp()));
    assert!(p.verify(&fresh(&clock), clock.now()).await.is_ok());
    server.set_up(false);
    // Past the 10-minute cache: the refetch fails, the cached key keeps working.
    clock.advance(Duration::from_secs(11 * 60));
    assert!(p.verify(&fresh(&clock), clock.now()).await.is_ok());
    let hits = server.hits();
    // Failing, the endpoint is retried at most every 30 s, not per request.
    for _ in 0..20 {
        assert!(p.verify(&fresh(&clock), clock.now()).await.is_ok());
    }
    assert_eq!(server.hits(), hits);
    // Every 30 s one retry, however many requests.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(31));
        for _ in 0..5 {
            assert!(p.verify(&fresh(&clock), clock.now()).await.is_ok());
        }
    }
    assert_eq!(server.hits(), hits + 3);
    assert_eq!(p.health(clock.now()), [(Provider::Supabase, Health::Ok)]);
    // An hour after the last good fetch: fail closed, degraded.
    clock.advance(Duration::from_secs(50 * 60));
    assert!(invalid(&p, &fresh(&clock), &clock).await);
    assert_eq!(
        p.health(clock.now()),
        [(Provider::Supabase, Health::Degraded)]
    );
    // The outage was logged once, not per request or per retry.
    assert_eq!(logs.count("JWKS endpoint is failing"), 1);
    // The endpoint comes back: the next retry restores service (and says so once).
    server.set_up(true);
    clock.advance(Duration::from_secs(31));
    assert!(p.verify(&fresh(&clock), clock.now()).await.is_ok());
    assert_eq!(p.health(clock.now()), [(Provider::Supabase, Health::Ok)]);
    assert_eq!(logs.count("reachable again"), 1);
}

// ---------------------------------------------------------------------------------------------
// Clerk.

#[actix_web::test]
async fn clerk_rs256_through_jwks_and_its_claim_rules() {
    let key = rs256("ins_key1");
    let server = JwksServer::start(jwks(&[&key]));
    let p = providers(&[
        ("CLERK_ISSUER", &server.base),
        ("CLERK_AUTHORIZED_PARTIES", "https://app.example.org"),
    ]);
    let clock = Clock::system();
    let now = clock.now().unix_timestamp();
    let good = clerk_claims(&server.base, now);
    let got = p.verify(&sign(&key, &good), clock.now()).await.unwrap();
    assert_eq!(got.provider, Provider::Clerk);
    assert_eq!(got.issuer_key, rampart::identity::CLERK);
    assert_eq!(got.subject, "user_2abc");
    assert_eq!(got.session_id.as_deref(), Some("sess_2xyz"));
    assert_eq!(got.email, None);
    assert!(!got.email_verified);

    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let cases = [
        ("no sid", without("sid")),
        ("no sub", without("sub")),
        ("no nbf", without("nbf")),
        ("no iat", without("iat")),
        ("no exp", without("exp")),
        ("no azp", without("azp")),
        ("foreign azp", with("azp", json!("https://evil.example"))),
        ("pending session", with("sts", json!("pending"))),
        ("expired beyond 5 s", with("exp", json!(now - 6))),
        ("nbf beyond 5 s", with("nbf", json!(now + 9))),
    ];
    for (what, claims) in &cases {
        assert!(invalid(&p, &sign(&key, claims), &clock).await, "{what}");
    }
    assert!(
        p.verify(&sign(&key, &with("nbf", json!(now + 4))), clock.now())
            .await
            .is_ok()
    );
    // RS256 only: an ES256 key served under a kid is refused for Clerk.
    let ec = es256("ins_ec");
    server.serve(jwks(&[&key, &ec]));
    assert!(
        invalid(&p, &sign(&ec, &good), &clock).await,
        "ES256 for Clerk"
    );
}

#[actix_web::test]
async fn clerk_pem_key_verifies_without_the_network() {
    let key = rs256("whatever");
    let (_, pem) = rsa_pair();
    // The issuer points at a closed port: nothing is fetched.
    let issuer = "http://127.0.0.1:9";
    let p = providers(&[("CLERK_ISSUER", issuer), ("CLERK_JWT_KEY", pem)]);
    let clock = Clock::system();
    let claims = clerk_claims(issuer, clock.now().unix_timestamp());
    assert!(p.verify(&sign(&key, &claims), clock.now()).await.is_ok());
    // Without azp allow-list, azp is not required.
    let mut no_azp = claims.clone();
    no_azp.as_object_mut().unwrap().remove("azp");
    assert!(p.verify(&sign(&key, &no_azp), clock.now()).await.is_ok());
    // The PEM's \n form (one line in a .env file) works too.
    let p = providers(&[
        ("CLERK_ISSUER", issuer),
        ("CLERK_JWT_KEY", &pem.replace('\n', "\\n")),
    ]);
    assert!(p.verify(&sign(&key, &claims), clock.now()).await.is_ok());
    assert_eq!(p.health(clock.now()), [(Provider::Clerk, Health::Ok)]);
}

// ---------------------------------------------------------------------------------------------
// Rampart tokens and provider tokens never stand in for each other.

#[actix_web::test]
async fn rampart_tokens_are_not_provider_tokens_and_the_reverse() {
    let ec = es256("ec-1");
    let server = JwksServer::start(jwks(&[&ec]));
    let mut env = base_env("postgres://postgres@127.0.0.1:5432/unused");
    env.insert("SUPABASE_URL".into(), server.base.clone());
    let settings = settings_from(env);
    let p = Providers::from_settings(&settings).unwrap();
    let keys = rampart::state::jwt_keys(&settings).unwrap();
    let clock = Clock::system();
    let (rampart_token, _) = keys
        .sign(
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            "admin",
            clock.now(),
        )
        .unwrap();
    assert!(!p.is_provider_token(&rampart_token));
    assert!(matches!(
        p.verify(&rampart_token, clock.now()).await,
        Err(IdentityError::NotProviderToken)
    ));
    let provider_token = sign(
        &ec,
        &supabase_claims(
            &format!("{}/auth/v1", server.base),
            clock.now().unix_timestamp(),
        ),
    );
    assert!(p.verify(&provider_token, clock.now()).await.is_ok());
    assert!(keys.verify_at(&provider_token, clock.now()).is_err());
    // Nothing was fetched for the rampart token.
    assert_eq!(server.hits(), 1);
}

#[actix_web::test]
async fn settings_that_are_unsafe_are_refused() {
    let build = |pairs: &[(&str, &str)]| {
        let mut env = base_env("postgres://postgres@127.0.0.1:5432/unused");
        for (k, v) in pairs {
            env.insert(k.to_string(), v.to_string());
        }
        Providers::from_settings(&settings_from(env))
    };
    assert!(!build(&[]).unwrap().any());
    for pairs in [
        &[("SUPABASE_URL", "http://supabase.example.org")][..],
        &[("CLERK_ISSUER", "ftp://clerk.example.org")][..],
        &[("CLERK_JWT_KEY", "not a pem")][..],
        &[
            ("CLERK_ISSUER", "https://clerk.example.org"),
            ("CLERK_JWT_KEY", "not a pem"),
        ][..],
        &[("SUPABASE_JWT_SECRET", LEGACY_SECRET)][..],
        &[("CLERK_AUTHORIZED_PARTIES", "https://app.example.org")][..],
    ] {
        assert!(
            matches!(build(pairs), Err(IdentityError::Config(_))),
            "{pairs:?}"
        );
    }
    assert!(
        build(&[("SUPABASE_URL", "https://abc.supabase.co")])
            .unwrap()
            .any()
    );
}

// ---------------------------------------------------------------------------------------------
// Through the application: an ES256 token via the JWKS on `/api/v1/me`, an outage audited once.

#[actix_web::test]
async fn through_the_app_a_jwks_outage_is_audited_once_then_fails_closed_and_ready_says_degraded() {
    let ec = es256("ec-app");
    let server = JwksServer::start(jwks(&[&ec]));
    let app = crate::support::app()
        .env("SUPABASE_URL", &server.base)
        .spawn()
        .await;
    let issuer = format!("{}/auth/v1", server.base);
    let token = |app: &crate::support::TestApp| {
        sign(
            &ec,
            &supabase_claims(&issuer, app.clock.now().unix_timestamp()),
        )
    };
    let res = app.get_auth("/api/v1/me", &token(&app)).await;
    assert_eq!(res.status(), 200, "ES256 through the JWKS, provisioned");
    server.set_up(false);
    app.clock.advance(Duration::from_secs(11 * 60));
    for _ in 0..5 {
        assert_eq!(app.get_auth("/api/v1/me", &token(&app)).await.status(), 200);
        app.clock.advance(Duration::from_secs(31));
    }
    app.clock.advance(Duration::from_secs(60 * 60));
    assert_eq!(app.get_auth("/api/v1/me", &token(&app)).await.status(), 401);
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["identity_providers"]["supabase"], "degraded");
    // The outage reaches the audit log once (written off the request path).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = {
            use diesel::prelude::*;
            let mut conn = app.db.as_ref().unwrap().connect();
            rampart::db::schema::audit_logs::table
                .filter(rampart::db::schema::audit_logs::action.eq("identity.provider_outage"))
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap()
        };
        if rows >= 1 {
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            let again = {
                use diesel::prelude::*;
                let mut conn = app.db.as_ref().unwrap().connect();
                rampart::db::schema::audit_logs::table
                    .filter(rampart::db::schema::audit_logs::action.eq("identity.provider_outage"))
                    .count()
                    .get_result::<i64>(&mut conn)
                    .unwrap()
            };
            assert_eq!(again, 1, "once per outage, not per request or retry");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no outage audited");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}
