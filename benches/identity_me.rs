//! `GET /api/v1/me` with a provider token (Supabase, ES256, its key from a JWKS served on
//! loopback and cached) versus a rampart HS256 access token, in the same run, against the same
//! instance (issue 14's benchmark; target ≥ 0.9×).
//!
//! Both requests verify a signature and read the user in one query; the provider token's query
//! joins the identity instead of checking a session, and its ES256 signature costs more than
//! HS256. The JWKS is fetched once (first request) and then served from the cache, as in
//! production between refreshes.
//!
//! `cargo bench --bench identity_me` — env as `webhook_inbox` (BENCH_ROUNDS [4], BENCH_SECONDS
//! [10], BENCH_CONNECTIONS [32], BENCH_DATABASE_URL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use common::{MakeRequest, Round, env_or};

/// A JWKS server on loopback, on a thread of its own: its base URL.
fn jwks_server(doc: Value) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            HttpServer::new(move || {
                let doc = doc.clone();
                App::new().default_service(web::to(move || {
                    let doc = doc.clone();
                    async move { HttpResponse::Ok().json(doc) }
                }))
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    format!("http://127.0.0.1:{}", rx.recv().unwrap())
}

fn main() {
    if !common::benchmarking() {
        return;
    }
    let rounds: usize = env_or("BENCH_ROUNDS", "4").parse().unwrap();
    let seconds: u64 = env_or("BENCH_SECONDS", "10").parse().unwrap();
    let connections: usize = env_or("BENCH_CONNECTIONS", "32").parse().unwrap();

    // The provider's key, its JWKS, and a token for one user.
    use p256::pkcs8::EncodePrivateKey as _;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let signing = p256::ecdsa::SigningKey::from_slice(&seed).unwrap();
    let point = signing.verifying_key().to_encoded_point(false);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench", "use": "sig",
        "alg": "ES256", "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap())}]});
    let base = jwks_server(jwks);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({"iss": format!("{base}/auth/v1"), "sub": "bench-user", "aud": "authenticated",
        "role": "authenticated", "exp": now + 7200, "iat": now, "email": "bench@example.org",
        "is_anonymous": false});
    let input = format!(
        "{}.{}",
        B64.encode(br#"{"alg":"ES256","typ":"JWT","kid":"bench"}"#),
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let key = jsonwebtoken::EncodingKey::from_ec_der(signing.to_pkcs8_der().unwrap().as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::ES256).unwrap();
    let provider_token = format!("{input}.{signature}");

    let (mut admin, name, db_url) = common::fresh_database("rampart_bench_identity");
    let settings = common::settings(&db_url, &[("SUPABASE_URL", base.as_str())]);
    let port = common::start(settings, Arc::new(|_: &mut web::ServiceConfig| {}));
    let runtime = common::load_runtime();
    let url = format!("http://127.0.0.1:{port}");

    // A rampart user and its HS256 access token; the provider user is provisioned by its first
    // request.
    let rampart_token: String = runtime.block_on(async {
        let client = reqwest::Client::new();
        let password = "correct horse battery staple 42";
        let res = client
            .post(format!("{url}/api/v1/auth/register"))
            .json(&json!({"username": "benchuser", "email": "local@example.org", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let res = client
            .post(format!("{url}/api/v1/auth/login"))
            .json(&json!({"login": "benchuser", "password": password}))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        let me = client
            .get(format!("{url}/api/v1/me"))
            .bearer_auth(&provider_token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200, "the provider token is accepted");
        body["access_token"].as_str().unwrap().to_string()
    });

    let counter = Arc::new(AtomicU64::new(0));
    let run = |token: &str, secs: u64| -> Round {
        let me = format!("{url}/api/v1/me");
        let token = token.to_string();
        let make: MakeRequest =
            Arc::new(move |client: &reqwest::Client, _| client.get(&me).bearer_auth(&token));
        runtime.block_on(common::load(make, secs, connections, counter.clone()))
    };
    run(&rampart_token, 2);
    run(&provider_token, 2);
    let mut own = Vec::new();
    let mut provider = Vec::new();
    for round in 0..rounds {
        if round % 2 == 0 {
            own.push(run(&rampart_token, seconds));
            provider.push(run(&provider_token, seconds));
        } else {
            provider.push(run(&provider_token, seconds));
            own.push(run(&rampart_token, seconds));
        }
    }
    let (own_row, o) = common::row("GET /api/v1/me, rampart HS256 token", &own);
    let (provider_row, p) = common::row(
        "GET /api/v1/me, Supabase ES256 token (cached JWKS)",
        &provider,
    );
    println!(
        "## Provider tokens ({rounds} alternating rounds × {seconds} s, {connections} connections)\n"
    );
    println!("{}", common::TABLE_HEAD);
    println!("{own_row}\n{provider_row}");
    println!(
        "\n**ratio provider / rampart: {:.2}×** (target ≥ 0.9×)",
        p / o
    );
    common::drop_database(&mut admin, &name);
    std::process::exit(0);
}
