//! The console's export and erasure of a user (issue 16): a reason is required, erasure needs the
//! typed username, both are audited with the admin as the actor, and the pages afterwards show
//! the tombstone.

use serde_json::{Value, json};

use crate::client::{Console, admin_app, audit_count, user_id};
use rampart::audit::Action;

fn last_row(app: &crate::support::TestApp, action: Action) -> rampart::audit::AuditEntry {
    let mut conn = app.db.as_ref().unwrap().connect();
    rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(action),
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .remove(0)
}

#[actix_web::test]
async fn an_admin_exports_and_erases_with_a_reason_and_the_console_shows_the_tombstone() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let bob = app.user("bob").await;
    let conversation: Value = app
        .client
        .post(app.url("/api/v1/conversations"))
        .bearer_auth(&bob.access)
        .json(&json!({"member_usernames": ["root"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url(&format!(
            "/api/v1/conversations/{}/messages",
            conversation["id"].as_str().unwrap()
        )))
        .bearer_auth(&bob.access)
        .json(&json!({"body": "bob-wrote-this-3319"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let bob_id = user_id(&app, "bob");
    let root_id = user_id(&app, "root");
    let mut console = Console::new(&app);
    console.sign_in("root").await;

    // Export: a reason is required; with one, the download, audited as the admin.
    let (status, html) = console
        .get_text(&format!("/admin/users/{bob_id}/export"))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Download export"));
    let csrf = console.csrf().await;
    let path = format!("/admin/users/{bob_id}/export");
    let res = console
        .post(&path, &[("csrf_token", &csrf), ("reason", "")])
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(audit_count(&app, Action::UserExported), 0);
    let res = console
        .post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("reason", "Subject access request #12"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["user"]["username"], "bob");
    assert!(doc.to_string().contains("bob-wrote-this-3319"));
    let row = last_row(&app, Action::UserExported);
    assert_eq!(row.actor_type, "admin");
    assert_eq!(row.actor_id.as_deref(), Some(root_id.as_str()));
    assert_eq!(row.target_id.as_deref(), Some(bob_id.as_str()));
    assert_eq!(row.metadata["reason"], "Subject access request #12");

    // Erase: the page asks for the username; a wrong one or no reason changes nothing.
    let path = format!("/admin/users/{bob_id}/erase");
    let (status, html) = console.get_text(&path).await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"confirm\""));
    let res = console
        .post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("reason", "GDPR"),
                ("confirm", "bobby"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = console
        .post(
            &path,
            &[("csrf_token", &csrf), ("reason", ""), ("confirm", "bob")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.get_auth("/api/v1/me", &bob.access).await.status(), 200);
    // Without the CSRF token: refused.
    let res = console
        .post(&path, &[("reason", "GDPR"), ("confirm", "bob")])
        .await;
    assert!(res.status().is_client_error());
    assert_eq!(audit_count(&app, Action::UserErased), 0);

    let res = console
        .post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("reason", "GDPR erasure request #13"),
                ("confirm", "bob"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.get_auth("/api/v1/me", &bob.access).await.status(), 401);
    let row = last_row(&app, Action::UserErased);
    assert_eq!(row.actor_type, "admin");
    assert_eq!(row.actor_id.as_deref(), Some(root_id.as_str()));
    assert_eq!(row.metadata["reason"], "GDPR erasure request #13");
    assert_eq!(row.metadata["via"], "console");

    // The user page and the audit log show the tombstone, never the old name.
    let (status, html) = console.get_text(&format!("/admin/users/{bob_id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("deleted-"));
    assert!(!html.contains(">bob<"));
    assert!(!html.contains("Erase account…") && !html.contains("Export data…"));
    let (status, html) = console.get_text("/admin/audit").await;
    assert_eq!(status, 200);
    assert!(html.contains("deleted-"));
    // Nothing more can be done to it, nor exported.
    let res = console
        .post(
            &format!("/admin/users/{bob_id}/export"),
            &[("csrf_token", &csrf), ("reason", "again")],
        )
        .await;
    assert_eq!(res.status(), 409);
    let res = console
        .post(
            &format!("/admin/users/{bob_id}/enable"),
            &[("csrf_token", &csrf), ("reason", "undo")],
        )
        .await;
    assert_eq!(res.status(), 422);
    // An admin cannot erase themselves here.
    let res = console
        .post(
            &format!("/admin/users/{root_id}/erase"),
            &[("csrf_token", &csrf), ("reason", "me"), ("confirm", "root")],
        )
        .await;
    assert_eq!(res.status(), 409);
}

#[actix_web::test]
async fn erasing_an_admin_ends_their_console_session_and_api_session_at_once() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let ops = app.admin_user("ops").await;
    let ops_id = user_id(&app, "ops");
    let mut theirs = Console::new(&app);
    theirs.sign_in("ops").await;
    assert_eq!(theirs.get("/admin").await.status(), 200);
    let mut mine = Console::new(&app);
    mine.sign_in("root").await;
    let csrf = mine.csrf().await;
    let res = mine
        .post(
            &format!("/admin/users/{ops_id}/erase"),
            &[
                ("csrf_token", &csrf),
                ("reason", "left the company, GDPR"),
                ("confirm", "ops"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let res = theirs.get("/admin").await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        crate::client::location(&res).as_deref(),
        Some("/admin/login")
    );
    assert_eq!(app.get_auth("/api/v1/me", &ops.access).await.status(), 401);
    // Their old name cannot sign in to the console either.
    let res = theirs.sign_in_as("ops", crate::support::PASSWORD).await;
    assert_ne!(crate::client::location(&res).as_deref(), Some("/admin"));
}
