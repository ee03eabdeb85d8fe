//! `rampart webhooks replay ID` and `rampart webhooks prune` against deliveries made over HTTP.

use diesel::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use rampart::db::schema::webhook_events;
use rampart::webhooks::verify::stripe_signature;

use crate::commands::rampart;
use crate::support::{TestApp, app};

async fn deliver(app: &TestApp, body: &Value) -> Value {
    let secret = app
        .settings
        .secrets
        .stripe_webhook_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_string();
    let body = body.to_string();
    let header = stripe_signature(&secret, app.clock.now().unix_timestamp(), body.as_bytes());
    let res = app
        .client
        .post(app.url("/api/v1/webhooks/stripe"))
        .header("stripe-signature", header)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn outcome(app: &TestApp, event_id: &str) -> Option<(String, i32)> {
    let mut conn = app.db.as_ref().unwrap().connect();
    webhook_events::table
        .filter(webhook_events::event_id.eq(event_id))
        .select((webhook_events::outcome, webhook_events::replays))
        .first(&mut conn)
        .optional()
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[actix_web::test]
async fn a_failed_delivery_is_replayed_once_its_cause_is_fixed_and_the_replay_is_audited() {
    let app = app().spawn().await;
    app.register("payer").await;
    let user_id = app.user_id("payer");
    let t = app.clock.now().unix_timestamp();
    let early = json!({"id": "evt_r1", "type": "customer.subscription.created", "created": t,
        "data": {"object": {"id": "sub_9", "customer": "cus_9", "status": "active"}}});
    let receipt = deliver(&app, &early).await;
    assert_eq!(receipt["outcome"], "failed");
    let id = receipt["id"].as_str().unwrap().to_string();
    let env = app.settings_env.clone();

    let out = rampart(&["webhooks", "replay", &id], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("failed — customer cus_9 is not linked"),
        "{}",
        text(&out)
    );
    assert_eq!(outcome(&app, "evt_r1"), Some(("failed".into(), 1)));

    let checkout = json!({"id": "evt_r2", "type": "checkout.session.completed", "created": t,
        "data": {"object": {"client_reference_id": user_id, "customer": "cus_9", "subscription": "sub_9"}}});
    assert_eq!(deliver(&app, &checkout).await["outcome"], "processed");
    let out = rampart(&["webhooks", "replay", &id], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("processed"), "{}", text(&out));
    assert_eq!(outcome(&app, "evt_r1"), Some(("processed".into(), 2)));

    // Processed once; never again.
    let out = rampart(&["webhooks", "replay", &id], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("only failed deliveries"),
        "{}",
        text(&out)
    );
    let out = rampart(&["webhooks", "replay", "not-a-uuid"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let unknown = uuid::Uuid::now_v7().to_string();
    let out = rampart(&["webhooks", "replay", &unknown], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no webhook delivery"), "{}", text(&out));

    let mut conn = app.db.as_ref().unwrap().connect();
    let replays: Vec<(String, String)> = rampart::db::schema::audit_logs::table
        .filter(rampart::db::schema::audit_logs::action.eq("webhook.replayed"))
        .order(rampart::db::schema::audit_logs::id.asc())
        .select((
            rampart::db::schema::audit_logs::actor_type,
            rampart::db::schema::audit_logs::outcome,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        replays,
        [
            ("system".to_string(), "failure".to_string()),
            ("system".to_string(), "success".to_string())
        ]
    );
}

#[actix_web::test]
async fn prune_deletes_only_deliveries_past_the_retention() {
    let app = app().spawn().await;
    let t = app.clock.now().unix_timestamp();
    for id in ["evt_old", "evt_new"] {
        deliver(
            &app,
            &json!({"id": id, "type": "customer.created", "created": t, "data": {"object": {}}}),
        )
        .await;
    }
    app.sql("UPDATE webhook_events SET received_at = now() - interval '8 days' WHERE event_id = 'evt_old'");
    let out = rampart(&["webhooks", "prune"], &app.settings_env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("deleted 1 webhook deliveries older than 7 days"),
        "{}",
        text(&out)
    );
    assert!(outcome(&app, "evt_old").is_none());
    assert!(outcome(&app, "evt_new").is_some());
    let out = rampart(&["webhooks", "prune"], &app.settings_env);
    assert!(text(&out).contains("deleted 0"), "{}", text(&out));
}
