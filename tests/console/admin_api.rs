//! The admin JSON API: users (search, disable/enable/unlock/sign-out, role), sessions, keys and
//! the audit chain — the same rules as the console, from the API's side.

use serde_json::{Value, json};

use crate::client::{admin_app, user_id, user_state};
use crate::support::{PASSWORD, TestApp, Tokens};

async fn post(app: &TestApp, token: &str, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn setup() -> (TestApp, Tokens, Tokens) {
    let app = admin_app().env("LOCKOUT_THRESHOLD", "2").spawn().await;
    let root = app.admin_user("root").await;
    let ops = app.admin_user("ops").await;
    for name in ["alice", "albert", "bob"] {
        app.register(name).await;
    }
    (app, root, ops)
}

#[actix_web::test]
async fn users_are_searched_filtered_and_paged() {
    let (app, root, _) = setup().await;
    app.sql("UPDATE users SET active = false WHERE username = 'bob'");
    let list = |query: &'static str| {
        let app = &app;
        let token = root.access.clone();
        async move {
            let res = app
                .get_auth(&format!("/api/v1/admin/users{query}"), &token)
                .await;
            assert_eq!(res.status(), 200, "{query}");
            let body: Value = res.json().await.unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("?q=al").await, vec!["albert", "alice"]);
    assert_eq!(list("?q=ALB").await, vec!["albert"], "case-insensitive");
    assert_eq!(list("?q=bob%40example").await, vec!["bob"], "email prefix");
    assert_eq!(
        list("?q=%25").await,
        Vec::<String>::new(),
        "LIKE wildcards are literal"
    );
    assert_eq!(list("?q=a_").await, Vec::<String>::new());
    assert_eq!(list("?role=admin").await, vec!["ops", "root"]);
    assert_eq!(list("?status=disabled").await, vec!["bob"]);
    // Keyset pages of 2: all five users once.
    let mut seen = Vec::new();
    let mut url = "/api/v1/admin/users?limit=2".to_string();
    loop {
        let page: Value = app.get_auth(&url, &root.access).await.json().await.unwrap();
        for u in page["items"].as_array().unwrap() {
            seen.push(u["username"].as_str().unwrap().to_string());
            // Admins see lockout state; nobody ever sees a hash.
            assert!(u.get("failed_logins").is_some() && u.get("password_hash").is_none());
        }
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/admin/users?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["bob", "albert", "alice", "ops", "root"]);
    let res = app
        .get_auth("/api/v1/admin/users?role=owner&status=gone", &root.access)
        .await;
    assert_eq!(res.status(), 422);
}

#[actix_web::test]
async fn disable_enable_unlock_and_sign_out_through_the_api() {
    let (app, root, ops) = setup().await;
    let bob = app.login("bob").await;
    let bob_id = user_id(&app, "bob");
    let path = |action: &str| format!("/api/v1/admin/users/{bob_id}/{action}");
    // Disable needs a reason; bodies are checked.
    let res = post(&app, &ops.access, &path("disable"), None).await;
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .post(app.url(&path("disable")))
        .bearer_auth(&ops.access)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = post(
        &app,
        &ops.access,
        &path("disable"),
        Some(json!({ "reason": "abuse", "extra": 1 })),
    )
    .await;
    assert_eq!(res.status(), 422, "unknown fields are refused");
    let res = post(
        &app,
        &ops.access,
        &path("disable"),
        Some(json!({ "reason": "abuse" })),
    )
    .await;
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["active"], false);
    assert_eq!(app.get_auth("/api/v1/me", &bob.access).await.status(), 401);
    assert_eq!(app.login_as("bob", PASSWORD).await.status(), 401);
    assert_eq!(
        post(&app, &ops.access, &path("enable"), None)
            .await
            .status(),
        200
    );
    // Lock bob, then unlock.
    for _ in 0..2 {
        app.login_as("bob", "wrong wrong wrong").await;
    }
    let view: Value = app
        .get_auth(&format!("/api/v1/admin/users/{bob_id}"), &ops.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["locked"], true);
    assert_eq!(
        post(&app, &ops.access, &path("unlock"), None)
            .await
            .status(),
        200
    );
    let bob = app.login("bob").await;
    assert_eq!(
        post(
            &app,
            &ops.access,
            &path("sign-out"),
            Some(json!({ "reason": "incident 42" }))
        )
        .await
        .status(),
        200
    );
    assert_eq!(app.get_auth("/api/v1/me", &bob.access).await.status(), 401);
    // Unknown and malformed ids are 404.
    let res = post(
        &app,
        &ops.access,
        &format!("/api/v1/admin/users/{}/enable", uuid::Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    let res = post(&app, &ops.access, "/api/v1/admin/users/nope/enable", None).await;
    assert_eq!(res.status(), 404);
    let _ = root;
}

#[actix_web::test]
async fn roles_change_only_by_the_super_admin_who_cannot_be_disabled_or_demoted() {
    let (app, root, ops) = setup().await;
    let bob_id = user_id(&app, "bob");
    let root_id = user_id(&app, "root");
    let ops_id = user_id(&app, "ops");
    let role = |id: &str| format!("/api/v1/admin/users/{id}/role");
    let res = post(
        &app,
        &ops.access,
        &role(&bob_id),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(res.status(), 403, "an ordinary admin");
    assert_eq!(user_state(&app, "bob").1, "team_member");
    let res = post(
        &app,
        &root.access,
        &role(&bob_id),
        Some(json!({ "role": "owner" })),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = post(
        &app,
        &root.access,
        &role(&bob_id),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(user_state(&app, "bob").1, "admin");
    let res = post(
        &app,
        &root.access,
        &role(&root_id),
        Some(json!({ "role": "demo" })),
    )
    .await;
    assert_eq!(res.status(), 409);
    let disable = |id: &str| format!("/api/v1/admin/users/{id}/disable");
    let res = post(
        &app,
        &ops.access,
        &disable(&root_id),
        Some(json!({ "reason": "x" })),
    )
    .await;
    assert_eq!(res.status(), 409, "the super admin");
    let res = post(
        &app,
        &ops.access,
        &disable(&ops_id),
        Some(json!({ "reason": "x" })),
    )
    .await;
    assert_eq!(res.status(), 409, "oneself");
    assert!(user_state(&app, "root").0 && user_state(&app, "ops").0);
}

#[actix_web::test]
async fn admins_list_and_revoke_sessions_and_keys_of_anyone() {
    let (app, root, _) = setup().await;
    let alice = app.login("alice").await;
    let created: Value = app
        .api_key(&alice.access, "alice-ci", &["profile:read"])
        .await;
    let alice_id = user_id(&app, "alice");
    let sessions: Value = app
        .get_auth(
            &format!("/api/v1/admin/sessions?user={alice_id}"),
            &root.access,
        )
        .await
        .json()
        .await
        .unwrap();
    let items = sessions["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["username"], "alice");
    assert_eq!(items[0]["id"], alice.session_id.as_str());
    let keys: Value = app
        .get_auth(
            &format!("/api/v1/admin/api-keys?owner={alice_id}&status=active"),
            &root.access,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys["items"][0]["id"], created["id"]);
    assert_eq!(keys["items"][0]["owner_username"], "alice");
    assert!(keys["items"][0].get("key").is_none());
    let res = post(
        &app,
        &root.access,
        &format!("/api/v1/admin/sessions/{}/revoke", alice.session_id),
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        401
    );
    let res = post(
        &app,
        &root.access,
        &format!("/api/v1/admin/sessions/{}/revoke", uuid::Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
}

#[actix_web::test]
async fn verify_reports_the_chain_and_finds_tampering() {
    let (app, root, _) = setup().await;
    let res = app
        .get_auth("/api/v1/admin/audit-logs/verify", &root.access)
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["ok"], true);
    let rows = report["rows_verified"].as_i64().unwrap();
    assert!(rows >= 7, "{report}");
    assert!(report["head"]["hash"].as_str().unwrap().len() == 64);
    // A superuser edits a row behind the trigger's back: the next check names it.
    app.sql(
        "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only; \
         UPDATE audit_logs SET outcome = 'failure' WHERE id = 3; \
         ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only;",
    );
    let report: Value = app
        .get_auth("/api/v1/admin/audit-logs/verify", &root.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["failure"]["row_id"], 3);
    assert_eq!(report["failure"]["kind"], "edited");
    // Each check is itself audited, and the console shows the latest.
    let mut console = crate::client::Console::new(&app);
    console.sign_in("root").await;
    let (_, html) = console.get_text("/admin/audit").await;
    assert!(html.contains("Broken at row 3"), "{html}");
}
