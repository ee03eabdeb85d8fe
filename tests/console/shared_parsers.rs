//! One parser per list filter and one path-id extractor, shared by the JSON API and the console:
//! what the API refuses, the console refuses too (a readable 422 page, never "any"), and a
//! malformed `{id}` is a 404 on both sides — after the caller is known, never before.

use serde_json::{Value, json};

use crate::client::{Console, admin_app, csrf_in, location};
use crate::support::TestApp;

fn is_html(res: &reqwest::Response) -> bool {
    res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html")
}

fn is_problem(res: &reqwest::Response) -> bool {
    res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json")
}

/// The API's 422 for `path`, and the field it names.
async fn api_refuses(app: &TestApp, token: &str, path: &str) -> String {
    let res = app.get_auth(path, token).await;
    assert_eq!(res.status(), 422, "{path}");
    let body: Value = res.json().await.unwrap();
    body["errors"][0]["field"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn the_console_refuses_the_user_and_key_filters_the_api_refuses() {
    let app = admin_app().spawn().await;
    let root = app.admin_user("root").await;
    let alice = app.user("alice").await;
    app.api_key(&alice.access, "ci-deploy-key", &["profile:read"])
        .await;
    let mut console = Console::new(&app);
    console.sign_in("root").await;

    // Other spellings of a role or status are refused by both, with the same sentence.
    for (query, field, sentence) in [
        (
            "role=superuser",
            "role",
            "must be admin, team_member or demo",
        ),
        ("role=ADMIN", "role", "must be admin, team_member or demo"),
        (
            "role=%20admin",
            "role",
            "must be admin, team_member or demo",
        ),
        (
            "role=admin%2C",
            "role",
            "must be admin, team_member or demo",
        ),
        (
            "status=gone",
            "status",
            "must be active, disabled or locked",
        ),
        (
            "status=Active",
            "status",
            "must be active, disabled or locked",
        ),
        (
            "q=al&role=owner",
            "role",
            "must be admin, team_member or demo",
        ),
    ] {
        assert_eq!(
            api_refuses(&app, &root.access, &format!("/api/v1/admin/users?{query}")).await,
            field,
            "{query}"
        );
        let res = console.get(&format!("/admin/users?{query}")).await;
        assert_eq!(res.status(), 422, "{query}");
        assert!(is_html(&res), "{query}");
        let html = res.text().await.unwrap();
        assert!(html.contains(sentence), "{query}: {html}");
        assert!(
            !html.contains("alice"),
            "{query}: no list read as unfiltered"
        );
    }
    for query in ["status=Revoked", "status=gone", "status=active%20"] {
        assert_eq!(
            api_refuses(
                &app,
                &root.access,
                &format!("/api/v1/admin/api-keys?{query}")
            )
            .await,
            "status",
            "{query}"
        );
        let (status, html) = console.get_text(&format!("/admin/keys?{query}")).await;
        assert_eq!(status, 422, "{query}");
        assert!(
            html.contains("must be active, rotation_grace, rotated, expired or revoked"),
            "{query}: {html}"
        );
        assert!(!html.contains("ci-deploy-key"), "{query}: no key listed");
    }

    // Good filters (however encoded) still filter; an empty one means "any".
    let (status, html) = console.get_text("/admin/users?role=%61dmin").await;
    assert_eq!(status, 200);
    assert!(html.contains("root") && !html.contains("alice"), "{html}");
    let (status, html) = console.get_text("/admin/users?role=&status=").await;
    assert_eq!(status, 200);
    assert!(html.contains("root") && html.contains("alice"));
    let (status, html) = console.get_text("/admin/keys?status=&owner=alice").await;
    assert_eq!(status, 200);
    assert!(html.contains("ci-deploy-key"));
}

#[actix_web::test]
async fn a_malformed_id_is_a_404_on_console_pages_and_the_admin_api_after_the_caller_is_known() {
    let app = admin_app().spawn().await;
    let root = app.admin_user("root").await;
    let alice = app.user("alice").await;
    let alice_id = crate::client::user_id(&app, "alice");
    let bad = [
        "not-a-uuid".to_string(),
        "%7Bid%7D".to_string(),
        format!("{alice_id}x"),
        alice_id[..35].to_string(),
        "1".to_string(),
    ];
    let mut console = Console::new(&app);

    // Signed out: the sign-in page, whatever the id.
    for id in &bad {
        let res = console.get(&format!("/admin/users/{id}")).await;
        assert_eq!(res.status(), 303, "{id}");
        assert_eq!(location(&res).as_deref(), Some("/admin/login"));
    }

    console.sign_in("root").await;
    let csrf = console.csrf().await;
    for id in &bad {
        for path in [
            format!("/admin/users/{id}"),
            format!("/admin/users/{id}/disable"),
            format!("/admin/users/{id}/unlock"),
            format!("/admin/keys/{id}/revoke"),
            format!("/admin/sessions/{id}/revoke"),
            format!("/admin/webhooks/{id}"),
            format!("/admin/webhooks/{id}/replay"),
            format!("/admin/identities/{id}/unlink"),
            format!("/admin/users/{id}/identities/new"),
        ] {
            let res = console.get(&path).await;
            assert_eq!(res.status(), 404, "GET {path}");
            assert!(is_html(&res), "GET {path}");
            let pages_only = [
                format!("/admin/users/{id}"),
                format!("/admin/webhooks/{id}"),
            ];
            if !pages_only.contains(&path) {
                let res = console
                    .post(&path, &[("csrf_token", &csrf), ("reason", "because")])
                    .await;
                assert_eq!(res.status(), 404, "POST {path}");
                assert!(is_html(&res), "POST {path}");
            }
        }
    }
    // The well-formed id still works (and the confirm page carries the token).
    let (status, html) = console
        .get_text(&format!("/admin/users/{alice_id}/disable"))
        .await;
    assert_eq!(status, 200);
    assert!(csrf_in(&html).is_some());

    for id in &bad {
        let res = app
            .get_auth(&format!("/api/v1/admin/users/{id}"), &root.access)
            .await;
        assert_eq!(res.status(), 404, "{id}");
        assert!(is_problem(&res));
        for (path, body) in [
            (
                format!("/api/v1/admin/users/{id}/disable"),
                json!({ "reason": "x" }),
            ),
            (
                format!("/api/v1/admin/api-keys/{id}/revoke"),
                json!({ "reason": "x" }),
            ),
            (format!("/api/v1/admin/sessions/{id}/revoke"), json!({})),
        ] {
            let res = app
                .client
                .post(app.url(&path))
                .bearer_auth(&root.access)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 404, "{path}");
            assert!(is_problem(&res), "{path}");
            // A caller who may not use the route learns nothing from the id's shape.
            let res = app
                .client
                .post(app.url(&path))
                .bearer_auth(&alice.access)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "{path} as alice");
        }
    }
    assert_eq!(
        app.get_auth(&format!("/api/v1/admin/users/{alice_id}"), &root.access)
            .await
            .status(),
        200
    );
}
