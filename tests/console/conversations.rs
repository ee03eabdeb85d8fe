//! The console's per-user conversation figures: counts, storage and quota use — and never a
//! message's content (the console does not decrypt).

use serde_json::json;

use crate::client::{Console, admin_app, user_id};

#[actix_web::test]
async fn the_user_page_shows_counts_and_quota_use_but_no_content() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let res = app
        .client
        .post(app.url("/api/v1/conversations"))
        .bearer_auth(&alice.access)
        .json(&json!({ "member_usernames": ["bob"], "title": "SecretTitle" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let c: serde_json::Value = res.json().await.unwrap();
    for body in ["SecretBodyOne", "SecretBodyTwo"] {
        let res = app
            .client
            .post(app.url(&format!(
                "/api/v1/conversations/{}/messages",
                c["id"].as_str().unwrap()
            )))
            .bearer_auth(&alice.access)
            .json(&json!({ "body": body }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let alice_id = user_id(&app, "alice");
    let (status, html) = console.get_text(&format!("/admin/users/{alice_id}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<dd id=\"usage-conversations\">1</dd>"),
        "{html}"
    );
    assert!(html.contains("<dd id=\"usage-messages\">2</dd>"), "{html}");
    assert!(html.contains("<dd id=\"usage-storage\">0 B</dd>"), "{html}");
    assert!(
        html.contains("<td>messages_sent</td><td>this day (UTC)</td><td>2</td><td>100</td>"),
        "{html}"
    );
    assert!(
        html.contains(
            "<td>conversations_created</td><td>this month (UTC)</td><td>1</td><td>50</td>"
        ),
        "{html}"
    );
    for secret in ["SecretTitle", "SecretBodyOne", "SecretBodyTwo"] {
        assert!(!html.contains(secret), "{secret} shown");
    }
}
