//! Daily quotas per principal, held in Postgres: limits, resets, atomicity under concurrency,
//! sharing between instances, per-role and per-key configuration, and the audit trail.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, Tokens, app, app_sharing_database};

async fn create_key(app: &TestApp, access: &str, name: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/api-keys"))
        .bearer_auth(access)
        .json(&json!({ "name": name, "scopes": ["profile:read", "data:export"] }))
        .send()
        .await
        .unwrap()
}

async fn export(app: &TestApp, credential: &str) -> reqwest::Response {
    app.get_auth("/api/v1/me/export", credential).await
}

async fn assert_quota_exceeded(res: reqwest::Response, quota: &str) -> Value {
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "https://rampart.dev/problems/quota-exceeded");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(quota), "{detail}");
    assert!(detail.contains("resets at"), "{detail}");
    body
}

/// (quota, actor_type) of every `quota.exceeded` row.
fn exceeded_rows(app: &TestApp) -> Vec<(String, String, i64)> {
    let mut conn = app.db.as_ref().unwrap().connect();
    rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(rampart::audit::Action::QuotaExceeded),
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .into_iter()
    .map(|e| {
        (
            e.metadata["quota"].as_str().unwrap().to_string(),
            e.actor_type,
            e.metadata["count"].as_i64().unwrap_or(1),
        )
    })
    .collect()
}

#[actix_web::test]
async fn api_key_creation_has_a_daily_quota_that_resets_at_midnight_utc() {
    let app = app().env("QUOTA_API_KEYS_PER_DAY", "3").spawn().await;
    let alice = app.user("alice").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let res = create_key(&app, &alice.access, &format!("k{i}")).await;
        assert_eq!(res.status(), 201);
        ids.push(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let res = create_key(&app, &alice.access, "k3").await;
    assert_quota_exceeded(res, "api_keys_created").await;
    let res = create_key(&app, &alice.access, "k4").await;
    assert_eq!(res.status(), 429);
    // Creations are counted, not live keys: revoking one gives nothing back today.
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/api-keys/{}", ids[0])))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(create_key(&app, &alice.access, "k5").await.status(), 429);
    // Rotation is not creation: a leaked key can always be replaced.
    let res = app
        .client
        .post(app.url(&format!("/api/v1/api-keys/{}/rotate", ids[1])))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // Another user has a quota of their own.
    let bob = app.user("bob").await;
    assert_eq!(create_key(&app, &bob.access, "b").await.status(), 201);
    // A day later, alice's quota is whole again (fresh tokens: the old ones expired).
    app.clock.advance(Duration::from_secs(86_400));
    let alice = app.login("alice").await;
    assert_eq!(
        create_key(&app, &alice.access, "tomorrow").await.status(),
        201
    );
    // Repeated refusals are one aggregated audit row per minute, naming the user.
    let rows = exceeded_rows(&app);
    assert_eq!(
        rows,
        vec![("api_keys_created".to_string(), "user".to_string(), 3)]
    );
}

#[actix_web::test]
async fn a_refused_creation_spends_no_quota() {
    let app = app()
        .env("QUOTA_API_KEYS_PER_DAY", "2")
        .env("API_KEY_MAX_PER_USER", "1")
        .spawn()
        .await;
    let alice = app.user("alice").await;
    assert_eq!(create_key(&app, &alice.access, "one").await.status(), 201);
    // Over the live-key limit: 409, and today's quota is untouched by it.
    for _ in 0..3 {
        assert_eq!(create_key(&app, &alice.access, "two").await.status(), 409);
    }
    let list: Value = app
        .get_auth("/api/v1/api-keys", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    app.client
        .delete(app.url(&format!("/api/v1/api-keys/{id}")))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    let two: Value = create_key(&app, &alice.access, "two")
        .await
        .json()
        .await
        .unwrap();
    app.client
        .delete(app.url(&format!("/api/v1/api-keys/{}", two["id"].as_str().unwrap())))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    // Two creations today: the third is over the quota (the live-key limit is not in the way).
    assert_quota_exceeded(
        create_key(&app, &alice.access, "three").await,
        "api_keys_created",
    )
    .await;
}

#[actix_web::test]
async fn fifty_concurrent_requests_at_quota_minus_ten_admit_exactly_ten() {
    let app = app().env("QUOTA_EXPORTS_PER_DAY", "60").spawn().await;
    let alice = app.user("alice").await;
    let me: Value = app
        .get_auth("/api/v1/me", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    let id = me["id"].as_str().unwrap();
    app.sql(&format!(
        "INSERT INTO quota_usage VALUES ('user', '{id}', 'data_exports', \
         (now() AT TIME ZONE 'UTC')::date, 50)"
    ));
    let requests = (0..50).map(|_| export(&app, &alice.access));
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 40);
    let mut conn = app.db.as_ref().unwrap().connect();
    #[derive(diesel::QueryableByName)]
    struct Used {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        used: i32,
    }
    use diesel::RunQueryDsl;
    let used: Used = diesel::sql_query(format!(
        "SELECT used FROM quota_usage WHERE subject_id = '{id}' AND kind = 'data_exports'"
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(used.used, 60);
    // Exactly ten exports were audited.
    let exports = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(rampart::audit::Action::UserExported),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(exports.items.len(), 10);
}

#[actix_web::test]
async fn quotas_are_shared_by_instances_and_survive_a_restart() {
    let first = app().env("QUOTA_EXPORTS_PER_DAY", "2").spawn().await;
    let alice: Tokens = first.user("alice").await;
    assert_eq!(export(&first, &alice.access).await.status(), 200);
    // A second instance on the same database (or the same one restarted) sees the same count.
    let second = app_sharing_database(&first).spawn().await;
    let alice_there = second.login("alice").await;
    assert_eq!(export(&second, &alice_there.access).await.status(), 200);
    assert_quota_exceeded(export(&first, &alice.access).await, "data_exports").await;
    assert_quota_exceeded(export(&second, &alice_there.access).await, "data_exports").await;
}

#[actix_web::test]
async fn admins_are_unlimited_unless_configured_and_roles_can_be_configured() {
    let app = app()
        .env("QUOTA_EXPORTS_PER_DAY", "1")
        .env("ADMIN_EMAILS", "root@example.org")
        .spawn()
        .await;
    let root = app.admin_user("root").await;
    for _ in 0..5 {
        assert_eq!(export(&app, &root.access).await.status(), 200);
    }
    let member = app.user("member").await;
    assert_eq!(export(&app, &member.access).await.status(), 200);
    assert_eq!(export(&app, &member.access).await.status(), 429);

    let configured = crate::support::app()
        .env("QUOTA_EXPORTS_PER_DAY", "1")
        .env("ADMIN_EMAILS", "root@example.org")
        .env(
            "QUOTA_OVERRIDES",
            "admin:data_exports=2, team_member:data_exports=unlimited",
        )
        .spawn()
        .await;
    let root = configured.admin_user("root").await;
    assert_eq!(export(&configured, &root.access).await.status(), 200);
    assert_eq!(export(&configured, &root.access).await.status(), 200);
    assert_quota_exceeded(export(&configured, &root.access).await, "data_exports").await;
    let member = configured.user("member").await;
    for _ in 0..4 {
        assert_eq!(export(&configured, &member.access).await.status(), 200);
    }
}

#[actix_web::test]
async fn each_api_key_can_have_a_daily_quota_of_its_own() {
    let app = app()
        .env("QUOTA_EXPORTS_PER_DAY", "3")
        .env("QUOTA_OVERRIDES", "api_key:data_exports=1")
        .spawn()
        .await;
    let alice = app.user("alice").await;
    let key = |res: Value| res["key"].as_str().unwrap().to_string();
    let a = key(create_key(&app, &alice.access, "a")
        .await
        .json()
        .await
        .unwrap());
    let b = key(create_key(&app, &alice.access, "b")
        .await
        .json()
        .await
        .unwrap());
    assert_eq!(export(&app, &a).await.status(), 200);
    assert_quota_exceeded(export(&app, &a).await, "data_exports").await;
    assert_eq!(export(&app, &b).await.status(), 200);
    // The owner's own quota (3) counts the keys' uses too: one left.
    assert_eq!(export(&app, &alice.access).await.status(), 200);
    assert_quota_exceeded(export(&app, &alice.access).await, "data_exports").await;
    let rows = exceeded_rows(&app);
    assert!(
        rows.iter()
            .any(|(q, actor, _)| q == "data_exports" && actor == "api_key"),
        "{rows:?}"
    );
}

#[actix_web::test]
async fn the_export_holds_the_callers_own_data_only() {
    let app = app().spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    create_key(&app, &bob.access, "bobs").await;
    create_key(&app, &alice.access, "alices").await;
    let res = export(&app, &alice.access).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["user"]["username"], "alice");
    assert!(doc["user"].get("password_hash").is_none());
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
    let keys = doc["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "alices");
    assert!(keys[0].get("key").is_none() && keys[0].get("key_hash").is_none());
    let text = doc.to_string();
    assert!(
        !text.contains("bobs") && !text.contains("\"bob\""),
        "{text}"
    );
    let actions: Vec<&str> = doc["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"user.registered"), "{actions:?}");
    assert!(actions.contains(&"auth.login.succeeded"), "{actions:?}");
    assert!(actions.contains(&"api_key.created"), "{actions:?}");
    // A demo account may not export (no data:export), and neither may a key without the scope.
    let res = app
        .client
        .post(app.url("/api/v1/api-keys"))
        .bearer_auth(&alice.access)
        .json(&json!({ "name": "narrow", "scopes": ["profile:read"] }))
        .send()
        .await
        .unwrap();
    let narrow: Value = res.json().await.unwrap();
    assert_eq!(
        export(&app, narrow["key"].as_str().unwrap()).await.status(),
        403
    );
}
