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

// ---------------------------------------------------------------------------------------------
// Provider tokens on the API (Supabase's legacy HS256 secret: verification with no network).

const SUPABASE: &str = "https://proj-test.supabase.co";
const LEGACY: &str = "Zq8r2mX5vL0tN7bP4cW9yK3hF6jD1sGa";

pub fn supabase_app() -> crate::support::AppBuilder {
    app()
        .env("SUPABASE_URL", SUPABASE)
        .env("SUPABASE_JWT_SECRET", LEGACY)
}

pub fn supabase_token(app: &TestApp, sub: &str, email: Option<&str>) -> String {
    supabase_token_with(app, sub, email, serde_json::json!({}))
}

/// [`supabase_token`] with extra claims (`aal`, `amr` …) merged in.
pub fn supabase_token_with(
    app: &TestApp,
    sub: &str,
    email: Option<&str>,
    extra: serde_json::Value,
) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = app.clock.now().unix_timestamp();
    let mut claims = serde_json::json!({
        "iss": format!("{SUPABASE}/auth/v1"), "sub": sub, "aud": "authenticated",
        "role": "authenticated", "exp": now + 3600, "iat": now, "is_anonymous": false,
    });
    if let Some(email) = email {
        claims["email"] = serde_json::json!(email);
    }
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    let input = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let key = rampart::crypto::hmac::HmacKey::new(LEGACY.as_bytes());
    format!("{input}.{}", b64.encode(key.mac(&[input.as_bytes()])))
}

#[actix_web::test]
async fn a_provider_token_authenticates_as_its_linked_user_provisioned_once_at_first_sight() {
    let app = supabase_app().spawn().await;
    let token = supabase_token(&app, "sb-user-1", Some("Grace@Example.org"));
    let sends = (0..20).map(|_| app.get_auth("/api/v1/me", &token));
    let mut ids = Vec::new();
    for res in futures_util::future::join_all(sends).await {
        assert_eq!(res.status(), 200);
        let me: Value = res.json().await.unwrap();
        ids.push(me["id"].as_str().unwrap().to_string());
        assert_eq!(me["email"], "grace@example.org");
        assert_eq!(
            me["role"], "team_member",
            "role from rampart, never from the token"
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one account for twenty first requests");
    assert_eq!(app.count("users WHERE password_hash IS NULL"), 1);
    assert_eq!(app.count("user_identities WHERE subject = 'sb-user-1'"), 1);
    assert_eq!(app.count("audit_logs WHERE action = 'user.registered'"), 1);
    // Permissions are rampart's: a team member is not an admin whatever the token says.
    assert_eq!(
        app.get_auth("/api/v1/admin/users", &token).await.status(),
        403
    );
    // The identity is listed for its owner.
    assert_eq!(identities(&app, &token).await.len(), 1);
    // /ready reports the provider.
    let ready: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["identity_providers"]["supabase"], "ok");
}

#[actix_web::test]
async fn provider_tokens_are_never_merged_by_email_and_unknown_or_disabled_identities_are_refused()
{
    let app = supabase_app().spawn().await;
    app.register("local").await;
    // Same email as a local account: not merged.
    let token = supabase_token(&app, "sb-evil", Some("local@example.org"));
    let res = app.get_auth("/api/v1/me", &token).await;
    assert_eq!(res.status(), 401);
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/identity-unknown"),
        "{problem}"
    );
    assert_eq!(app.count("user_identities"), 0);
    assert_eq!(app.count("users"), 1);
    // No email to provision with.
    let res = app
        .get_auth("/api/v1/me", &supabase_token(&app, "sb-noemail", None))
        .await;
    assert_eq!(res.status(), 401);
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/identity-unknown")
    );
    // A disabled user's provider tokens are refused.
    let token = supabase_token(&app, "sb-dis", Some("dis@example.org"));
    assert_eq!(app.get_auth("/api/v1/me", &token).await.status(), 200);
    app.sql("UPDATE users SET active = false WHERE email = 'dis@example.org'");
    let res = app.get_auth("/api/v1/me", &token).await;
    assert_eq!(res.status(), 401);
    let problem: Value = res.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("/unauthorized"));
    // A token signed with another secret is a plain 401.
    let res = app
        .get_auth("/api/v1/me", &format!("{}x", &token[..token.len() - 1]))
        .await;
    assert_eq!(res.status(), 401);

    // Provisioning off: unknown identities are refused, known ones still work.
    let app = crate::support::app()
        .env("SUPABASE_URL", SUPABASE)
        .env("SUPABASE_JWT_SECRET", LEGACY)
        .env("IDENTITY_AUTO_PROVISION", "false")
        .spawn()
        .await;
    let res = app
        .get_auth(
            "/api/v1/me",
            &supabase_token(&app, "sb-new", Some("new@example.org")),
        )
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(app.count("users"), 0);
}

#[actix_web::test]
async fn exchange_gives_a_working_rampart_session_and_the_provider_token_is_no_refresh_token() {
    let app = supabase_app().spawn().await;
    let token = supabase_token(&app, "sb-ex", Some("ex@example.org"));
    let res = app
        .post_json(
            "/api/v1/auth/exchange",
            &serde_json::json!({ "provider_token": token }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let pair: Value = res.json().await.unwrap();
    assert_eq!(pair["token_type"], "Bearer");
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(app.get_auth("/api/v1/me", access).await.status(), 200);
    let refreshed = app
        .post_json(
            "/api/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    // The provider token is not a refresh token, and a rampart token is not exchangeable.
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": token }),
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .post_json(
            "/api/v1/auth/exchange",
            &serde_json::json!({ "provider_token": access }),
        )
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        app.count("audit_logs WHERE action = 'auth.exchange.succeeded' AND metadata->>'provider' = 'supabase'"
        ),
        1
    );
    // The session lives by rampart's rules: revoked, it is gone, whatever the provider token.
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_auth("/api/v1/me", access).await.status(), 401);
}

#[actix_web::test]
async fn a_signed_in_user_links_a_provider_identity_which_then_signs_them_in() {
    let app = supabase_app().spawn().await;
    let local = app.user("local").await;
    // The provider identity has the local account's email: signing in with it is refused…
    let token = supabase_token(&app, "sb-mine", Some("local@example.org"));
    assert_eq!(app.get_auth("/api/v1/me", &token).await.status(), 401);
    // …until the account's owner links it from their own session.
    let link = |access: String, token: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/v1/me/identities"))
                .bearer_auth(access)
                .json(&serde_json::json!({ "provider_token": token }))
                .send()
                .await
                .unwrap()
        }
    };
    let res = link(local.access.clone(), token.clone()).await;
    assert_eq!(res.status(), 201);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["subject"], "sb-mine");
    assert_eq!(
        link(local.access.clone(), token.clone()).await.status(),
        200,
        "idempotent"
    );
    let me: Value = app
        .get_auth("/api/v1/me", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "local");
    assert_eq!(app.count("users"), 1, "no second account");
    assert_eq!(app.count("audit_logs WHERE action = 'identity.linked'"), 1);
    // Someone else cannot take the identity over, and a bad token is a field error.
    let other = app.user("other").await;
    assert_eq!(
        link(other.access.clone(), token.clone()).await.status(),
        409
    );
    assert_eq!(
        link(other.access.clone(), "not.a.token".into())
            .await
            .status(),
        422
    );
    assert_eq!(
        link(other.access.clone(), local.access.clone())
            .await
            .status(),
        422
    );
}
