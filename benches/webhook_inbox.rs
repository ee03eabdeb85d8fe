//! Webhook inbox throughput (issue 13): verified Stripe deliveries per second versus a plain
//! insert-one-row route, in the same run, through the same middleware stack and pool; and the
//! verifiers' own cost per delivery.
//!
//! Like for like: both routes are served by one rampart instance (rate limits off on both), and
//! both insert the same row into `webhook_events` (body, headers, request id, source IP). The webhook route adds what the
//! inbox does — header parsing, HMAC-SHA256 over the raw body, the timestamp check, JSON parsing
//! of the envelope, the `ON CONFLICT DO NOTHING` unique check — for events rampart stores but does
//! not act on (the bulk of a Stripe account's traffic). Every delivery has a fresh event id, so
//! none is a duplicate. The load generator runs in this process on its own runtime thread and
//! does the same signing work for both routes. The plain route is mounted beside the webhook
//! routes (`/api/v1/webhooks/plain-insert`, an extra route registered after every API route) so
//! the router's matching, which runs the patterns of every `/api/v1/…/{id}` route it passes,
//! costs it at least what it costs the webhook route.
//!
//! `cargo bench --bench webhook_inbox` — env: BENCH_DATABASE_URL (a superuser URL, default
//! postgres://postgres@127.0.0.1:5432/postgres), BENCH_ROUNDS [4], BENCH_SECONDS [10],
//! BENCH_CONNECTIONS [32]. Prints a markdown summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use rampart::crypto::hmac::HmacKey;
use rampart::webhooks::verify::{
    StandardHeaders, standard_signature, stripe_signature, verify_standard, verify_stripe,
};

use common::{MakeRequest, Round, env_or};

fn body(n: u64) -> String {
    // A realistic Stripe envelope (~700 bytes) of a type rampart stores but does not act on.
    serde_json::json!({
        "id": format!("evt_bench_{n:012}"),
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": 1764460800,
        "type": "customer.updated",
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": "req_8vHcbZ7Jb0abcd", "idempotency_key": "b1f3c7a2-8d3e-4f6a-9b1c-2d3e4f5a6b7c" },
        "data": { "object": {
            "id": "cus_T9xY2abcdEFGhi", "object": "customer", "balance": 0, "created": 1764460000,
            "currency": "eur", "delinquent": false, "description": "bench customer",
            "email": "bench.customer@example.org", "invoice_prefix": "A1B2C3D4",
            "invoice_settings": { "default_payment_method": "pm_1SbenchABCDEFG" },
            "metadata": { "rampart_user": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" },
            "name": "Bench Customer", "preferred_locales": ["en", "de"], "tax_exempt": "none"
        }, "previous_attributes": { "email": "old@example.org" } }
    })
    .to_string()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn verifier_cost() -> (f64, f64) {
    let secret = "whsec_benchbenchbenchbenchbenchbench0123";
    let body = body(1);
    let now = 1_764_460_800;
    let header = stripe_signature(secret, now, body.as_bytes());
    let keys = [HmacKey::new(secret.as_bytes())];
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        assert!(
            verify_stripe(
                Some(std::hint::black_box(header.as_bytes())),
                body.as_bytes(),
                &keys,
                now,
                300
            )
            .is_ok()
        );
    }
    let stripe = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let clerk_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sig = standard_signature(clerk_secret, "msg_bench", now, body.as_bytes()).unwrap();
    let key = [HmacKey::new(
        &rampart::config::validate::standard_webhooks_key(clerk_secret).unwrap(),
    )];
    let ts = now.to_string();
    let headers = StandardHeaders {
        id: Some(b"msg_bench"),
        timestamp: Some(ts.as_bytes()),
        signature: Some(sig.as_bytes()),
    };
    let t = Instant::now();
    for _ in 0..n {
        assert!(
            verify_standard(
                std::hint::black_box(&headers),
                body.as_bytes(),
                &key,
                now,
                300
            )
            .is_ok()
        );
    }
    let standard = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    (stripe, standard)
}

fn main() {
    if !common::benchmarking() {
        return;
    }
    let rounds: usize = env_or("BENCH_ROUNDS", "4").parse().unwrap();
    let seconds: u64 = env_or("BENCH_SECONDS", "10").parse().unwrap();
    let connections: usize = env_or("BENCH_CONNECTIONS", "32").parse().unwrap();
    let (mut admin, name, db_url) = common::fresh_database("rampart_bench_webhooks");
    let (stripe_us, standard_us) = verifier_cost();
    let settings = common::settings(&db_url, &[]);
    let secret = {
        use secrecy::ExposeSecret;
        Arc::new(
            settings
                .secrets
                .stripe_webhook_secret
                .as_ref()
                .unwrap()
                .expose_secret()
                .to_string(),
        )
    };
    let port = common::start(
        settings,
        Arc::new(|cfg: &mut web::ServiceConfig| {
            cfg.route(
                "/api/v1/webhooks/plain-insert",
                web::post().to(plain_insert),
            );
        }),
    );
    let runtime = common::load_runtime();
    let counter = Arc::new(AtomicU64::new(0));
    let run = |path: &str, signed: bool, secs: u64| -> Round {
        let url = format!("http://127.0.0.1:{port}{path}");
        let secret = secret.clone();
        let make: MakeRequest = Arc::new(move |client: &reqwest::Client, n: u64| {
            let body = body(n);
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            // Both routes pay the client's signing cost; only one sends the header.
            let header = stripe_signature(&secret, now, body.as_bytes());
            let mut req = client.post(&url).header("content-type", "application/json");
            if signed {
                req = req.header("stripe-signature", header);
            }
            req.body(body)
        });
        runtime.block_on(common::load(make, secs, connections, counter.clone()))
    };
    // Warm up both.
    run("/api/v1/webhooks/plain-insert", false, 2);
    run("/api/v1/webhooks/stripe", true, 2);
    let mut plain = Vec::new();
    let mut hooks = Vec::new();
    // ABBA order, each run on an emptied table: neither route gains from running first or on a
    // smaller table.
    let mut verified_total = 0i64;
    let fresh = |conn: &mut PgConnection| -> i64 {
        let n: i64 = diesel::sql_query(
            "SELECT count(*) AS n FROM webhook_events WHERE signature LIKE 'verified:%'",
        )
        .get_result::<Count>(conn)
        .map(|c| c.n)
        .unwrap_or(0);
        diesel::sql_query("TRUNCATE webhook_events")
            .execute(conn)
            .unwrap();
        n
    };
    let mut conn = PgConnection::establish(&db_url).unwrap();
    fresh(&mut conn);
    for round in 0..rounds {
        let order: [(&str, bool); 2] = if round % 2 == 0 {
            [
                ("/api/v1/webhooks/plain-insert", false),
                ("/api/v1/webhooks/stripe", true),
            ]
        } else {
            [
                ("/api/v1/webhooks/stripe", true),
                ("/api/v1/webhooks/plain-insert", false),
            ]
        };
        for (path, signed) in order {
            // BENCH_ONLY=webhook|plain: one route only (for profiling).
            match std::env::var("BENCH_ONLY").as_deref() {
                Ok("webhook") if !signed => continue,
                Ok("plain") if signed => continue,
                _ => {}
            }
            let result = run(path, signed, seconds);
            verified_total += fresh(&mut conn);
            if signed {
                hooks.push(result);
            } else {
                plain.push(result);
            }
        }
    }
    drop(conn);
    let (plain_row, p) = common::row("POST /api/v1/webhooks/plain-insert (plain insert)", &plain);
    let (hook_row, h) = common::row("POST /api/v1/webhooks/stripe (verified)", &hooks);
    println!(
        "## Webhook inbox ({rounds} alternating rounds × {seconds} s, {connections} connections)\n"
    );
    println!("{}", common::TABLE_HEAD);
    println!("{plain_row}\n{hook_row}");
    println!(
        "\n**ratio verified / plain: {:.2}×** (target ≥ 0.8×)",
        h / p
    );
    let measured: usize = hooks.iter().map(|r| r.ok).sum();
    println!(
        "\nverified deliveries stored during the measured runs: {verified_total} (2xx answers: {measured})"
    );
    println!(
        "\nverifier cost per delivery (~700-byte body, one secret): Stripe {stripe_us:.2} µs, \
         Standard Webhooks {standard_us:.2} µs"
    );
    common::drop_database(&mut admin, &name);
    std::process::exit(0);
}

/// The plain route: the same row into the same table — the body, the headers that matter, the
/// request id and source IP — with no verification, no parsing and no duplicate check.
async fn plain_insert(
    state: web::Data<rampart::state::AppState>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, rampart::error::AppError> {
    use rampart::db::schema::webhook_events as w;
    let id = uuid::Uuid::now_v7();
    let meta = rampart::auth::request_meta(&req);
    let headers: serde_json::Map<String, serde_json::Value> = ["content-type", "user-agent"]
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(*name)?.to_str().ok()?;
            Some((
                name.to_string(),
                serde_json::Value::String(value.to_string()),
            ))
        })
        .collect();
    state
        .pool
        .run(move |conn| {
            let now = time::OffsetDateTime::now_utc();
            diesel::insert_into(w::table)
                .values((
                    w::id.eq(id),
                    w::provider.eq("stripe"),
                    w::event_id.eq(format!("plain_{}", id.simple())),
                    w::event_type.eq("plain"),
                    w::received_at.eq(now),
                    w::signature.eq("none"),
                    w::signed_at.eq(now),
                    w::outcome.eq("ignored"),
                    w::last_delivery_at.eq(now),
                    w::processed_at.eq(Some(now)),
                    w::raw_body.eq(body.to_vec()),
                    w::headers.eq(serde_json::Value::Object(headers)),
                    w::request_id.eq(meta.request_id),
                    w::source_ip.eq(meta.ip.map(|ip| ipnet::IpNet::from(ip.to_canonical()))),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id })))
}
