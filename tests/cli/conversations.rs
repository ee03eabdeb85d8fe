//! `rampart conversations prune` (message retention) against messages sent over HTTP.

use serde_json::json;

use crate::commands::rampart;
use crate::support::{TestApp, app};

/// A command's stdout and stderr, for assertion messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// POSTs `body` to `path` as the holder of `token`; expects 201 and returns the body.
pub async fn post(
    app: &TestApp,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{path}");
    res.json().await.unwrap()
}

#[actix_web::test]
async fn prune_deletes_only_messages_past_the_retention_and_says_when_it_is_off() {
    let app = app().env("MESSAGE_RETENTION_DAYS", "30").spawn().await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let c = post(
        &app,
        &alice.access,
        "/api/v1/conversations",
        json!({"member_usernames": ["bob"]}),
    )
    .await;
    let path = format!(
        "/api/v1/conversations/{}/messages",
        c["id"].as_str().unwrap()
    );
    post(&app, &alice.access, &path, json!({"body": "old"})).await;
    app.sql("UPDATE messages SET created_at = now() - interval '31 days'");
    post(&app, &alice.access, &path, json!({"body": "new"})).await;

    let out = rampart(&["conversations", "prune"], &app.settings_env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("deleted 1 messages older than 30 days"),
        "{}",
        text(&out)
    );
    let out = rampart(&["conversations", "prune"], &app.settings_env);
    assert!(text(&out).contains("deleted 0"), "{}", text(&out));

    let mut env = app.settings_env.clone();
    env.insert("MESSAGE_RETENTION_DAYS".into(), "0".into());
    let out = rampart(&["conversations", "prune"], &env);
    assert!(out.status.success());
    assert!(text(&out).contains("retention is off"), "{}", text(&out));
    let page: serde_json::Value = app
        .get_auth(&path, &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["body"], "new");
}
