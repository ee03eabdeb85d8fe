//! `rampart users erase` / `users erasure-report` against accounts made over HTTP, the audit
//! chain after an erasure, and the export of 50 000 messages from a real server process in
//! bounded memory (its RSS read from /proc while the body streams).

use serde_json::{Value, json};

use crate::commands::{Served, rampart};
use crate::conversations::{post, text};
use crate::support::app;

#[actix_web::test]
async fn an_operator_erases_with_a_reason_once_and_the_audit_chain_still_verifies() {
    let app = app().spawn().await;
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
    post(&app, &alice.access, &path, json!({"body": "hello bob"})).await;
    let id = app.user_id("alice");

    // Without --yes and without a terminal: refused, nothing changed.
    let out = rampart(
        &["users", "erase", "alice", "--reason", "GDPR request 77"],
        &app.settings_env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--yes"));
    // A reason is required.
    let out = rampart(
        &["users", "erase", "alice", "--reason", " ", "--yes"],
        &app.settings_env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // An unknown user is a clear error.
    let out = rampart(
        &["users", "erase", "nobody-here", "--reason", "x", "--yes"],
        &app.settings_env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        200
    );

    let out = rampart(
        &[
            "users",
            "erase",
            &id,
            "--reason",
            "GDPR request 77",
            "--yes",
        ],
        &app.settings_env,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("erased user"), "{}", text(&out));
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        401
    );
    // Twice is a no-op.
    let out = rampart(
        &["users", "erase", &id, "--reason", "again", "--yes"],
        &app.settings_env,
    );
    assert!(out.status.success());
    assert!(text(&out).contains("already erased"), "{}", text(&out));

    // Audited once, by the operator, with the reason.
    let mut conn = app.db.as_ref().unwrap().connect();
    let rows = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(rampart::audit::Action::UserErased),
            ..Default::default()
        },
    )
    .unwrap()
    .items;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].metadata["reason"], "GDPR request 77");
    assert_eq!(rows[0].metadata["via"], "cli");
    assert_eq!(rows[0].target_id.as_deref(), Some(id.as_str()));

    // The chain still verifies: no chained row was rewritten.
    let out = rampart(&["audit", "verify"], &app.settings_env);
    assert!(out.status.success(), "{}", text(&out));

    // The report: a tombstone, no key, no salt, rows by table.
    let out = rampart(
        &["users", "erasure-report", &id, "--json"],
        &app.settings_env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["username"].as_str().unwrap().starts_with("deleted-"));
    assert_eq!(report["data_key_present"], false);
    assert_eq!(report["audit_salt_present"], false);
    let tables: Vec<&str> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    for table in ["messages", "conversation_members", "sessions", "audit_logs"] {
        assert!(tables.contains(&table), "{table} in {tables:?}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("alice"));
    let out = rampart(&["users", "erasure-report", &id], &app.settings_env);
    assert!(out.status.success());
    assert!(text(&out).contains("rows that still refer to the user"));
}

#[actix_web::test]
async fn an_export_of_fifty_thousand_messages_streams_in_bounded_memory() {
    let app = app().spawn().await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let c = post(
        &app,
        &alice.access,
        "/api/v1/conversations",
        json!({"member_usernames": ["bob"]}),
    )
    .await;
    let cid = c["id"].as_str().unwrap().to_string();
    let body = "x".repeat(1000);
    post(
        &app,
        &alice.access,
        &format!("/api/v1/conversations/{cid}/messages"),
        json!({"body": body}),
    )
    .await;
    // 49 999 more under the same key (copies of the real ciphertext), numbered after it.
    app.sql(&format!(
        "INSERT INTO messages (id, conversation_id, seq, author_id, data_key_id, body_ciphertext, created_at) \
         SELECT gen_random_uuid(), m.conversation_id, m.seq + g, m.author_id, m.data_key_id, m.body_ciphertext, m.created_at \
         FROM messages m, generate_series(1, 49999) g WHERE m.conversation_id = '{cid}'; \
         UPDATE conversations SET last_seq = 50000 WHERE id = '{cid}';"
    ));

    // A real server process, so its memory is its own.
    let server = Served::start(&app.settings_env);
    let token = server.login("alice").await;
    let before = server.rss_kib();
    let mut res = reqwest::Client::new()
        .get(server.url("/api/v1/me/export"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut document = Vec::new();
    let mut peak = before;
    while let Some(chunk) = res.chunk().await.unwrap() {
        document.extend_from_slice(&chunk);
        peak = peak.max(server.rss_kib());
    }
    drop(server);
    let doc: Value = serde_json::from_slice(&document).unwrap();
    let messages = doc["conversations"][0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 50_000);
    assert!(
        messages
            .iter()
            .all(|m| m["body"].as_str() == Some(body.as_str()))
    );
    let grew_mib = (peak.saturating_sub(before)) / 1024;
    let size_mib = document.len() as u64 / (1024 * 1024);
    eprintln!(
        "export: {size_mib} MiB streamed; server RSS {before} KiB -> peak {peak} KiB (+{grew_mib} MiB)"
    );
    assert!(size_mib >= 50, "the document is large ({size_mib} MiB)");
    assert!(
        grew_mib < 40,
        "the server grew by {grew_mib} MiB while streaming {size_mib} MiB"
    );
}
