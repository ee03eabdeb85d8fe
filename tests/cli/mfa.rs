//! `rampart users reset-mfa`: the operator's way back in for a user who lost their authenticator.
//! It needs a reason, ends the user's sessions, is audited with the operator's OS user and host,
//! and leaves the user signing in with the password alone.

use serde_json::Value;

use crate::commands::rampart;
use crate::conversations::text;
use crate::support::totp::enrol;
use crate::support::{PASSWORD, app};

#[actix_web::test]
async fn an_operator_resets_a_lost_second_factor_with_a_reason() {
    let app = app().spawn().await;
    let alice = app.user("alice").await;
    enrol(&app, &alice.access).await;
    let login: Value = app.login_as("alice", PASSWORD).await.json().await.unwrap();
    assert_eq!(login["mfa_required"], true);

    // A reason is required; an unknown user is a clear error; neither changes anything.
    let out = rampart(
        &["users", "reset-mfa", "alice", "--reason", " "],
        &app.settings_env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = rampart(
        &[
            "users",
            "reset-mfa",
            "nobody-here",
            "--reason",
            "lost phone",
        ],
        &app.settings_env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no user"), "{}", text(&out));
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        200
    );

    let out = rampart(
        &[
            "users",
            "reset-mfa",
            "alice",
            "--reason",
            "lost phone, ticket 88",
        ],
        &app.settings_env,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("mfa.reset"), "{}", text(&out));
    // Every session of the user ended; the password alone signs in again.
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        401
    );
    let login: Value = app.login_as("alice", PASSWORD).await.json().await.unwrap();
    assert!(login["access_token"].is_string(), "{login}");
    // Nothing left to reset: exit 1, nothing audited.
    let out = rampart(
        &["users", "reset-mfa", "alice", "--reason", "again"],
        &app.settings_env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let mut conn = app.db.as_ref().unwrap().connect();
    let rows = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(rampart::audit::Action::MfaReset),
            ..Default::default()
        },
    )
    .unwrap()
    .items;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].metadata["reason"], "lost phone, ticket 88");
    assert_eq!(rows[0].metadata["via"], "cli");
    assert!(rows[0].metadata.get("os_user").is_some());
    assert!(rows[0].metadata.get("host").is_some());
    assert_eq!(
        rows[0].target_id.as_deref(),
        Some(app.user_id("alice").as_str())
    );
    let out = rampart(&["users", "reset-mfa", "--help"], &app.settings_env);
    assert!(text(&out).contains("Example: rampart users reset-mfa"));
}
