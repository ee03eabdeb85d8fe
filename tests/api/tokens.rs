//! Access tokens from the attacker's side: forged, tampered, expired, misplaced, or belonging to
//! a session that no longer exists.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, spawn_app};

fn b64(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

fn hs256(secret: &str, header: &Value, claims: &Value) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        B64.encode(mac.finalize().into_bytes())
    )
}

fn decode_part(token: &str, index: usize) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(index).unwrap()).unwrap()).unwrap()
}

fn secret(app: &TestApp) -> String {
    use secrecy::ExposeSecret;
    app.settings
        .secrets
        .jwt_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_string()
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.get_auth("/api/v1/me", token).await.status().as_u16()
}

#[actix_web::test]
async fn a_genuine_token_has_the_designed_claims() {
    let app = spawn_app().await;
    let tokens = app.user("quinn").await;
    let header = decode_part(&tokens.access, 0);
    let claims = decode_part(&tokens.access, 1);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].is_string());
    for claim in [
        "iss", "aud", "sub", "sid", "role", "typ", "iat", "nbf", "exp", "jti",
    ] {
        assert!(!claims[claim].is_null(), "missing {claim}");
    }
    assert_eq!(claims["sid"], tokens.session_id);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(status(&app, &tokens.access).await, 200);
}

#[actix_web::test]
async fn forged_and_tampered_tokens_are_refused() {
    let app = spawn_app().await;
    let tokens = app.user("rupert").await;
    let header = decode_part(&tokens.access, 0);
    let claims = decode_part(&tokens.access, 1);
    let key = secret(&app);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // Re-signing the genuine claims with the real key works (the forging helper is right) ...
    assert_eq!(status(&app, &hs256(&key, &header, &claims)).await, 200);

    let mut cases: Vec<(&str, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({"alg": alg, "typ": "JWT"});
        cases.push(("alg none", format!("{}.{}.", b64(&h), b64(&claims))));
    }
    let mut admin = claims.clone();
    admin["role"] = json!("admin");
    let parts: Vec<&str> = tokens.access.split('.').collect();
    cases.push((
        "tampered payload",
        format!("{}.{}.{}", parts[0], b64(&admin), parts[2]),
    ));
    cases.push((
        "wrong key",
        hs256("another-secret-that-is-long-enough-0123", &header, &claims),
    ));
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        hs256(&key, &header, &c)
    };
    let without = |k: &str| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(k);
        hs256(&key, &header, &c)
    };
    cases.push(("expired", with("exp", json!(now - 120))));
    cases.push(("nbf in the future", with("nbf", json!(now + 120))));
    cases.push(("exp as string", with("exp", json!((now + 600).to_string()))));
    cases.push(("nbf as string", with("nbf", json!(now.to_string()))));
    cases.push(("wrong iss", with("iss", json!("someone-else"))));
    cases.push(("wrong aud", with("aud", json!("another-api"))));
    cases.push(("wrong typ", with("typ", json!("refresh"))));
    cases.push(("missing exp", without("exp")));
    cases.push(("missing sub", without("sub")));
    cases.push(("missing nbf", without("nbf")));
    cases.push((
        "unknown session",
        with("sid", json!(uuid::Uuid::now_v7().to_string())),
    ));
    let other = app.register("sybil").await;
    cases.push((
        "another user's sub with my session",
        with("sub", other["id"].clone()),
    ));
    for (what, header_patch) in [
        ("crit header", json!({"crit": ["exp"]})),
        ("jku header", json!({"jku": "http://127.0.0.1:9/jwks.json"})),
        ("x5u header", json!({"x5u": "http://127.0.0.1:9/cert.pem"})),
        (
            "jwk header",
            json!({"jwk": {"kty": "oct", "k": B64.encode("attacker-key-attacker-key-attacker")}}),
        ),
        ("unknown kid", json!({"kid": "no-such-key"})),
        ("kid with SQL", json!({"kid": "' OR 1=1 --"})),
        ("kid with path", json!({"kid": "../../../../dev/null"})),
    ] {
        let mut h = header.clone();
        for (k, v) in header_patch.as_object().unwrap() {
            h[k] = v.clone();
        }
        // jwk/jku attacks sign with the attacker's key.
        let signer = if what == "jwk header" {
            "attacker-key-attacker-key-attacker"
        } else {
            key.as_str()
        };
        let token = hs256(signer, &h, &claims);
        let refused = what != "jku header" && what != "x5u header";
        if refused {
            cases.push((what, token));
        } else {
            // jku/x5u are ignored, never fetched: with our key they verify as usual, with an
            // attacker's key they do not.
            assert_eq!(status(&app, &token).await, 200, "{what} is simply ignored");
            cases.push((
                what,
                hs256("attacker-key-attacker-key-attacker", &h, &claims),
            ));
        }
    }
    cases.push(("garbage", "not.a.jwt".into()));
    cases.push(("empty", String::new()));

    for (what, token) in cases {
        let res = app.get_auth("/api/v1/me", &token).await;
        assert_eq!(res.status(), 401, "{what} must be refused");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["type"], "https://rampart.dev/problems/unauthorized",
            "{what}"
        );
    }
}

#[actix_web::test]
async fn tokens_are_read_only_from_the_authorization_header() {
    let app = spawn_app().await;
    let tokens = app.user("trent").await;
    for path in [
        format!("/api/v1/me?access_token={}", tokens.access),
        format!("/api/v1/me?token={}", tokens.access),
    ] {
        assert_eq!(app.get(&path).await.status(), 401, "{path}");
    }
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("access_token={}", tokens.access))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("authorization", format!("Basic {}", tokens.access))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[actix_web::test]
async fn tokens_die_with_their_session_or_user() {
    let app = spawn_app().await;
    let a = app.user("ursula").await;
    let b = app.login("ursula").await;
    // Logout revokes the current session only.
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(status(&app, &a.access).await, 401, "token after logout");
    assert_eq!(status(&app, &b.access).await, 200);
    // Disabling the user takes effect on the very next request.
    app.sql("UPDATE users SET active = false WHERE username = 'ursula'");
    assert_eq!(
        status(&app, &b.access).await,
        401,
        "token of a disabled user"
    );
    app.sql("UPDATE users SET active = true WHERE username = 'ursula'");
    assert_eq!(status(&app, &b.access).await, 200);
    // Sign-out everywhere (what the admin action does): every session revoked.
    app.sql("UPDATE sessions SET revoked_at = now() WHERE user_id = (SELECT id FROM users WHERE username = 'ursula')");
    assert_eq!(status(&app, &b.access).await, 401);
    assert_eq!(app.login_as("ursula", PASSWORD).await.status(), 200);
}

#[actix_web::test]
async fn role_changes_apply_without_a_new_token() {
    let app = spawn_app().await;
    let t = app.user("victor").await;
    let res = app
        .client
        .get(app.url("/api/v1/auth/sessions"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.sql("UPDATE users SET role = 'demo' WHERE username = 'victor'");
    let res = app
        .client
        .get(app.url("/api/v1/auth/sessions"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        403,
        "the stored role, not the token's claim, decides"
    );
}

#[actix_web::test]
async fn eddsa_tokens_and_public_jwks() {
    use ed25519_dalek::pkcs8::spki::EncodePublicKey;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
    let dir = std::env::temp_dir().join(format!("rampart-jwt-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(
        &rampart::crypto::random::bytes(32)
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let private = dir.join("ed25519.private.pem");
    let public = dir.join("ed25519.public.pem");
    std::fs::write(
        &private,
        signing.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let public_pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(&public, &public_pem).unwrap();

    let app = crate::support::app()
        .env("JWT_ALGORITHM", "EdDSA")
        .env("JWT_PRIVATE_KEY_FILE", private.to_str().unwrap())
        .env(
            "JWT_PUBLIC_KEY_FILES",
            &format!("k2026={}", public.display()),
        )
        .spawn()
        .await;
    let tokens = app.user("walter").await;
    assert_eq!(decode_part(&tokens.access, 0)["alg"], "EdDSA");
    assert_eq!(decode_part(&tokens.access, 0)["kid"], "k2026");
    assert_eq!(status(&app, &tokens.access).await, 200);

    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], "k2026");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "no private member");

    // HS256 signed with the public key's PEM bytes (the classic confusion) is refused.
    let claims = decode_part(&tokens.access, 1);
    let confused = hs256(
        &public_pem,
        &json!({"alg": "HS256", "kid": "k2026"}),
        &claims,
    );
    assert_eq!(status(&app, &confused).await, 401);

    // HS256 deployments publish no JWKS.
    let hs = spawn_app().await;
    assert_eq!(hs.get("/.well-known/jwks.json").await.status(), 404);
}
