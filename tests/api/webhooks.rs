//! The webhook inbox from the sender's side — a provider and an attacker: signatures made with
//! each provider's own algorithm, every way a header can be wrong, redeliveries (also racing),
//! user sync and subscriptions end to end, and the database going away.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use rampart::db::schema::webhook_events;
use rampart::webhooks::verify::{standard_signature, stripe_signature};

use crate::support::{PASSWORD, TestApp, app, app_without_database};

const STRIPE: &str = "/api/v1/webhooks/stripe";
const CLERK: &str = "/api/v1/webhooks/clerk";

fn stripe_secret(app: &TestApp) -> String {
    first_secret(app.settings.secrets.stripe_webhook_secret.as_ref())
}

fn clerk_secret(app: &TestApp) -> String {
    first_secret(app.settings.secrets.clerk_webhook_secret.as_ref())
}

fn first_secret(secret: Option<&secrecy::SecretString>) -> String {
    let list = secret.unwrap().expose_secret().to_string();
    list.split(',').next().unwrap().trim().to_string()
}

fn now(app: &TestApp) -> i64 {
    app.clock.now().unix_timestamp()
}

/// The app's current whole second, waiting (at most a second) until it is less than 200 ms old.
async fn early_in_a_second(app: &TestApp) -> i64 {
    loop {
        let at = app.clock.now();
        if at.millisecond() < 200 {
            return at.unix_timestamp();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    req.send().await.unwrap()
}

/// A delivery signed as Stripe signs it.
async fn stripe(app: &TestApp, body: &str) -> reqwest::Response {
    let header = stripe_signature(&stripe_secret(app), now(app), body.as_bytes());
    post_raw(
        app,
        STRIPE,
        &[("stripe-signature", header)],
        body.as_bytes(),
    )
    .await
}

/// A delivery signed as Svix signs Clerk's.
async fn clerk(app: &TestApp, id: &str, body: &str) -> reqwest::Response {
    let ts = now(app);
    let sig = standard_signature(&clerk_secret(app), id, ts, body.as_bytes()).unwrap();
    post_raw(
        app,
        CLERK,
        &[
            ("svix-id", id.to_string()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", sig),
        ],
        body.as_bytes(),
    )
    .await
}

fn stripe_event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({ "id": id, "object": "event", "type": kind, "created": created, "data": { "object": object } })
        .to_string()
}

fn clerk_user(kind: &str, clerk_id: &str, email: &str, username: Option<&str>) -> String {
    json!({
        "type": kind,
        "object": "event",
        "data": {
            "id": clerk_id,
            "object": "user",
            "username": username,
            "primary_email_address_id": "idn_1",
            "email_addresses": [
                { "id": "idn_0", "email_address": "other@example.net", "verification": { "status": "verified" } },
                { "id": "idn_1", "email_address": email, "verification": { "status": "verified" } }
            ]
        }
    })
    .to_string()
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    provider: String,
    event_id: String,
    event_type: String,
    outcome: String,
    deliveries: i32,
    error: Option<String>,
    raw_body: Vec<u8>,
}

fn rows(app: &TestApp) -> Vec<Row> {
    let mut conn = app.db.as_ref().unwrap().connect();
    webhook_events::table
        .order(webhook_events::id.asc())
        .select((
            webhook_events::provider,
            webhook_events::event_id,
            webhook_events::event_type,
            webhook_events::outcome,
            webhook_events::deliveries,
            webhook_events::error,
            webhook_events::raw_body,
        ))
        .load::<(String, String, String, String, i32, Option<String>, Vec<u8>)>(&mut conn)
        .unwrap()
        .into_iter()
        .map(
            |(provider, event_id, event_type, outcome, deliveries, error, raw_body)| Row {
                provider,
                event_id,
                event_type,
                outcome,
                deliveries,
                error,
                raw_body,
            },
        )
        .collect()
}

/// The problem body without its request id (which differs per request).
async fn refusal(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let mut body: Value = res.json().await.unwrap();
    body.as_object_mut().unwrap().remove("request_id");
    body
}

#[actix_web::test]
async fn a_signed_stripe_event_is_stored_once_and_redeliveries_are_acknowledged() {
    let app = app().spawn().await;
    let body = stripe_event(
        "evt_1",
        "customer.created",
        now(&app),
        json!({"id": "cus_1"}),
    );
    let res = stripe(&app, &body).await;
    assert_eq!(res.status(), 200);
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(receipt["event_id"], "evt_1");
    assert_eq!(
        receipt["outcome"], "ignored",
        "unknown types are stored and acknowledged"
    );
    for _ in 0..3 {
        let res = stripe(&app, &body).await;
        assert_eq!(res.status(), 200);
        let again: Value = res.json().await.unwrap();
        assert_eq!(again["outcome"], "duplicate");
        assert_eq!(again["id"], receipt["id"]);
    }
    let stored = rows(&app);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].deliveries, 4);
    assert_eq!(stored[0].outcome, "ignored");
    assert_eq!(
        stored[0].raw_body,
        body.as_bytes(),
        "the exact bytes are kept"
    );
}

#[actix_web::test]
async fn the_standard_webhooks_published_vectors_verify_end_to_end() {
    // The published vectors are from 2021 and 2022: a tolerance of years lets them through the
    // whole stack (the unit tests check the same vectors against the real clock rule).
    let vectors = [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ];
    for (secret, id, ts, body, signature) in vectors {
        let app = app()
            .env("CLERK_WEBHOOK_SECRET", secret)
            .env("WEBHOOK_TIMESTAMP_TOLERANCE", "1000000000")
            .spawn()
            .await;
        let headers = [
            ("svix-id", id.to_string()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", signature.to_string()),
        ];
        // Verified; the vector bodies have no `type`, so they are not events rampart can key.
        let res = post_raw(&app, CLERK, &headers, body.as_bytes()).await;
        assert_eq!(res.status(), 400);
        let problem: Value = res.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("not an event"),
            "{problem}"
        );
        // The same signature over a changed body is refused as unverifiable.
        let changed = body.replacen("test", "tesT", 1);
        let res = post_raw(&app, CLERK, &headers, changed.as_bytes()).await;
        let problem = refusal(res).await;
        assert_eq!(problem["detail"], rampart::webhooks::REFUSED);
    }
}

#[actix_web::test]
async fn every_bad_signature_gets_the_same_generic_400_and_nothing_is_stored() {
    let app = app().spawn().await;
    let secret = stripe_secret(&app);
    let t = now(&app);
    let body = stripe_event("evt_bad", "customer.created", t, json!({}));
    let good = stripe_signature(&secret, t, body.as_bytes());
    let sig = good.split_once(",v1=").unwrap().1.to_string();
    let wrong = stripe_signature(
        "whsec_not_the_configured_secret_at_all_123",
        t,
        body.as_bytes(),
    );
    let wrong_sig = wrong.split_once(",v1=").unwrap().1.to_string();
    let decoy = "a".repeat(64);
    let mut one_byte = body.clone().into_bytes();
    one_byte[10] ^= 1;
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("no header", None, body.clone().into_bytes()),
        (
            "decoys alone",
            Some(format!("t={t},v1={decoy},v1={wrong_sig}")),
            body.clone().into_bytes(),
        ),
        (
            "v0 only",
            Some(format!("t={t},v0={sig}")),
            body.clone().into_bytes(),
        ),
        (
            "wrong secret",
            Some(wrong.clone()),
            body.clone().into_bytes(),
        ),
        (
            "truncated",
            Some(format!("t={t},v1={}", &sig[..63])),
            body.clone().into_bytes(),
        ),
        (
            "upper-case hex",
            Some(format!("t={t},v1={}", sig.to_uppercase())),
            body.clone().into_bytes(),
        ),
        ("one byte changed", Some(good.clone()), one_byte),
        (
            "no =",
            Some(format!("t{t},v1={sig}")),
            body.clone().into_bytes(),
        ),
        (
            "empty part",
            Some(format!("t={t},,v1={sig}")),
            body.clone().into_bytes(),
        ),
        (
            "empty value",
            Some(format!("t={t},v1=")),
            body.clone().into_bytes(),
        ),
        (
            "duplicated t",
            Some(format!("t={t},t={t},v1={sig}")),
            body.clone().into_bytes(),
        ),
        (
            "non-integer t",
            Some(format!("t={t}.0,v1={sig}")),
            body.clone().into_bytes(),
        ),
        (
            "signed with another t",
            Some(format!("t={},v1={sig}", t - 1)),
            body.clone().into_bytes(),
        ),
        (
            "8 KiB header",
            Some(format!("t={t},v1={sig},v0={}", "b".repeat(8200))),
            body.clone().into_bytes(),
        ),
    ];
    let mut bodies = Vec::new();
    for (name, header, payload) in cases {
        let headers: Vec<(&str, String)> = header
            .into_iter()
            .map(|h| ("stripe-signature", h))
            .collect();
        let res = post_raw(&app, STRIPE, &headers, &payload).await;
        assert_eq!(res.status(), 400, "{name}");
        bodies.push((name, refusal(res).await));
    }
    for (name, body) in &bodies {
        assert_eq!(
            body, &bodies[0].1,
            "{name}: one generic answer for every refusal"
        );
    }
    assert_eq!(bodies[0].1["detail"], rampart::webhooks::REFUSED);
    assert!(rows(&app).is_empty(), "refused deliveries are not stored");
    // The real signature among decoys is accepted.
    let header = format!("t={t},v1={decoy},v1={sig},v0={decoy}");
    let res = post_raw(
        &app,
        STRIPE,
        &[("stripe-signature", header)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn a_64_kib_header_is_refused_without_a_server_error() {
    let app = app().spawn().await;
    let t = now(&app);
    let header = format!("t={t},v1={}", "c".repeat(64 * 1024));
    let res = post_raw(&app, STRIPE, &[("stripe-signature", header)], b"{}").await;
    let status = res.status().as_u16();
    assert!(status == 400 || status == 431, "{status}");
    assert!(rows(&app).is_empty());
}

#[actix_web::test]
async fn standard_webhooks_header_variants_and_refusals() {
    let app = app().spawn().await;
    let secret = clerk_secret(&app);
    let t = now(&app);
    let body = json!({"type": "session.created", "data": {"id": "sess_1"}}).to_string();
    let sig = standard_signature(&secret, "msg_1", t, body.as_bytes()).unwrap();
    let other = standard_signature(&secret, "msg_2", t, body.as_bytes()).unwrap();
    let wrong = standard_signature(
        "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
        "msg_1",
        t,
        body.as_bytes(),
    )
    .unwrap();
    let h = |id: &str, ts: String, sig: String| {
        vec![
            ("svix-id", id.to_string()),
            ("svix-timestamp", ts),
            ("svix-signature", sig),
        ]
    };
    let refused: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("swapped id", h("msg_2", t.to_string(), sig.clone())),
        (
            "signature of another id",
            h("msg_1", t.to_string(), other.clone()),
        ),
        ("wrong secret", h("msg_1", t.to_string(), wrong.clone())),
        (
            "decoys alone",
            h("msg_1", t.to_string(), format!("{wrong} {other}")),
        ),
        ("v1, alone", h("msg_1", t.to_string(), "v1,".into())),
        (
            "truncated",
            h("msg_1", t.to_string(), sig[..sig.len() - 2].to_string()),
        ),
        (
            "v1a only",
            h("msg_1", t.to_string(), sig.replace("v1,", "v1a,")),
        ),
        ("id with a dot", h("msg.1", t.to_string(), sig.clone())),
        (
            "timestamp with a dot",
            h("msg_1", format!("{t}.0"), sig.clone()),
        ),
        (
            "missing id",
            vec![
                ("svix-timestamp", t.to_string()),
                ("svix-signature", sig.clone()),
            ],
        ),
        (
            "missing timestamp",
            vec![("svix-id", "msg_1".into()), ("svix-signature", sig.clone())],
        ),
        (
            "missing signature",
            vec![
                ("svix-id", "msg_1".into()),
                ("svix-timestamp", t.to_string()),
            ],
        ),
    ];
    for (name, headers) in refused {
        let res = post_raw(&app, CLERK, &headers, body.as_bytes()).await;
        assert_eq!(res.status(), 400, "{name}");
        assert_eq!(
            refusal(res).await["detail"],
            rampart::webhooks::REFUSED,
            "{name}"
        );
    }
    assert!(rows(&app).is_empty());
    // The real one among decoys and unknown versions, with the webhook-* alias names.
    let headers = vec![
        ("webhook-id", "msg_1".to_string()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", format!("v1a,xyz {wrong} {sig} v2,abc")),
    ];
    let res = post_raw(&app, CLERK, &headers, body.as_bytes()).await;
    assert_eq!(res.status(), 200);
    let stored = rows(&app);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_id, "msg_1");
    assert_eq!(stored[0].outcome, "ignored");
}

#[actix_web::test]
async fn timestamps_are_accepted_within_299_seconds_and_refused_at_301_either_way() {
    let app = app().spawn().await;
    let secret = stripe_secret(&app);
    let clerk_key = clerk_secret(&app);
    let mut t = now(&app);
    for (offset, ok) in [(-301i64, false), (301, false), (-299, true), (299, true)] {
        // Signed early in a second, so the server reads the same whole second even when the
        // machine is busy (a boundary of one second is what is tested).
        t = early_in_a_second(&app).await;
        let id = format!("evt_skew_{}", offset + 1000);
        let body = stripe_event(&id, "customer.created", t, json!({}));
        let header = stripe_signature(&secret, t + offset, body.as_bytes());
        let res = post_raw(
            &app,
            STRIPE,
            &[("stripe-signature", header)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(res.status().is_success(), ok, "stripe {offset}");
        let cbody = json!({"type": "x.y", "data": {}}).to_string();
        let ts = early_in_a_second(&app).await + offset;
        let sig = standard_signature(&clerk_key, &id, ts, cbody.as_bytes()).unwrap();
        let headers = [
            ("svix-id", id.clone()),
            ("svix-timestamp", ts.to_string()),
            ("svix-signature", sig),
        ];
        let res = post_raw(&app, CLERK, &headers, cbody.as_bytes()).await;
        assert_eq!(res.status().is_success(), ok, "clerk {offset}");
    }
    // The clock moves: a delivery signed now is stale 301 s later.
    let body = stripe_event("evt_late", "customer.created", t, json!({}));
    let header = stripe_signature(&secret, now(&app), body.as_bytes());
    app.clock.advance(Duration::from_secs(301));
    let res = post_raw(
        &app,
        STRIPE,
        &[("stripe-signature", header)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(res.status(), 400);
}

#[actix_web::test]
async fn the_second_of_two_secrets_verifies_during_a_rotation() {
    let old = "whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xk";
    let new = "whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3";
    let app = app()
        .env("STRIPE_WEBHOOK_SECRET", &format!("{new}, {old}"))
        .env("CLERK_WEBHOOK_SECRET", &format!("{new},{old}"))
        .spawn()
        .await;
    let t = now(&app);
    let body = stripe_event("evt_roll", "customer.created", t, json!({}));
    for (i, secret) in [old, new].iter().enumerate() {
        let body = body.replace("evt_roll", &format!("evt_roll{i}"));
        let header = stripe_signature(secret, t, body.as_bytes());
        let res = post_raw(
            &app,
            STRIPE,
            &[("stripe-signature", header)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(res.status(), 200, "stripe secret {i}");
        let cbody = json!({"type": "x.y"}).to_string();
        let id = format!("msg_roll{i}");
        let sig = standard_signature(secret, &id, t, cbody.as_bytes()).unwrap();
        let headers = [
            ("svix-id", id),
            ("svix-timestamp", t.to_string()),
            ("svix-signature", sig),
        ];
        assert_eq!(
            post_raw(&app, CLERK, &headers, cbody.as_bytes())
                .await
                .status(),
            200
        );
    }
    let signatures: Vec<String> = {
        let mut conn = app.db.as_ref().unwrap().connect();
        webhook_events::table
            .order(webhook_events::id.asc())
            .select(webhook_events::signature)
            .load(&mut conn)
            .unwrap()
    };
    assert_eq!(
        signatures,
        [
            "verified:secret1",
            "verified:secret1",
            "verified:secret0",
            "verified:secret0"
        ]
    );
}

#[actix_web::test]
async fn an_undecodable_clerk_secret_stops_the_service_at_start() {
    let db = crate::support::TestDb::new();
    let mut env = crate::support::base_env(&db.url);
    env.insert(
        "CLERK_WEBHOOK_SECRET".into(),
        "whsec_***not base64***".into(),
    );
    let settings = crate::support::settings_from(env);
    let built = rampart::app::Application::build(settings);
    let error = built
        .err()
        .expect("a bad secret is a start-up error")
        .to_string();
    assert!(error.contains("CLERK_WEBHOOK_SECRET"), "{error}");
    let mut env = crate::support::base_env(&db.url);
    env.insert("CLERK_WEBHOOK_SECRET".into(), "whsec_".into());
    assert!(rampart::app::Application::build(crate::support::settings_from(env)).is_err());
}

#[actix_web::test]
async fn a_pretty_printed_non_ascii_body_with_escaped_nul_verifies_on_its_exact_bytes() {
    let app = app().spawn().await;
    let body = "{\n  \"id\": \"evt_ü\",\n  \"type\": \"customer.created\",\n  \"data\": {\n    \"object\": {\n      \"name\": \"Zoë Ångström — 東京\",\n      \"note\": \"a\\u0000b\"\n    }\n  }\n}\n";
    // `evt_ü` is not an id rampart can key on: verified, then refused as not an event.
    let res = stripe(&app, body).await;
    assert_eq!(res.status(), 400);
    let body = body.replace("evt_ü", "evt_unicode");
    let res = stripe(&app, &body).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(rows(&app)[0].raw_body, body.as_bytes());
}

#[actix_web::test]
async fn bodies_over_256_kib_are_413_and_the_webhook_limit_is_only_for_webhooks() {
    let app = app().spawn().await;
    let padding = "x".repeat(200 * 1024);
    let body = stripe_event(
        "evt_big",
        "customer.created",
        now(&app),
        json!({ "pad": padding }),
    );
    assert!(body.len() > 65536);
    assert_eq!(
        stripe(&app, &body).await.status(),
        200,
        "200 KiB is under the webhook limit"
    );
    let padding = "x".repeat(257 * 1024);
    let body = stripe_event(
        "evt_huge",
        "customer.created",
        now(&app),
        json!({ "pad": padding }),
    );
    assert_eq!(stripe(&app, &body).await.status(), 413);
    let big_login = json!({ "login": "a", "password": "x".repeat(100 * 1024) });
    let res = app.post_json("/api/v1/auth/login", &big_login).await;
    assert_eq!(res.status(), 413, "other routes keep MAX_BODY_BYTES");
}

#[actix_web::test]
async fn twenty_identical_deliveries_at_once_are_processed_exactly_once() {
    let app = app().spawn().await;
    let body = clerk_user(
        "user.created",
        "user_race",
        "race@example.org",
        Some("racer"),
    );
    let ts = now(&app);
    let sig = standard_signature(&clerk_secret(&app), "msg_race", ts, body.as_bytes()).unwrap();
    let headers = [
        ("svix-id", "msg_race".to_string()),
        ("svix-timestamp", ts.to_string()),
        ("svix-signature", sig),
    ];
    let sends = (0..20).map(|_| post_raw(&app, CLERK, &headers, body.as_bytes()));
    let responses = futures_util::future::join_all(sends).await;
    let mut outcomes = Vec::new();
    for res in responses {
        assert_eq!(res.status(), 200);
        let receipt: Value = res.json().await.unwrap();
        outcomes.push(receipt["outcome"].as_str().unwrap().to_string());
    }
    assert_eq!(
        outcomes.iter().filter(|o| *o == "processed").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 19);
    let stored = rows(&app);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].deliveries, 20);
    assert_eq!(app.count("users WHERE email = 'race@example.org'"), 1);
    assert_eq!(app.count("user_identities WHERE subject = 'user_race'"), 1);
    assert_eq!(
        app.count("audit_logs WHERE action = 'user.registered'"),
        1,
        "one account, audited once"
    );
}

#[actix_web::test]
async fn clerk_users_are_created_updated_and_deleted_and_their_credentials_end() {
    let app = app().spawn().await;
    let res = clerk(
        &app,
        "msg_c1",
        &clerk_user("user.created", "user_abc", "Sam@Example.org", Some("sam_c")),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "processed");
    let id = app.user_id("sam_c");
    assert_eq!(
        app.count(&format!(
                "users WHERE id = '{id}' AND password_hash IS NULL AND role = 'team_member' AND email = 'sam@example.org'"
            )
        ),
        1
    );
    // No password: the account cannot sign in with one (generic 401).
    assert_eq!(app.login_as("sam_c", PASSWORD).await.status(), 401);
    assert_eq!(app.login_as("sam_c", "").await.status(), 401);

    // Updated in Clerk: email and username follow, keyed on the Clerk id.
    let res = clerk(
        &app,
        "msg_c2",
        &clerk_user(
            "user.updated",
            "user_abc",
            "sam.new@example.org",
            Some("sam_new"),
        ),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.count(&format!(
            "users WHERE id = '{id}' AND email = 'sam.new@example.org' AND username = 'sam_new'"
        )),
        1
    );

    // Give the account credentials of every kind (a password set by SQL stands in for the
    // identity-provider sign-in of the next issue): API session, API key, console session.
    app.register("donor").await;
    app.sql(&format!(
        "UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE username = 'donor'), role = 'admin', admin_granted_by = 'operator' WHERE id = '{id}'"
    ));
    let tokens = app.login("sam_new").await;
    let key = app.api_key(&tokens.access, "k", &["profile:read"]).await;
    let key = key["key"].as_str().unwrap().to_string();
    app.sql(&format!(
        "INSERT INTO admin_sessions (token_hash, user_id, created_at, last_seen_at, expires_at, authenticated_at) VALUES (sha256('console-token'::bytea), '{id}', now(), now(), now() + interval '1 hour', now())"
    ));
    assert_eq!(
        app.get_auth("/api/v1/me", &tokens.access).await.status(),
        200
    );
    assert_eq!(app.get_auth("/api/v1/me", &key).await.status(), 200);

    let deleted = json!({"type": "user.deleted", "data": {"id": "user_abc", "object": "user", "deleted": true}}).to_string();
    let res = clerk(&app, "msg_c3", &deleted).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "processed");
    assert_eq!(
        app.get_auth("/api/v1/me", &tokens.access).await.status(),
        401
    );
    assert_eq!(app.get_auth("/api/v1/me", &key).await.status(), 401);
    let refresh = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": tokens.refresh}),
        )
        .await;
    assert_eq!(refresh.status(), 401);
    assert_eq!(
        app.count(&format!("admin_sessions WHERE user_id = '{id}'")),
        0
    );
    assert_eq!(
        app.count(&format!("users WHERE id = '{id}' AND NOT active")),
        1,
        "disabled, never deleted"
    );
    assert!(
        app.count(&format!("audit_logs WHERE target_id = '{id}'")) >= 3,
        "history kept"
    );
    assert_eq!(
        app.count("audit_logs WHERE action = 'user.disabled' AND actor_type = 'system'"),
        1
    );
}

#[actix_web::test]
async fn an_email_already_used_locally_is_a_stored_failure_not_a_merge() {
    let app = app().spawn().await;
    app.register("local").await;
    let res = clerk(
        &app,
        "msg_m1",
        &clerk_user(
            "user.created",
            "user_evil",
            "local@example.org",
            Some("evil"),
        ),
    )
    .await;
    assert_eq!(
        res.status(),
        200,
        "verified and stored: a retry would not help"
    );
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "failed");
    let stored = rows(&app);
    assert_eq!(stored[0].outcome, "failed");
    assert!(
        stored[0]
            .error
            .as_deref()
            .unwrap()
            .contains("already used by a local account"),
        "{:?}",
        stored[0].error
    );
    assert_eq!(app.count("user_identities"), 0, "not linked");
    assert_eq!(app.count("users"), 1, "no second account");
    assert_eq!(
        app.count("audit_logs WHERE action = 'webhook.received' AND outcome = 'failure'"),
        1
    );
    // An update naming a Clerk user never seen, with the same email: still no merge.
    let res = clerk(
        &app,
        "msg_m2",
        &clerk_user("user.updated", "user_evil", "LOCAL@example.org", None),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "failed");
    assert_eq!(app.count("user_identities"), 0);
}

#[actix_web::test]
async fn admin_emails_make_synced_users_admins_only_when_verified_and_allowed() {
    let app = app()
        .env("ADMIN_EMAILS", "boss@example.org,boss2@example.org")
        .env("IDENTITY_ADMIN_BY_EMAIL", "true")
        .spawn()
        .await;
    clerk(
        &app,
        "msg_a1",
        &clerk_user("user.created", "user_b1", "boss@example.org", Some("boss")),
    )
    .await;
    assert_eq!(
        app.count("users WHERE username = 'boss' AND role = 'admin' AND admin_granted_by = 'verified_email'"
        ),
        1
    );
    let unverified = clerk_user(
        "user.created",
        "user_b2",
        "boss2@example.org",
        Some("boss2"),
    )
    .replace("\"verified\"", "\"unverified\"");
    clerk(&app, "msg_a2", &unverified).await;
    assert_eq!(
        app.count("users WHERE username = 'boss2' AND role = 'team_member'"),
        1
    );
    assert_eq!(
        app.count("audit_logs WHERE action = 'user.admin_email_unverified'"),
        1
    );

    let app = crate::support::app()
        .env("ADMIN_EMAILS", "boss@example.org")
        .spawn()
        .await;
    clerk(
        &app,
        "msg_a3",
        &clerk_user("user.created", "user_b1", "boss@example.org", Some("boss")),
    )
    .await;
    assert_eq!(
        app.count("users WHERE username = 'boss' AND role = 'team_member'"),
        1,
        "off by default"
    );
}

#[actix_web::test]
async fn subscriptions_follow_stripe_matched_by_the_checkout_customer_never_by_email() {
    let app = app().spawn().await;
    let tokens = app.user("payer").await;
    let user_id = app.user_id("payer");
    assert_eq!(
        app.get_auth("/api/v1/me/subscription", &tokens.access)
            .await
            .status(),
        404
    );
    let t = now(&app);
    let sub = |status: &str, cancel: bool, period_end: i64| {
        json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status,
            "cancel_at_period_end": cancel,
            "items": { "data": [ { "price": { "id": "price_pro" }, "current_period_end": period_end } ] }
        })
    };
    // Before the checkout, the customer is nobody's: failed (replayable), not matched by email.
    let early = stripe_event(
        "evt_s0",
        "customer.subscription.created",
        t - 10,
        sub("active", false, t + 1000),
    );
    let res = stripe(&app, &early).await;
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "failed");

    let checkout = stripe_event(
        "evt_s1",
        "checkout.session.completed",
        t,
        json!({ "id": "cs_1", "object": "checkout.session", "client_reference_id": user_id, "customer": "cus_1", "subscription": "sub_1", "customer_email": "payer@example.org" }),
    );
    assert_eq!(
        stripe(&app, &checkout).await.json::<Value>().await.unwrap()["outcome"],
        "processed"
    );
    let view: Value = app
        .get_auth("/api/v1/me/subscription", &tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["customer_id"], "cus_1");
    assert_eq!(view["status"], "incomplete");

    let created = stripe_event(
        "evt_s2",
        "customer.subscription.created",
        t + 1,
        sub("active", false, t + 30 * 86400),
    );
    assert_eq!(
        stripe(&app, &created).await.json::<Value>().await.unwrap()["outcome"],
        "processed"
    );
    let view: Value = app
        .get_auth("/api/v1/me/subscription", &tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "active");
    assert_eq!(view["price_id"], "price_pro");
    assert!(view["current_period_end"].as_str().is_some());

    let failed = stripe_event(
        "evt_s3",
        "invoice.payment_failed",
        t + 2,
        json!({ "id": "in_1", "customer": "cus_1", "subscription": "sub_1" }),
    );
    stripe(&app, &failed).await;
    let updated = stripe_event(
        "evt_s4",
        "customer.subscription.updated",
        t + 3,
        sub("past_due", true, t + 30 * 86400),
    );
    stripe(&app, &updated).await;
    // An older event arriving late changes nothing.
    let stale = stripe_event(
        "evt_s5",
        "customer.subscription.updated",
        t + 1,
        sub("active", false, t),
    );
    assert_eq!(
        stripe(&app, &stale).await.json::<Value>().await.unwrap()["outcome"],
        "ignored"
    );
    let view: Value = app
        .get_auth("/api/v1/me/subscription", &tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "past_due");
    assert_eq!(view["cancel_at_period_end"], true);
    assert!(view["last_payment_failed_at"].as_str().is_some());

    let deleted = stripe_event(
        "evt_s6",
        "customer.subscription.deleted",
        t + 4,
        sub("canceled", false, t + 30 * 86400),
    );
    stripe(&app, &deleted).await;
    let view: Value = app
        .get_auth("/api/v1/me/subscription", &tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "canceled");

    // Another user sees only their own (nothing).
    let other = app.user("other").await;
    assert_eq!(
        app.get_auth("/api/v1/me/subscription", &other.access)
            .await
            .status(),
        404
    );
    // A checkout naming someone who is not a rampart user fails, stored.
    let bogus = stripe_event(
        "evt_s7",
        "checkout.session.completed",
        t,
        json!({ "client_reference_id": uuid::Uuid::now_v7().to_string(), "customer": "cus_2" }),
    );
    assert_eq!(
        stripe(&app, &bogus).await.json::<Value>().await.unwrap()["outcome"],
        "failed"
    );
    assert_eq!(
        app.count("audit_logs WHERE action = 'subscription.updated'"),
        5
    );
}

#[actix_web::test]
async fn while_the_database_is_down_a_verified_delivery_gets_503_with_retry_after() {
    let app = app_without_database().spawn().await;
    let body = stripe_event("evt_down", "customer.created", now(&app), json!({}));
    let res = stripe(&app, &body).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    // An unsigned one is still a 400: verification needs no database.
    let res = post_raw(&app, STRIPE, &[], body.as_bytes()).await;
    assert_eq!(res.status(), 400);
}

#[actix_web::test]
async fn refusals_reach_the_audit_log_aggregated_per_ip_and_minute() {
    let app = app().spawn().await;
    for _ in 0..5 {
        post_raw(
            &app,
            STRIPE,
            &[("stripe-signature", "t=1,v1=00".into())],
            b"{}",
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = app.db.as_ref().unwrap().connect();
        let entries: Vec<_> = rampart::audit::list(&mut conn, &Default::default())
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.action == "webhook.rejected")
            .collect();
        if entries.len() == 1 && entries[0].metadata["count"] == 5 {
            assert_eq!(entries[0].metadata["provider"], "stripe");
            assert_eq!(entries[0].outcome, "denied");
            assert!(entries[0].metadata.get("body").is_none());
            break;
        }
        assert!(Instant::now() < deadline, "{entries:?}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn webhooks_have_their_own_rate_limit_under_every_spelling() {
    let app = app()
        .env("RATE_LIMIT_PER_MINUTE", "2")
        .env("RATE_LIMIT_WEBHOOK_PER_MINUTE", "4")
        .spawn()
        .await;
    // The global budget is spent…
    for _ in 0..2 {
        assert_eq!(app.get("/api/v1/openapi.json").await.status(), 200);
    }
    assert_eq!(app.get("/api/v1/openapi.json").await.status(), 429);
    // …and deliveries still pass: they spend a budget of their own, whatever the spelling.
    let body = stripe_event("evt_rl", "customer.created", now(&app), json!({}));
    let header = stripe_signature(&stripe_secret(&app), now(&app), body.as_bytes());
    let mut statuses = Vec::new();
    for path in [
        STRIPE,
        "/api/v1/webhooks/%73tripe",
        "/api/v1/webhooks/%73%74%72%69%70%65",
        STRIPE,
        "/api/v1/webhooks/%73tripe",
    ] {
        let res = post_raw(
            &app,
            path,
            &[("stripe-signature", header.clone())],
            body.as_bytes(),
        )
        .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
    assert_eq!(rows(&app)[0].deliveries, 4);
}

#[actix_web::test]
async fn twenty_identical_deliveries_of_a_type_rampart_ignores_are_stored_once() {
    let app = app().spawn().await;
    let body = stripe_event("evt_race_ignored", "customer.updated", now(&app), json!({}));
    let header = stripe_signature(&stripe_secret(&app), now(&app), body.as_bytes());
    let headers = [("stripe-signature", header)];
    let sends = (0..20).map(|_| post_raw(&app, STRIPE, &headers, body.as_bytes()));
    let mut outcomes = Vec::new();
    for res in futures_util::future::join_all(sends).await {
        assert_eq!(res.status(), 200);
        outcomes.push(
            res.json::<Value>().await.unwrap()["outcome"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        outcomes.iter().filter(|o| *o == "ignored").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 19);
    let stored = rows(&app);
    assert_eq!((stored.len(), stored[0].deliveries), (1, 20));
}
