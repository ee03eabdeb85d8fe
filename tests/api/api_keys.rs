//! API keys: issue, use, scope, rotate, revoke — and the attacker's side: malformed, unknown,
//! revoked, expired, rotated-out keys, other users' key ids, keys in the wrong place.

use std::sync::atomic::Ordering;
use std::time::Duration;

use diesel::prelude::*;
use rampart::api_keys::format;
use rampart::api_keys::store::AUTH_LOOKUPS;
use rampart::audit::{Action, AuditEntry, AuditQuery};
use serde_json::{Value, json};

use crate::support::{TestApp, Tokens, app, app_without_database, spawn_app};

const ME: &str = "/api/v1/me";
const KEYS: &str = "/api/v1/api-keys";

/// A server to talk to: the in-process `TestApp`, or the real binary (the log test).
trait Target {
    fn client(&self) -> &reqwest::Client;
    fn url(&self, path: &str) -> String;
}

impl Target for TestApp {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn url(&self, path: &str) -> String {
        TestApp::url(self, path)
    }
}

struct Remote {
    client: reqwest::Client,
    address: String,
}

impl Target for Remote {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

async fn create_key(app: &impl Target, token: &str, body: Value) -> reqwest::Response {
    app.client()
        .post(app.url(KEYS))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Creates a key named `name` with `scopes` and returns the 201 body.
async fn new_key(app: &impl Target, token: &str, name: &str, scopes: &[&str]) -> Value {
    let res = create_key(app, token, json!({ "name": name, "scopes": scopes })).await;
    assert_eq!(res.status(), 201, "create {name}");
    res.json().await.unwrap()
}

fn key_of(created: &Value) -> String {
    created["key"].as_str().unwrap().to_string()
}

/// GET `path` with the key as a Bearer token.
async fn bearer(app: &impl Target, path: &str, key: &str) -> reqwest::Response {
    app.client()
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// GET `path` with the key in `X-API-Key`.
async fn header(app: &impl Target, path: &str, key: &str) -> reqwest::Response {
    app.client()
        .get(app.url(path))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap()
}

async fn me(app: &impl Target, key: &str) -> u16 {
    bearer(app, ME, key).await.status().as_u16()
}

async fn send(
    app: &impl Target,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .client()
        .request(method, app.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn revoke(app: &impl Target, token: &str, id: &str) -> u16 {
    send(
        app,
        reqwest::Method::DELETE,
        &format!("{KEYS}/{id}"),
        token,
        None,
    )
    .await
    .status()
    .as_u16()
}

async fn rotate(app: &impl Target, token: &str, id: &str) -> reqwest::Response {
    send(
        app,
        reqwest::Method::POST,
        &format!("{KEYS}/{id}/rotate"),
        token,
        None,
    )
    .await
}

/// A 401 body without its per-request id, to compare refusals with each other.
async fn refusal(res: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = res.status().as_u16();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let mut body: Value = res.json().await.unwrap();
    body.as_object_mut().unwrap().remove("request_id");
    (status, www, body)
}

/// Registers `name`, makes them an admin, and logs in.
async fn admin(app: &TestApp, name: &str) -> Tokens {
    app.register(name).await;
    app.sql(&format!(
        "UPDATE users SET role = 'admin' WHERE username = '{name}'"
    ));
    app.login(name).await
}

/// A well-formed key (valid checksum) that was never issued, sharing `like`'s display prefix.
fn same_prefix_forgery(like: &str) -> String {
    let random = &like[3..35];
    let mut tail: Vec<u8> = random.as_bytes()[8..].to_vec();
    for b in &mut tail {
        *b = if *b == b'Z' { b'Y' } else { b'Z' };
    }
    format::assemble(&format!(
        "{}{}",
        &random[..8],
        String::from_utf8(tail).unwrap()
    ))
}

fn audit(app: &TestApp, action: Action) -> Vec<AuditEntry> {
    let mut conn = app.db.as_ref().unwrap().connect();
    rampart::audit::list(
        &mut conn,
        &AuditQuery {
            action: Some(action),
            limit: 500,
            ..Default::default()
        },
    )
    .unwrap()
    .items
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

fn texts(app: &TestApp, sql: &str) -> Vec<String> {
    let mut conn = app.db.as_ref().unwrap().connect();
    diesel::sql_query(sql)
        .load::<Text>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|r| r.t)
        .collect()
}

fn last_used(app: &TestApp, id: &str) -> Option<String> {
    texts(
        app,
        &format!("SELECT coalesce(last_used_at::text, '') AS t FROM api_keys WHERE id = '{id}'"),
    )
    .pop()
    .filter(|t| !t.is_empty())
}

#[actix_web::test]
async fn create_use_revoke_then_401() {
    let app = spawn_app().await;
    let alice = app.user("alice_k").await;
    let res = create_key(
        &app,
        &alice.access,
        json!({ "name": "ci deploy", "scopes": ["profile:read", "messages:read"], "expires_in_days": 30 }),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = fields.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "created_at",
            "expires_at",
            "id",
            "key",
            "name",
            "prefix",
            "scopes"
        ]
    );
    let key = key_of(&created);
    assert!(format::parse(&key).is_ok(), "issued key parses");
    assert_eq!(created["prefix"], &key[..11]);
    assert_eq!(created["name"], "ci deploy");
    assert_eq!(created["scopes"], json!(["profile:read", "messages:read"]));
    let id = created["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    let created_at = time::OffsetDateTime::parse(
        created["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires_at = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires_at - created_at, time::Duration::days(30));

    // Both places a key may be presented.
    let res = bearer(&app, ME, &key).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["username"], "alice_k", "authenticated as the owner");
    assert_eq!(header(&app, ME, &key).await.status(), 200);

    // The list shows metadata only.
    let list: Value = bearer(&app, KEYS, &alice.access)
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(list["next_cursor"].is_null());
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["prefix"], &key[..11]);
    assert_eq!(items[0]["status"], "active");
    assert!(items[0]["last_used_at"].is_string(), "{list}");
    assert!(items[0].get("key").is_none() && items[0].get("key_hash").is_none());
    assert!(!list.to_string().contains(&key));

    // The database holds the prefix and the HMAC, never the key.
    let row = texts(&app, "SELECT row_to_json(k)::text AS t FROM api_keys k").remove(0);
    assert!(!row.contains(&key) && !row.contains(&key[3..35]), "{row}");

    assert_eq!(revoke(&app, &alice.access, id).await, 204);
    assert_eq!(revoke(&app, &alice.access, id).await, 204, "idempotent");
    let revoked = refusal(bearer(&app, ME, &key).await).await;
    assert_eq!(revoked.0, 401);
    assert_eq!(header(&app, ME, &key).await.status(), 401);
    // The same body as any other authentication failure.
    let unknown = refusal(bearer(&app, ME, &same_prefix_forgery(&key)).await).await;
    let none = refusal(app.get(ME).await).await;
    let garbage = refusal(bearer(&app, ME, "rk_garbage").await).await;
    assert_eq!(revoked, unknown);
    assert_eq!(revoked, none);
    assert_eq!(revoked, garbage);
    let list: Value = bearer(&app, KEYS, &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["status"], "revoked");
    assert_eq!(list["items"][0]["revoke_reason"], "revoked_by_owner");
    assert_eq!(
        audit(&app, Action::ApiKeyRevoked).len(),
        1,
        "one record despite two DELETEs"
    );
}

#[actix_web::test]
async fn rotation_keeps_the_old_key_for_the_grace_period_only() {
    let app = spawn_app().await;
    let bob = app.user("bob_k").await;
    let old = new_key(
        &app,
        &bob.access,
        "worker",
        &["profile:read", "keys:manage"],
    )
    .await;
    let old_key = key_of(&old);
    let res = rotate(&app, &bob.access, old["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 201);
    let new: Value = res.json().await.unwrap();
    let new_key = key_of(&new);
    assert_ne!(new_key, old_key);
    assert_ne!(new["id"], old["id"]);
    assert_eq!(new["name"], "worker");
    assert_eq!(new["scopes"], old["scopes"]);
    assert!(new["expires_at"].is_null());

    assert_eq!(me(&app, &old_key).await, 200, "old key within grace");
    assert_eq!(me(&app, &new_key).await, 200);
    let list: Value = bearer(&app, KEYS, &new_key).await.json().await.unwrap();
    let statuses: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "rotation_grace"]);
    assert_eq!(list["items"][1]["rotated_to"], new["id"]);

    // A key in its grace period cannot be rotated again.
    let res = rotate(&app, &bob.access, old["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 409);

    app.clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(me(&app, &old_key).await, 200, "23 h: still within 24 h");
    app.clock.advance(Duration::from_secs(3600 + 1));
    assert_eq!(me(&app, &old_key).await, 401, "grace over");
    assert_eq!(me(&app, &new_key).await, 200);
    let expired_used = audit(&app, Action::ApiKeyExpiredUsed);
    assert_eq!(expired_used.len(), 1);
    assert_eq!(expired_used[0].metadata["reason"], "rotation_grace_over");
    assert_eq!(expired_used[0].target_id.as_deref(), old["id"].as_str());

    let rotated = audit(&app, Action::ApiKeyRotated);
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].metadata["new_key_id"], new["id"]);
}

#[actix_web::test]
async fn a_zero_grace_period_ends_the_old_key_at_once() {
    let app = app().env("API_KEY_ROTATION_GRACE_HOURS", "0").spawn().await;
    let t = app.user("carol_k").await;
    let old = new_key(&app, &t.access, "k", &["profile:read"]).await;
    let new: Value = rotate(&app, &t.access, old["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me(&app, &key_of(&old)).await, 401);
    assert_eq!(me(&app, &key_of(&new)).await, 200);
}

#[actix_web::test]
async fn rotation_keeps_the_lifetime_and_a_key_cannot_rotate_into_more_power() {
    let app = spawn_app().await;
    let t = app.user("dora_k").await;
    let res = create_key(
        &app,
        &t.access,
        json!({ "name": "short", "scopes": ["profile:read", "profile:write"], "expires_in_days": 7 }),
    )
    .await;
    let broad: Value = res.json().await.unwrap();
    // A narrower key with keys:manage may not turn the broad key into a fresh broad key.
    let narrow = new_key(&app, &t.access, "narrow", &["keys:manage", "profile:read"]).await;
    let res = rotate(&app, &key_of(&narrow), broad["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 403);
    assert_eq!(me(&app, &key_of(&broad)).await, 200, "untouched");

    app.clock.advance(Duration::from_secs(3 * 86_400));
    let t = app.login("dora_k").await;
    let rotated: Value = rotate(&app, &t.access, broad["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(
        parse(&rotated["expires_at"]) - parse(&rotated["created_at"]),
        time::Duration::days(7),
        "same lifetime, counted from the rotation"
    );

    // An expired key cannot be rotated, and using it is recorded.
    app.clock.advance(Duration::from_secs(8 * 86_400));
    let t = app.login("dora_k").await;
    assert_eq!(me(&app, &key_of(&rotated)).await, 401);
    let res = rotate(&app, &t.access, rotated["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 409);
    let used = audit(&app, Action::ApiKeyExpiredUsed);
    assert!(
        used.iter().any(|e| e.metadata["reason"] == "expired"),
        "{used:?}"
    );
    let list: Value = bearer(&app, KEYS, &t.access).await.json().await.unwrap();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["status"] == "expired")
    );
}

#[actix_web::test]
async fn scopes_are_enforced_per_route() {
    let app = spawn_app().await;
    let t = app.user("erin_k").await;
    let read_only = key_of(&new_key(&app, &t.access, "ro", &["profile:read"]).await);
    let keys_only = key_of(&new_key(&app, &t.access, "km", &["keys:manage"]).await);
    let sessions = key_of(&new_key(&app, &t.access, "sm", &["sessions:manage"]).await);

    assert_eq!(me(&app, &read_only).await, 200);
    let patch = |key: String| {
        let app = &app;
        async move {
            send(
                app,
                reqwest::Method::PATCH,
                ME,
                &key,
                Some(json!({ "display_name": "E" })),
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(
        patch(read_only.clone()).await,
        403,
        "profile:write not in scope"
    );
    assert_eq!(
        bearer(&app, KEYS, &read_only).await.status(),
        403,
        "keys:manage not in scope"
    );
    assert_eq!(
        bearer(&app, "/api/v1/auth/sessions", &read_only)
            .await
            .status(),
        403
    );
    assert_eq!(me(&app, &keys_only).await, 403, "profile:read not in scope");
    assert_eq!(bearer(&app, KEYS, &keys_only).await.status(), 200);
    assert_eq!(
        bearer(&app, "/api/v1/auth/sessions", &sessions)
            .await
            .status(),
        200
    );

    // Logout needs a session: an API key has none.
    let res = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/auth/logout",
        &read_only,
        None,
    )
    .await;
    assert_eq!(res.status(), 403);

    // A key with keys:manage may issue keys, but only within its own scopes.
    let res = create_key(
        &app,
        &keys_only,
        json!({ "name": "x", "scopes": ["profile:read"] }),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = create_key(
        &app,
        &keys_only,
        json!({ "name": "x", "scopes": ["keys:manage"] }),
    )
    .await;
    assert_eq!(res.status(), 201);

    // Effective permissions are role ∩ scopes: a demotion narrows existing keys at once.
    let writer = key_of(&new_key(&app, &t.access, "w", &["profile:read", "profile:write"]).await);
    assert_eq!(patch(writer.clone()).await, 200);
    app.sql("UPDATE users SET role = 'demo' WHERE username = 'erin_k'");
    assert_eq!(patch(writer.clone()).await, 403);
    assert_eq!(me(&app, &writer).await, 200);
}

#[actix_web::test]
async fn scopes_must_be_a_subset_of_the_owners_permissions() {
    let app = spawn_app().await;
    let t = app.user("fred_k").await;
    for (body, field) in [
        (json!({ "name": "x", "scopes": ["audit:read"] }), "scopes"),
        (json!({ "name": "x", "scopes": ["no:such"] }), "scopes"),
        (json!({ "name": "x", "scopes": [] }), "scopes"),
        (json!({ "name": "", "scopes": ["profile:read"] }), "name"),
        (
            json!({ "name": "x", "scopes": ["profile:read"], "expires_in_days": 0 }),
            "expires_in_days",
        ),
        (
            json!({ "name": "x", "scopes": ["profile:read"], "expires_in_days": 4000 }),
            "expires_in_days",
        ),
    ] {
        let res = create_key(&app, &t.access, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let res = create_key(
        &app,
        &t.access,
        json!({ "name": "x", "scopes": ["profile:read"], "role": "admin" }),
    )
    .await;
    assert_eq!(res.status(), 422, "unknown fields are refused");

    let demo = app.user("gina_k").await;
    app.sql("UPDATE users SET role = 'demo' WHERE username = 'gina_k'");
    let res = create_key(
        &app,
        &demo.access,
        json!({ "name": "x", "scopes": ["profile:read"] }),
    )
    .await;
    assert_eq!(res.status(), 403, "demo users lack keys:manage");

    // Admins hold audit:read, but no key may carry an admin permission.
    let boss = admin(&app, "hank_k").await;
    let res = create_key(
        &app,
        &boss.access,
        json!({ "name": "x", "scopes": ["audit:read"] }),
    )
    .await;
    assert_eq!(res.status(), 422);
}

#[actix_web::test]
async fn api_keys_never_reach_admin_routes_even_if_scoped() {
    let app = spawn_app().await;
    let boss = admin(&app, "ivan_k").await;
    let victim = app.user("judy_k").await;
    let victim_key = new_key(&app, &victim.access, "v", &["profile:read"]).await;
    let created = new_key(&app, &boss.access, "admin key", &["profile:read"]).await;
    // Scopes written behind the API's back: still refused.
    app.sql(&format!(
        "UPDATE api_keys SET scopes = ARRAY['profile:read','audit:read','users:manage','keys:revoke_any','webhooks:manage'] WHERE id = '{}'",
        created["id"].as_str().unwrap()
    ));
    let path = format!(
        "/api/v1/admin/api-keys/{}/revoke",
        victim_key["id"].as_str().unwrap()
    );
    let res = send(
        &app,
        reqwest::Method::POST,
        &path,
        &key_of(&created),
        Some(json!({ "reason": "x" })),
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        me(&app, &key_of(&created)).await,
        200,
        "the key itself works"
    );
    assert_eq!(
        me(&app, &key_of(&victim_key)).await,
        200,
        "nothing was revoked"
    );
}

#[actix_web::test]
async fn admins_revoke_any_key_with_a_reason() {
    let app = spawn_app().await;
    let boss = admin(&app, "kate_k").await;
    let user = app.user("liam_k").await;
    let key = new_key(&app, &user.access, "leaky", &["profile:read"]).await;
    let id = key["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/api-keys/{id}/revoke");

    let res = send(
        &app,
        reqwest::Method::POST,
        &path,
        &user.access,
        Some(json!({ "reason": "x" })),
    )
    .await;
    assert_eq!(res.status(), 403, "team members cannot");
    let res = send(
        &app,
        reqwest::Method::POST,
        &path,
        &boss.access,
        Some(json!({ "reason": "  " })),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = send(
        &app,
        reqwest::Method::POST,
        &path,
        &boss.access,
        Some(json!({})),
    )
    .await;
    assert_eq!(res.status(), 422, "the reason is required");
    let missing = format!("/api/v1/admin/api-keys/{}/revoke", uuid::Uuid::now_v7());
    let res = send(
        &app,
        reqwest::Method::POST,
        &missing,
        &boss.access,
        Some(json!({ "reason": "x" })),
    )
    .await;
    assert_eq!(res.status(), 404);
    assert_eq!(me(&app, &key_of(&key)).await, 200);

    let reason = json!({ "reason": "found in a public repository" });
    let res = send(
        &app,
        reqwest::Method::POST,
        &path,
        &boss.access,
        Some(reason.clone()),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = send(
        &app,
        reqwest::Method::POST,
        &path,
        &boss.access,
        Some(reason),
    )
    .await;
    assert_eq!(res.status(), 204, "idempotent");
    assert_eq!(me(&app, &key_of(&key)).await, 401);

    let list: Value = bearer(&app, KEYS, &user.access).await.json().await.unwrap();
    assert_eq!(list["items"][0]["status"], "revoked");
    assert_eq!(
        list["items"][0]["revoke_reason"],
        "found in a public repository"
    );
    let revoked = audit(&app, Action::ApiKeyRevoked);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].actor_type, "admin");
    assert_eq!(
        revoked[0].metadata["reason"],
        "found in a public repository"
    );
    assert_eq!(revoked[0].metadata["by"], "admin");
    let by = texts(
        &app,
        &format!("SELECT revoked_by::text AS t FROM api_keys WHERE id = '{id}'"),
    );
    let boss_id: Value = bearer(&app, ME, &boss.access).await.json().await.unwrap();
    assert_eq!(by, [boss_id["id"].as_str().unwrap()]);
}

#[actix_web::test]
async fn another_users_key_id_is_not_found_for_revoke_and_rotate() {
    let app = spawn_app().await;
    let alice = app.user("mia_k").await;
    let mallory = app.user("mallory_k").await;
    let key = new_key(&app, &alice.access, "mine", &["profile:read"]).await;
    let id = key["id"].as_str().unwrap();
    assert_eq!(revoke(&app, &mallory.access, id).await, 404);
    assert_eq!(rotate(&app, &mallory.access, id).await.status(), 404);
    let missing = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        revoke(&app, &mallory.access, &missing).await,
        404,
        "same as a missing id"
    );
    assert_eq!(rotate(&app, &mallory.access, &missing).await.status(), 404);
    assert_eq!(revoke(&app, &mallory.access, "not-a-uuid").await, 404);
    // Mallory's own key with keys:manage fares no better.
    let mk = key_of(&new_key(&app, &mallory.access, "m", &["keys:manage"]).await);
    assert_eq!(revoke(&app, &mk, id).await, 404);
    assert_eq!(rotate(&app, &mk, id).await.status(), 404);
    let list: Value = bearer(&app, KEYS, &mallory.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !list.to_string().contains(id),
        "lists show only the caller's keys"
    );

    assert_eq!(me(&app, &key_of(&key)).await, 200, "alice's key untouched");
    assert!(audit(&app, Action::ApiKeyRevoked).is_empty());
    assert!(audit(&app, Action::ApiKeyRotated).is_empty());
}

/// Malformed keys: refused from the shape and checksum alone.
fn malformed(valid: &str) -> Vec<String> {
    let mut bad_checksum = valid.as_bytes().to_vec();
    bad_checksum[40] = if bad_checksum[40] == b'0' { b'1' } else { b'0' };
    let mut bad_random = valid.as_bytes().to_vec();
    bad_random[5] = if bad_random[5] == b'a' { b'b' } else { b'a' };
    vec![
        String::from_utf8(bad_checksum).unwrap(),
        String::from_utf8(bad_random).unwrap(),
        format!("{valid}0"),
        valid[..40].to_string(),
        "rk_".to_string(),
        format!("rk_{}", "-".repeat(38)),
    ]
}

#[actix_web::test]
async fn malformed_keys_are_rejected_without_a_database_query() {
    let app = spawn_app().await;
    let t = app.user("nina_k").await;
    let key = key_of(&new_key(&app, &t.access, "k", &["profile:read"]).await);
    // Runs with nextest's one-process-per-test, so only this test's requests move the counter.
    let before = AUTH_LOOKUPS.load(Ordering::SeqCst);
    for bad in malformed(&key) {
        assert_eq!(me(&app, &bad).await, 401, "{bad}");
        assert_eq!(header(&app, ME, &bad).await.status(), 401, "{bad}");
    }
    assert_eq!(
        AUTH_LOOKUPS.load(Ordering::SeqCst),
        before,
        "no lookup for malformed keys"
    );
    assert!(
        audit(&app, Action::ApiKeyAuthFailed).is_empty(),
        "nor an audit write"
    );

    // A well-formed key with a valid display prefix but the wrong secret does reach the lookup
    // (by HMAC; the final comparison is constant-time — see api_keys::format's unit tests).
    assert_eq!(me(&app, &same_prefix_forgery(&key)).await, 401);
    assert_eq!(AUTH_LOOKUPS.load(Ordering::SeqCst), before + 1);
    assert_eq!(me(&app, &key).await, 200);
    assert_eq!(AUTH_LOOKUPS.load(Ordering::SeqCst), before + 2);
}

#[actix_web::test]
async fn malformed_keys_are_refused_even_with_the_database_down() {
    let app = app_without_database().spawn().await;
    let valid = format::generate().unwrap();
    use secrecy::ExposeSecret;
    let valid = valid.key.expose_secret().to_string();
    // With the database down, any database access would answer 503 (after the pool timeout):
    // a 401 means the key was refused before any.
    for bad in malformed(&valid) {
        assert_eq!(me(&app, &bad).await, 401, "{bad}");
        assert_eq!(header(&app, ME, &bad).await.status(), 401, "{bad}");
    }
    // The control: a well-formed key does need the database.
    assert_eq!(me(&app, &valid).await, 503);
}

#[actix_web::test]
async fn a_disabled_owners_keys_stop_working() {
    let app = spawn_app().await;
    let t = app.user("omar_k").await;
    let key = key_of(&new_key(&app, &t.access, "k", &["profile:read"]).await);
    assert_eq!(me(&app, &key).await, 200);
    app.sql("UPDATE users SET active = false WHERE username = 'omar_k'");
    let disabled = refusal(bearer(&app, ME, &key).await).await;
    assert_eq!(disabled.0, 401);
    let unknown = refusal(bearer(&app, ME, &same_prefix_forgery(&key)).await).await;
    assert_eq!(disabled, unknown, "indistinguishable from an unknown key");
    app.sql("UPDATE users SET active = true WHERE username = 'omar_k'");
    assert_eq!(me(&app, &key).await, 200);
    let failed = audit(&app, Action::ApiKeyAuthFailed);
    assert!(
        failed
            .iter()
            .any(|e| e.metadata["reason"] == "owner_disabled"),
        "{failed:?}"
    );
}

#[actix_web::test]
async fn last_used_is_written_at_most_once_a_minute() {
    let app = spawn_app().await;
    let t = app.user("pia_k").await;
    let created = new_key(&app, &t.access, "k", &["profile:read"]).await;
    let (id, key) = (created["id"].as_str().unwrap(), key_of(&created));
    assert_eq!(last_used(&app, id), None);
    assert_eq!(me(&app, &key).await, 200);
    let first = last_used(&app, id).expect("written on first use");
    for _ in 0..5 {
        assert_eq!(me(&app, &key).await, 200);
    }
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(me(&app, &key).await, 200);
    assert_eq!(
        last_used(&app, id).as_ref(),
        Some(&first),
        "not rewritten within the minute"
    );
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(me(&app, &key).await, 200);
    let second = last_used(&app, id).unwrap();
    assert_ne!(second, first, "rewritten once the minute is over");
}

#[actix_web::test]
async fn keys_are_accepted_only_in_headers_and_only_one_credential_at_a_time() {
    let app = spawn_app().await;
    let t = app.user("quin_k").await;
    let key = key_of(&new_key(&app, &t.access, "k", &["profile:read"]).await);
    for param in [
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "x-api-key",
    ] {
        let res = app.get(&format!("{ME}?{param}={key}")).await;
        assert_eq!(res.status(), 401, "?{param}=");
    }
    // Two credentials are refused rather than guessed between.
    let res = app
        .client
        .get(app.url(ME))
        .bearer_auth(&t.access)
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(app.url(ME))
        .header("X-API-Key", &key)
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // The JWT path is unchanged.
    assert_eq!(app.get_auth(ME, &t.access).await.status(), 200);
}

#[actix_web::test]
async fn the_live_key_limit_is_enforced() {
    let app = app().env("API_KEY_MAX_PER_USER", "2").spawn().await;
    let t = app.user("rita_k").await;
    let first = new_key(&app, &t.access, "1", &["profile:read"]).await;
    let second = new_key(&app, &t.access, "2", &["profile:read"]).await;
    let res = create_key(
        &app,
        &t.access,
        json!({ "name": "3", "scopes": ["profile:read"] }),
    )
    .await;
    assert_eq!(res.status(), 409);
    // A rotation adds a working key (the old one works through its grace): at the cap, refused.
    let res = rotate(&app, &t.access, first["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        revoke(&app, &t.access, second["id"].as_str().unwrap()).await,
        204
    );
    let res = rotate(&app, &t.access, first["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 201);
    let rotated: Value = res.json().await.unwrap();
    assert_eq!(
        revoke(&app, &t.access, rotated["id"].as_str().unwrap()).await,
        204
    );
    assert_eq!(
        revoke(&app, &t.access, first["id"].as_str().unwrap()).await,
        204
    );
    let res = create_key(
        &app,
        &t.access,
        json!({ "name": "3", "scopes": ["profile:read"] }),
    )
    .await;
    assert_eq!(res.status(), 201, "a revoked key frees its slot");

    // Concurrent creations cannot overshoot the limit.
    let other = app.user("sam_k").await;
    let attempts = (0..6).map(|i| {
        create_key(
            &app,
            &other.access,
            json!({ "name": format!("c{i}"), "scopes": ["profile:read"] }),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        4,
        "{statuses:?}"
    );
}

#[actix_web::test]
async fn key_events_are_audited_without_the_key() {
    let app = spawn_app().await;
    let t = app.user("tina_k").await;
    let created = new_key(&app, &t.access, "audited", &["profile:read", "keys:manage"]).await;
    let key = key_of(&created);
    let rotated: Value = rotate(&app, &key, created["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let new_key = key_of(&rotated);
    assert_eq!(
        revoke(&app, &new_key, rotated["id"].as_str().unwrap()).await,
        204
    );
    // Three unknown (well-formed) keys from one IP within a minute: one aggregated row.
    for _ in 0..3 {
        assert_eq!(me(&app, &same_prefix_forgery(&key)).await, 401);
    }
    assert_eq!(me(&app, &new_key).await, 401, "revoked");

    let created_rows = audit(&app, Action::ApiKeyCreated);
    assert_eq!(created_rows.len(), 1);
    assert_eq!(created_rows[0].metadata["prefix"], &key[..11]);
    assert_eq!(created_rows[0].actor_type, "user");
    let rotated_rows = audit(&app, Action::ApiKeyRotated);
    assert_eq!(rotated_rows.len(), 1);
    assert_eq!(
        rotated_rows[0].actor_type, "api_key",
        "rotated with the key itself"
    );
    assert_eq!(rotated_rows[0].actor_id.as_deref(), created["id"].as_str());
    let revoked_rows = audit(&app, Action::ApiKeyRevoked);
    assert_eq!(revoked_rows.len(), 1);
    assert_eq!(revoked_rows[0].metadata["by"], "owner");
    let failed = audit(&app, Action::ApiKeyAuthFailed);
    assert_eq!(failed.len(), 1, "aggregated per IP per minute: {failed:?}");
    assert_eq!(failed[0].metadata["count"], 4);
    assert_eq!(failed[0].metadata["reason"], "unknown_key");

    // No column of any audit row, and no api_keys column, contains a key or its secret part.
    let everything = texts(&app, "SELECT row_to_json(a)::text AS t FROM audit_logs a")
        .into_iter()
        .chain(texts(
            &app,
            "SELECT row_to_json(k)::text AS t FROM api_keys k",
        ))
        .collect::<Vec<_>>()
        .join("\n");
    for k in [&key, &new_key] {
        assert!(
            !everything.contains(k.as_str()),
            "a key was stored:\n{everything}"
        );
        assert!(
            !everything.contains(&k[3..35]),
            "a key's secret part was stored"
        );
        assert!(!everything.contains(&k[11..35]));
    }
}

/// The real binary with JSON logs at debug level: issuing, using, rotating and revoking keys, and
/// failed attempts, never put a key in a log line.
#[actix_web::test]
async fn keys_never_appear_in_logs() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let db = crate::support::TestDb::new();
    let mut env = crate::support::base_env(&db.url);
    env.insert("LOG_FORMAT".into(), "json".into());
    env.insert("LOG_LEVEL".into(), "debug".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("serve")
        .env_clear()
        .env("RAMPART_CONFIG_DIR", crate::support::config_dir())
        .envs(&env)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start");
        let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
        lines.push(line);
        if parsed["message"] == "rampart listening" {
            break parsed["port"].as_u64().unwrap();
        }
    };
    let app = Remote {
        client: reqwest::Client::new(),
        address: format!("http://127.0.0.1:{port}"),
    };
    let credentials = json!({
        "username": "uma_k",
        "email": "uma_k@example.org",
        "password": crate::support::PASSWORD,
    });
    let res = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "login": "uma_k", "password": crate::support::PASSWORD }))
        .send()
        .await
        .unwrap();
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let created = new_key(&app, &access, "logged", &["profile:read", "keys:manage"]).await;
    let key = key_of(&created);
    assert_eq!(me(&app, &key).await, 200);
    assert_eq!(header(&app, ME, &key).await.status(), 200);
    let rotated: Value = rotate(&app, &key, created["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let new_key = key_of(&rotated);
    assert_eq!(me(&app, &same_prefix_forgery(&key)).await, 401);
    assert_eq!(me(&app, &malformed(&key)[0]).await, 401);
    let res = app
        .client
        .get(app.url(&format!("{ME}?api_key={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        revoke(&app, &new_key, rotated["id"].as_str().unwrap()).await,
        204
    );
    assert_eq!(me(&app, &new_key).await, 401);

    // Let the last request lines arrive, then stop the server.
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(line);
    }
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let all = format!("{}\n{stderr}", lines.join("\n"));
    assert!(all.contains("request finished"), "no request logs:\n{all}");
    assert!(
        all.contains("malformed API key refused"),
        "debug lines captured:\n{all}"
    );
    for k in [&key, &new_key] {
        assert!(!all.contains(&k[3..35]), "a key reached the logs:\n{all}");
    }
    drop(db);
}

#[actix_web::test]
async fn disabling_a_user_revokes_their_keys_and_enabling_does_not_revive_them() {
    let app = spawn_app().await;
    let boss = admin(&app, "boss_d").await;
    let user = app.user("dora_d").await;
    let plain = new_key(&app, &user.access, "plain", &["profile:read"]).await;
    let rotating = new_key(&app, &user.access, "rotating", &["profile:read"]).await;
    let res = rotate(&app, &user.access, rotating["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 201);
    let successor: Value = res.json().await.unwrap();
    // Three working keys, one of them in its rotation grace.
    let keys = [key_of(&plain), key_of(&rotating), key_of(&successor)];
    for key in &keys {
        assert_eq!(me(&app, key).await, 200);
    }
    let user_id: String = texts(
        &app,
        "SELECT id::text AS t FROM users WHERE username = 'dora_d'",
    )
    .remove(0);
    let disable = format!("/api/v1/admin/users/{user_id}/disable");
    let enable = format!("/api/v1/admin/users/{user_id}/enable");
    let act = |path: &str, body: Value| {
        let path = path.to_string();
        let app = &app;
        let token = boss.access.clone();
        async move { send(app, reqwest::Method::POST, &path, &token, Some(body)).await }
    };
    assert_eq!(
        act(&disable, json!({"reason": "compromised laptop"}))
            .await
            .status(),
        200
    );
    for key in &keys {
        assert_eq!(me(&app, key).await, 401);
    }
    assert_eq!(act(&enable, json!({})).await.status(), 200);
    // Sign-in is back; the keys are not.
    let user = app.login("dora_d").await;
    for key in &keys {
        assert_eq!(me(&app, key).await, 401, "re-enabling revives no key");
    }
    let listed: Value = app
        .get_auth("/api/v1/api-keys", &user.access)
        .await
        .json()
        .await
        .unwrap();
    for key in listed["items"].as_array().unwrap() {
        assert_eq!(key["status"], "revoked", "{key}");
    }
    let reasons = texts(&app, "SELECT revoke_reason AS t FROM api_keys ORDER BY id");
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons.iter().all(|r| r.contains("compromised laptop")),
        "{reasons:?}"
    );
    let revoked = audit(&app, Action::ApiKeyRevoked);
    assert_eq!(revoked.len(), 3);
}

#[actix_web::test]
async fn rotation_chains_cannot_exceed_the_live_key_cap() {
    let app = app().env("API_KEY_MAX_PER_USER", "3").spawn().await;
    let t = app.user("chain_k").await;
    let mut newest = new_key(&app, &t.access, "chained", &["profile:read"]).await;
    let mut keys = vec![key_of(&newest)];
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let res = rotate(&app, &t.access, newest["id"].as_str().unwrap()).await;
        statuses.push(res.status().as_u16());
        if res.status() == 201 {
            newest = res.json().await.unwrap();
            keys.push(key_of(&newest));
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        2,
        "{statuses:?}"
    );
    assert!(statuses[2..].iter().all(|s| *s == 409));
    let mut working = 0;
    for key in &keys {
        if me(&app, key).await == 200 {
            working += 1;
        }
    }
    assert_eq!(working, 3, "never more working keys than the cap");
    // Once the grace of the old keys is over, a rotation fits again.
    app.clock.advance(Duration::from_secs(25 * 3600));
    let t = app.login("chain_k").await;
    let res = rotate(&app, &t.access, newest["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn parallel_rotations_and_creations_never_overshoot_the_cap() {
    let app = app().env("API_KEY_MAX_PER_USER", "4").spawn().await;
    let t = app.user("race_k").await;
    let key = new_key(&app, &t.access, "one", &["profile:read"]).await;
    let id = key["id"].as_str().unwrap().to_string();
    // 20 rotations of the same key and 20 creations, all at once.
    let rotations = (0..20).map(|_| rotate(&app, &t.access, &id));
    let creations = (0..20).map(|i| {
        create_key(
            &app,
            &t.access,
            json!({ "name": format!("c{i}"), "scopes": ["profile:read"] }),
        )
    });
    let (rotated, created) = futures_util::future::join(
        futures_util::future::join_all(rotations),
        futures_util::future::join_all(creations),
    )
    .await;
    let rotated_ok = rotated.iter().filter(|r| r.status() == 201).count();
    let created_ok = created.iter().filter(|r| r.status() == 201).count();
    assert!(rotated_ok <= 1, "one key rotates once");
    assert_eq!(1 + rotated_ok + created_ok, 4, "exactly up to the cap");
    assert!(
        rotated
            .iter()
            .chain(created.iter())
            .all(|r| matches!(r.status().as_u16(), 201 | 409))
    );
    let live: i64 = texts(
        &app,
        "SELECT count(*)::text AS t FROM api_keys WHERE revoked_at IS NULL \
         AND (rotated_to IS NULL OR grace_until > now())",
    )[0]
    .parse()
    .unwrap();
    assert_eq!(live, 4);
}

#[actix_web::test]
async fn key_names_refuse_invisible_format_characters() {
    let app = spawn_app().await;
    let t = app.user("bidi_k").await;
    for name in ["prod\u{202E}ved", "ci\u{200B}", "\u{2067}x", "tab\tname"] {
        let res = create_key(
            &app,
            &t.access,
            json!({ "name": name, "scopes": ["profile:read"] }),
        )
        .await;
        assert_eq!(res.status(), 422, "{name:?}");
    }
}
