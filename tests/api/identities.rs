//! The caller's linked identities: listed, and unlinked unless it is the last way to sign in —
//! also when two unlinks race for the last two.

use serde_json::Value;

use crate::support::{PASSWORD, TestApp, Tokens, app};

/// A signed-in user with Clerk identities linked by SQL (the webhook sync and provider sign-in
/// create the same rows).
async fn user_with_identities(app: &TestApp, name: &str, subjects: &[&str]) -> (Tokens, String) {
    let tokens = app.user(name).await;
    let id = app.user_id(name);
    for subject in subjects {
        app.sql(&format!(
            "INSERT INTO user_identities (id, provider, issuer, subject, user_id, email, created_at, last_seen_at) \
             VALUES (gen_random_uuid(), 'clerk', 'clerk', '{subject}', '{id}', '{name}@example.org', now(), now())"
        ));
    }
    (tokens, id)
}

async fn identities(app: &TestApp, access: &str) -> Vec<Value> {
    let res = app.get_auth("/api/v1/me/identities", access).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["next_cursor"].is_null());
    body["items"].as_array().unwrap().clone()
}

async fn unlink(app: &TestApp, access: &str, id: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/api/v1/me/identities/{id}")))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn identities_are_listed_and_unlinked_by_their_owner_only() {
    let app = app().spawn().await;
    let (tokens, _) = user_with_identities(&app, "ida", &["user_a1"]).await;
    let (other, _) = user_with_identities(&app, "otto", &["user_o1"]).await;
    let mine = identities(&app, &tokens.access).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["provider"], "clerk");
    assert_eq!(mine[0]["subject"], "user_a1");
    let id = mine[0]["id"].as_str().unwrap().to_string();
    // Someone else's identity is not found, and stays.
    assert_eq!(unlink(&app, &other.access, &id).await.status(), 404);
    assert_eq!(
        unlink(&app, &tokens.access, "not-a-uuid").await.status(),
        404
    );
    // With a password, the only identity can go.
    assert_eq!(unlink(&app, &tokens.access, &id).await.status(), 204);
    assert!(identities(&app, &tokens.access).await.is_empty());
    assert_eq!(unlink(&app, &tokens.access, &id).await.status(), 404);
    assert_eq!(identities(&app, &other.access).await.len(), 1);
    assert_eq!(app.login_as("ida", PASSWORD).await.status(), 200);
}

#[actix_web::test]
async fn the_last_way_to_sign_in_cannot_be_unlinked_even_by_two_racing_requests() {
    let app = app().spawn().await;
    let (tokens, id) = user_with_identities(&app, "solo", &["user_s1", "user_s2"]).await;
    // A provider-only account (no password), signed in through a session it already has.
    app.sql(&format!(
        "UPDATE users SET password_hash = NULL WHERE id = '{id}'"
    ));
    let ids: Vec<String> = identities(&app, &tokens.access)
        .await
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    let (a, b) = futures_util::join!(
        unlink(&app, &tokens.access, &ids[0]),
        unlink(&app, &tokens.access, &ids[1])
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 409], "exactly one of the last two goes");
    let left = identities(&app, &tokens.access).await;
    assert_eq!(left.len(), 1);
    let res = unlink(&app, &tokens.access, left[0]["id"].as_str().unwrap()).await;
    assert_eq!(res.status(), 409);
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("only way to sign in"),
        "{problem}"
    );
    let audited = {
        use diesel::prelude::*;
        let mut conn = app.db.as_ref().unwrap().connect();
        rampart::db::schema::audit_logs::table
            .filter(rampart::db::schema::audit_logs::action.eq("identity.unlinked"))
            .count()
            .get_result::<i64>(&mut conn)
            .unwrap()
    };
    assert_eq!(audited, 1);
}

#[actix_web::test]
async fn demo_users_and_api_keys_without_profile_write_cannot_unlink() {
    let app = app().spawn().await;
    let (tokens, _) = user_with_identities(&app, "keyed", &["user_k1"]).await;
    let key = app
        .api_key(&tokens.access, "read-only", &["profile:read"])
        .await;
    let key = key["key"].as_str().unwrap();
    let items = identities(&app, key).await;
    let id = items[0]["id"].as_str().unwrap();
    assert_eq!(unlink(&app, key, id).await.status(), 403);
    assert_eq!(identities(&app, &tokens.access).await.len(), 1);
}
