//! Refresh rotation, reuse detection, session listing and revocation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": token }))
        .await
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = spawn_app().await;
    let first = app.user("wendy").await;
    let res = refresh(&app, &first.refresh).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(
        second["session_id"], first.session_id,
        "same session, new tokens"
    );
    assert_ne!(second["refresh_token"], first.refresh);
    assert_ne!(second["access_token"], first.access);
    let second_refresh = second["refresh_token"].as_str().unwrap().to_string();
    let second_access = second["access_token"].as_str().unwrap().to_string();

    // The spent token presented again after the grace window: theft. The whole session dies.
    app.clock.advance(Duration::from_secs(11));
    assert_eq!(refresh(&app, &first.refresh).await.status(), 401);
    assert_eq!(
        refresh(&app, &second_refresh).await.status(),
        401,
        "the family is revoked"
    );
    assert_eq!(
        app.get_auth("/api/v1/me", &second_access).await.status(),
        401
    );
    assert_eq!(
        app.get_auth("/api/v1/me", &first.access).await.status(),
        401
    );

    let mut conn = app.db.as_ref().unwrap().connect();
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n = diesel::sql_query(
        "SELECT count(*) AS n FROM audit_logs WHERE action = 'auth.refresh.reuse_detected'",
    )
    .get_result::<N>(&mut conn)
    .unwrap()
    .n;
    assert_eq!(n, 1);
}

#[actix_web::test]
async fn a_double_submit_within_ten_seconds_does_not_revoke() {
    let app = spawn_app().await;
    let t = app.user("xena").await;
    let (a, b) =
        futures_util::future::join(refresh(&app, &t.refresh), refresh(&app, &t.refresh)).await;
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(statuses.contains(&200), "{statuses:?}");
    let winner: Value = if a.status() == 200 {
        a.json().await.unwrap()
    } else {
        b.json().await.unwrap()
    };
    // The loser failed cleanly; the session and the winner's pair are intact.
    assert_eq!(
        app.get_auth("/api/v1/me", winner["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    app.clock.advance(Duration::from_secs(5));
    assert_eq!(
        refresh(&app, &t.refresh).await.status(),
        401,
        "spent, inside the grace window"
    );
    let res = refresh(&app, winner["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200, "the session survived the double submit");
}

#[actix_web::test]
async fn refresh_tokens_expire_when_idle_or_old() {
    let app = spawn_app().await;
    let t = app.user("yusuf").await;
    app.clock.advance(Duration::from_secs(6 * 86_400));
    let res = refresh(&app, &t.refresh).await;
    assert_eq!(res.status(), 200, "six idle days are fine");
    let next: Value = res.json().await.unwrap();
    app.clock.advance(Duration::from_secs(7 * 86_400 + 60));
    assert_eq!(
        refresh(&app, next["refresh_token"].as_str().unwrap())
            .await
            .status(),
        401,
        "idle > 7 days"
    );

    let t = app.login("yusuf").await;
    let mut token = t.refresh.clone();
    for _ in 0..5 {
        app.clock.advance(Duration::from_secs(5 * 86_400));
        let res = refresh(&app, &token).await;
        assert_eq!(res.status(), 200);
        token = res.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
    }
    app.clock.advance(Duration::from_secs(5 * 86_400));
    assert_eq!(
        refresh(&app, &token).await.status(),
        401,
        "absolute lifetime of 30 days"
    );
    assert_eq!(refresh(&app, "made-up-token").await.status(), 401);
}

#[actix_web::test]
async fn sessions_are_listed_and_revoked_by_their_owner_only() {
    let app = spawn_app().await;
    let one = app.user("zara").await;
    let two = app.login("zara").await;
    let three = app.login("zara").await;
    let mallory = app.user("mallory_s").await;

    let res = app.get_auth("/api/v1/auth/sessions", &one.access).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(body["next_cursor"].is_null());
    let current: Vec<_> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], one.session_id);
    assert_eq!(items[0]["ip"], "127.0.0.1");

    // Keyset pagination.
    let page: Value = app
        .get_auth("/api/v1/auth/sessions?limit=2", &one.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get_auth(
            &format!("/api/v1/auth/sessions?limit=2&cursor={cursor}"),
            &one.access,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());

    // Someone else's session id is indistinguishable from a missing one.
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{}", one.session_id)))
        .bearer_auth(&mallory.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.get_auth("/api/v1/me", &one.access).await.status(), 200);

    let res = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{}", two.session_id)))
        .bearer_auth(&one.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_auth("/api/v1/me", &two.access).await.status(), 401);

    let res = app
        .client
        .post(app.url("/api/v1/auth/sessions/revoke-others"))
        .bearer_auth(&one.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_auth("/api/v1/me", &three.access).await.status(),
        401
    );
    assert_eq!(app.get_auth("/api/v1/me", &one.access).await.status(), 200);
    assert_eq!(
        app.get_auth("/api/v1/me", &mallory.access).await.status(),
        200,
        "other users untouched"
    );
}

#[actix_web::test]
async fn idle_expired_sessions_are_not_listed_as_live() {
    let app = spawn_app().await;
    let idle = app.user("idler").await;
    let busy = app.login("idler").await;
    // Six days on, only `busy` is used again (a refresh touches its session).
    app.clock.advance(Duration::from_secs(6 * 86_400));
    let res = refresh(&app, &busy.refresh).await;
    assert_eq!(res.status(), 200);
    let busy: Value = res.json().await.unwrap();
    // Two more days: `idle` has not been used for eight (over the seven-day idle limit).
    app.clock.advance(Duration::from_secs(2 * 86_400));
    let res = refresh(&app, busy["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    let busy: Value = res.json().await.unwrap();
    let access = busy["access_token"].as_str().unwrap();
    let listed: Value = app
        .get_auth("/api/v1/auth/sessions", access)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![busy["session_id"].as_str().unwrap()]);
    assert!(!ids.contains(&idle.session_id.as_str()));
    // And it really is over: its refresh token is refused.
    assert_eq!(refresh(&app, &idle.refresh).await.status(), 401);
}
