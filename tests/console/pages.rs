//! The console's pages: escaping of stored attacker input, headers, static files, the
//! confirm-then-act flow of every action (each audited with the admin as actor), the dashboard
//! and the CSV export.

use serde_json::{Value, json};

use rampart::audit::Action;

use crate::client::{Console, admin_app, audit_count, csrf_in, location, user_id, user_state};
use crate::support::PASSWORD;

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(2)>";

#[actix_web::test]
async fn stored_xss_payloads_render_as_text_everywhere() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let victim = app.user("victim").await;
    // A display name, a user agent and audit metadata (an unknown login name) carrying markup.
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&victim.access)
        .json(&json!({ "display_name": format!("{SCRIPT}{IMG}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", format!("Mozilla {IMG} {SCRIPT}"))
        .json(&json!({ "login": format!("x{SCRIPT}"), "password": "whatever it is" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A username with markup cannot even be registered.
    let res = app
        .post_json(
            "/api/v1/auth/register",
            &json!({ "username": SCRIPT, "email": "x@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), 422);

    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let victim_id = user_id(&app, "victim");
    let failed_row = {
        let mut conn = app.db.as_ref().unwrap().connect();
        rampart::audit::list(
            &mut conn,
            &rampart::audit::AuditQuery {
                action: Some(Action::AuthLoginFailed),
                ..Default::default()
            },
        )
        .unwrap()
        .items[0]
            .id
    };
    for path in [
        format!("/admin/users/{victim_id}"),
        format!("/admin/audit/{failed_row}"),
        "/admin/audit".to_string(),
        "/admin/audit?action=auth.login.failed".to_string(),
        format!("/admin/users/{victim_id}/disable"),
    ] {
        let (status, html) = console.get_text(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!html.contains("<script"), "{path}: raw script tag");
        assert!(!html.contains("<img"), "{path}: raw img tag");
    }
    let (_, html) = console
        .get_text(&format!("/admin/audit/{failed_row}"))
        .await;
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(html.contains("&#60;img src=x onerror=alert(2)&#62;"));
    let (_, html) = console.get_text(&format!("/admin/users/{victim_id}")).await;
    assert!(html.contains("&#60;script&#62;"));
}

#[actix_web::test]
async fn console_pages_have_a_strict_csp_no_inline_code_and_are_never_cached() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let mut console = Console::new(&app);
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
    let res = console.get("/admin/login").await;
    assert_eq!(res.headers()["content-security-policy"], csp);
    console.sign_in("root").await;
    // A failed webhook delivery, for its page and its replay confirm page.
    let failed = crate::webhooks::failed_without_customer(&app, "evt_csp").await;
    // A linked identity, for the user page's identity list and the unlink confirm page.
    let root_id = crate::client::user_id(&app, "root");
    let identity = uuid::Uuid::now_v7();
    app.sql(&format!(
        "INSERT INTO user_identities (id, provider, issuer, subject, user_id, created_at, last_seen_at) \
         VALUES ('{identity}', 'clerk', 'clerk', 'user_csp', '{root_id}', now(), now())"
    ));
    for path in [
        "/admin".to_string(),
        "/admin/audit".to_string(),
        "/admin/users".to_string(),
        "/admin/keys".to_string(),
        "/admin/sessions".to_string(),
        "/admin/webhooks".to_string(),
        format!("/admin/webhooks/{failed}"),
        format!("/admin/webhooks/{failed}/replay"),
        format!("/admin/users/{root_id}"),
        format!("/admin/identities/{identity}/unlink"),
        format!("/admin/users/{root_id}/identities/new"),
        "/admin/nope".to_string(),
    ] {
        let res = console.get(&path).await;
        assert_eq!(res.headers()["content-security-policy"], csp, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        let html = res.text().await.unwrap();
        assert!(!html.contains("<script"), "{path}: no script at all");
        assert!(!html.contains("style=\""), "{path}: no inline style");
        assert!(!html.contains("<style"), "{path}: no style element");
        assert!(!html.contains(" on"), "{path}: no event handler attribute");
    }
    // An unknown console page is a readable 404 page, not JSON.
    let res = console.get("/admin/nope").await;
    assert_eq!(res.status(), 404);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[actix_web::test]
async fn static_files_have_their_types_and_nothing_else_is_served() {
    let app = admin_app().spawn().await;
    let res = app.get("/static/console.css").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let res = app.get("/static/favicon.svg").await;
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    for path in [
        "/static/",
        "/static",
        "/static/..%2fCargo.toml",
        "/static/../Cargo.toml",
        "/static/%2e%2e/src/main.rs",
        "/static/console.css/..",
        "/static/CONSOLE.CSS",
    ] {
        let (status, body) = crate::support::raw_http(
            app.port,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(
            !body.contains("[package]") && !body.contains("fn main"),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn disabling_a_user_takes_a_confirmation_and_their_token_stops_working() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let mallory = app.user("mallory").await;
    let key: Value = app.api_key(&mallory.access, "k", &["profile:read"]).await;
    let key = key["key"].as_str().unwrap().to_string();
    let id = user_id(&app, "mallory");
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    // The confirmation page changes nothing.
    let (status, html) = console
        .get_text(&format!("/admin/users/{id}/disable"))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Disable this account?"));
    assert!(html.contains("mallory"));
    assert!(user_state(&app, "mallory").0);
    let csrf = csrf_in(&html).unwrap();
    // A reason is required: the page comes back with the message and nothing is changed.
    let res = console
        .post(
            &format!("/admin/users/{id}/disable"),
            &[("csrf_token", &csrf), ("reason", "  ")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("The reason is required"));
    assert!(user_state(&app, "mallory").0);
    let res = console
        .post(
            &format!("/admin/users/{id}/disable"),
            &[("csrf_token", &csrf), ("reason", "credential stuffing")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res).as_deref(),
        Some(format!("/admin/users/{id}").as_str())
    );
    let (_, html) = console.get_text(&format!("/admin/users/{id}")).await;
    assert!(html.contains("Account disabled"), "flash message");
    assert!(html.contains("status-disabled"));
    // Token, refresh and API key are refused from now on.
    assert_eq!(
        app.get_auth("/api/v1/me", &mallory.access).await.status(),
        401
    );
    assert_eq!(app.get_auth("/api/v1/me", &key).await.status(), 401);
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": mallory.refresh }),
        )
        .await;
    assert_eq!(res.status(), 401);
    // Audited with the admin as actor and the reason.
    let mut conn = app.db.as_ref().unwrap().connect();
    let row = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(Action::UserDisabled),
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .remove(0);
    assert_eq!(row.actor_type, "admin");
    assert_eq!(row.actor_id, Some(user_id(&app, "root")));
    assert_eq!(row.target_id, Some(id.clone()));
    assert_eq!(row.metadata["reason"], "credential stuffing");
    assert_eq!(row.metadata["sessions_revoked"], 1);
    // Enable again: sign-in works, the old session stays ended.
    let csrf = console.csrf().await;
    let res = console
        .post(
            &format!("/admin/users/{id}/enable"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.get_auth("/api/v1/me", &mallory.access).await.status(),
        401
    );
    assert_eq!(app.login_as("mallory", PASSWORD).await.status(), 200);
    assert_eq!(audit_count(&app, Action::UserEnabled), 1);
}

#[actix_web::test]
async fn unlock_sign_out_everywhere_and_role_changes_follow_the_rules() {
    let app = admin_app().env("LOCKOUT_THRESHOLD", "2").spawn().await;
    app.register_admin("root").await; // the super admin
    app.register_admin("ops").await; // an ordinary admin
    let bob = app.user("bob").await;
    for _ in 0..2 {
        app.login_as("bob", "wrong wrong wrong 1").await;
    }
    assert_eq!(app.login_as("bob", PASSWORD).await.status(), 401, "locked");
    let bob_id = user_id(&app, "bob");
    let root_id = user_id(&app, "root");
    let ops_id = user_id(&app, "ops");

    let mut ops = Console::new(&app);
    ops.sign_in("ops").await;
    let csrf = ops.csrf().await;
    let res = ops
        .post(
            &format!("/admin/users/{bob_id}/unlock"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.login_as("bob", PASSWORD).await.status(),
        200,
        "unlocked"
    );
    assert_eq!(audit_count(&app, Action::UserUnlocked), 1);

    let res = ops
        .post(
            &format!("/admin/users/{bob_id}/sign-out"),
            &[("csrf_token", &csrf), ("reason", "lost laptop")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.get_auth("/api/v1/me", &bob.access).await.status(), 401);
    assert_eq!(audit_count(&app, Action::UserSignedOutEverywhere), 1);

    // Only the super admin changes roles; nobody disables the super admin or themselves.
    assert_eq!(
        ops.get(&format!("/admin/users/{bob_id}/role"))
            .await
            .status(),
        403
    );
    let res = ops
        .post(
            &format!("/admin/users/{bob_id}/role"),
            &[("csrf_token", &csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(user_state(&app, "bob").1, "team_member");
    for (target, what) in [(&root_id, "super admin"), (&ops_id, "themselves")] {
        let res = ops
            .post(
                &format!("/admin/users/{target}/disable"),
                &[("csrf_token", &csrf), ("reason", "why not")],
            )
            .await;
        assert_eq!(res.status(), 409, "{what}");
        assert!(res.text().await.unwrap().contains("Nothing was changed"));
    }
    assert!(user_state(&app, "root").0 && user_state(&app, "ops").0);

    let mut root = Console::new(&app);
    root.sign_in("root").await;
    let (status, html) = root.get_text(&format!("/admin/users/{bob_id}/role")).await;
    assert_eq!(status, 200);
    let csrf = csrf_in(&html).unwrap();
    let res = root
        .post(
            &format!("/admin/users/{bob_id}/role"),
            &[("csrf_token", &csrf), ("role", "demo")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(user_state(&app, "bob").1, "demo");
    let res = root
        .post(
            &format!("/admin/users/{root_id}/role"),
            &[("csrf_token", &csrf), ("role", "team_member")],
        )
        .await;
    assert_eq!(res.status(), 409, "the super admin cannot be demoted");
    assert_eq!(user_state(&app, "root").1, "admin");
    let mut conn = app.db.as_ref().unwrap().connect();
    let change = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(Action::UserRoleChanged),
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .remove(0);
    assert_eq!(change.metadata["from"], "team_member");
    assert_eq!(change.metadata["to"], "demo");
    assert_eq!(change.actor_id, Some(root_id));
}

#[actix_web::test]
async fn keys_and_sessions_are_listed_and_revoked_with_a_confirmation() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let alice = app.user("alice").await;
    let created: Value = app
        .api_key(&alice.access, "ci <deploy>", &["profile:read"])
        .await;
    let key_id = created["id"].as_str().unwrap();
    let key = created["key"].as_str().unwrap();
    let prefix = created["prefix"].as_str().unwrap();
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    for path in [
        "/admin/keys".to_string(),
        "/admin/keys?owner=alice&status=active".to_string(),
        format!("/admin/keys?prefix={prefix}"),
    ] {
        let (_, html) = console.get_text(&path).await;
        assert!(html.contains(prefix), "{path}");
        assert!(html.contains("ci &#60;deploy&#62;"), "{path}");
        assert!(!html.contains(key), "the key itself never shows");
    }
    let (_, html) = console.get_text("/admin/keys?status=revoked").await;
    assert!(html.contains("No keys match"));
    let (_, html) = console.get_text("/admin/keys?owner=nobody").await;
    assert!(html.contains("There is no user named nobody"));
    let (_, html) = console
        .get_text(&format!("/admin/keys/{key_id}/revoke"))
        .await;
    assert!(html.contains("Revoke this API key?"));
    let csrf = csrf_in(&html).unwrap();
    let res = console
        .post(
            &format!("/admin/keys/{key_id}/revoke"),
            &[("csrf_token", &csrf), ("reason", "")],
        )
        .await;
    assert_eq!(res.status(), 422, "a reason is required");
    assert_eq!(app.get_auth("/api/v1/me", key).await.status(), 200);
    let res = console
        .post(
            &format!("/admin/keys/{key_id}/revoke"),
            &[("csrf_token", &csrf), ("reason", "found in a public gist")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.get_auth("/api/v1/me", key).await.status(), 401);
    let list: Value = app
        .get_auth("/api/v1/api-keys", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["revoke_reason"], "found in a public gist");

    // Sessions: alice's live session is listed; revoking it ends her token.
    let (_, html) = console.get_text("/admin/sessions?user=alice").await;
    assert!(html.contains("alice"));
    let session_id = alice.session_id.clone();
    assert!(html.contains(&format!("/admin/sessions/{session_id}/revoke")));
    let (_, html) = console
        .get_text(&format!("/admin/sessions/{session_id}/revoke"))
        .await;
    let csrf = csrf_in(&html).unwrap();
    let res = console
        .post(
            &format!("/admin/sessions/{session_id}/revoke"),
            &[("csrf_token", &csrf), ("reason", "")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        401
    );
    let (_, html) = console.get_text("/admin/sessions?user=alice").await;
    assert!(html.contains("No live sessions"));
    let mut conn = app.db.as_ref().unwrap().connect();
    let revoked = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(Action::SessionRevoked),
            ..Default::default()
        },
    )
    .unwrap()
    .items;
    assert_eq!(revoked[0].actor_type, "admin");
    assert_eq!(revoked[0].target_id.as_deref(), Some(session_id.as_str()));
}

#[actix_web::test]
async fn the_dashboard_counts_security_events_and_draws_them() {
    let app = admin_app()
        .env("RATE_LIMIT_LOGIN_PER_MINUTE", "3")
        .spawn()
        .await;
    app.register_admin("root").await;
    app.register("bob").await;
    for _ in 0..5 {
        app.login_as("bob", "wrong wrong wrong").await;
    }
    app.sql("UPDATE users SET active = false WHERE username = 'bob'");
    // The limiter counted bob's failures: wait for the reporter's rows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while audit_count(&app, Action::RateLimitExceeded) == 0 && std::time::Instant::now() < deadline
    {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The console's own sign-in is rate limited too (login class): use a second app instance.
    let other = crate::support::app_sharing_database(&app)
        .env("RATE_LIMIT_LOGIN_PER_MINUTE", "100")
        .spawn()
        .await;
    let mut console = Console::new(&other);
    console.sign_in("root").await;
    let (status, html) = console.get_text("/admin").await;
    assert_eq!(status, 200);
    let card = |label: &str| -> i64 {
        let at = html.find(label).unwrap_or_else(|| panic!("{label}"));
        let before = &html[..at];
        let value_at = before.rfind("card-value\">").unwrap() + "card-value\">".len();
        before[value_at..]
            .split('<')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(card(">users<"), 2);
    assert_eq!(card(">disabled<"), 1);
    assert_eq!(
        card(">failed logins, 24 h<"),
        3,
        "3 got through the limiter"
    );
    assert_eq!(card(">rate-limited requests, 24 h<"), 2);
    assert!(html.contains("<svg"));
    assert!(html.contains("class=\"s-failed\""));
    assert!(html.contains("Failed logins: 3"));
    assert!(!html.contains("No failed logins, lockouts"));
}

#[actix_web::test]
async fn the_csv_export_streams_the_filtered_rows_and_defuses_formulas() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    for i in 0..3 {
        let res = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("user-agent", "=HYPERLINK(\"http://evil.example\",\"x\")")
            .json(&json!({ "login": format!("@nobody{i}"), "password": "whatever it is" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let res = console
        .get("/admin/audit/export.csv?action=auth.login.failed")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"rampart-audit-")
    );
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(headers.get(0), Some("id"));
    assert_eq!(headers.get(4), Some("action"));
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for row in &rows {
        assert_eq!(&row[4], "auth.login.failed");
        let ua = &row[column("user_agent")];
        assert!(ua.starts_with("'="), "formula defused: {ua}");
        let metadata: Value = serde_json::from_str(&row[column("metadata")]).unwrap();
        // The attempted name is kept only as a keyed pseudonym (no formula, no name).
        let pseudonym = metadata["login_pseudonym"].as_str().unwrap();
        assert!(pseudonym.starts_with("pn1:"), "{pseudonym}");
        assert!(!row.iter().any(|field| field.contains("nobody")));
    }
    let ids: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    // Bad filters are refused with a page, and the export is audited.
    let res = console.get("/admin/audit/export.csv?ip=nonsense").await;
    assert_eq!(res.status(), 422);
    assert_eq!(audit_count(&app, Action::DataExported), 1);
}

#[actix_web::test]
async fn the_csv_export_quotes_every_field_and_defuses_formulas_after_a_separator() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", "Mozilla/5.0;=1+2*3;x")
        .json(&json!({ "login": "nobody", "password": "whatever it is" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let res = console
        .get("/admin/audit/export.csv?action=auth.login.failed")
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    // The raw bytes: the user agent is quoted and its second "cell" defused.
    assert!(
        text.contains(",\"Mozilla/5.0;'=1+2*3;x\","),
        "the user agent is quoted and defused: {text}"
    );
    assert!(!text.contains(";=1"), "{text}");
    // Split the way a spreadsheet in a `;` locale does: no piece starts a formula.
    for line in text.lines() {
        for piece in line.split([';', ',', '\t', '|']) {
            let piece = piece.trim_start_matches([' ', '"']);
            assert!(!piece.starts_with(['=', '+', '@']), "{piece:?} in {line}");
        }
        // Every field is quoted: the line is exactly its fields written with quotes always.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        let mut writer = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        writer.write_record(&record).unwrap();
        let requoted = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(requoted.trim_end(), line, "every field quoted");
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let ua = headers.iter().position(|h| h == "user_agent").unwrap();
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[ua], "Mozilla/5.0;'=1+2*3;x");
}

#[actix_web::test]
async fn console_audit_dates_postgres_cannot_hold_are_a_422_page_and_never_a_broken_export() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    for query in [
        "from=-4800-01-01",
        "to=9999-12-31T23:59:59-23:59",
        "from=-4713-11-23T23:59",
        "to=%2B10000-01-01",
    ] {
        let (status, html) = console.get_text(&format!("/admin/audit?{query}")).await;
        assert_eq!(status, 422, "{query}: {html}");
        assert!(html.contains("class=\"field-error\""), "{query}: {html}");
        if !query.contains("10000") {
            assert!(html.contains("outside the range"), "{query}: {html}");
        }
        // The export refuses before its first byte: an HTML error page, not a cut-off CSV.
        let res = console
            .get(&format!("/admin/audit/export.csv?{query}"))
            .await;
        assert_eq!(res.status(), 422, "{query}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{query}"
        );
        assert!(res.headers().get("content-disposition").is_none());
    }
    assert_eq!(audit_count(&app, Action::DataExported), 0);
    // The edges of the range work, in the page and in the export.
    for query in [
        "from=-4713-11-24",
        "to=9999-12-31T23:59:59.999999Z",
        "from=-4713-11-24T00:00&to=9999-12-31T23:59:59%2B23:59",
    ] {
        let (status, html) = console.get_text(&format!("/admin/audit?{query}")).await;
        assert_eq!(status, 200, "{query}: {html}");
        assert!(
            html.contains("auth.login.succeeded") || html.contains("admin.login"),
            "{query}"
        );
        let res = console
            .get(&format!("/admin/audit/export.csv?{query}"))
            .await;
        assert_eq!(res.status(), 200, "{query}");
        let text = res.text().await.unwrap();
        assert!(text.starts_with("\"id\","), "{query}: {text}");
        assert!(text.lines().count() > 1, "{query}: {text}");
    }
}

/// The text of the audit list's target cell whose title names `target` (`type id`).
fn target_cell(html: &str, target: &str) -> String {
    let marker = format!("title=\"{target}\">");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no cell for {target}"));
    let rest = &html[at + marker.len()..];
    rest[..rest.find("</td>").unwrap()].trim().to_string()
}

#[actix_web::test]
async fn sessions_started_in_the_same_minute_have_distinct_targets_in_the_audit_list() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.register("alice").await;
    let first = app.login("alice").await;
    let second = app.login("alice").await;
    let third = app.login("alice").await;
    // UUID v7 begin with their timestamp: ids made within the same ~65 s share their first 8
    // digits (so the old 8-digit display showed these two alike).
    for (token, victim) in [
        (&third.access, &first.session_id),
        (&third.access, &second.session_id),
    ] {
        let res = app
            .client
            .delete(app.url(&format!("/api/v1/auth/sessions/{victim}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let (status, html) = console
        .get_text("/admin/audit?action=session.revoked")
        .await;
    assert_eq!(status, 200);
    let a = target_cell(&html, &format!("session {}", first.session_id));
    let b = target_cell(&html, &format!("session {}", second.session_id));
    assert_ne!(a, b, "two sessions, two different targets");
    for (text, id) in [(&a, &first.session_id), (&b, &second.session_id)] {
        assert!(text.starts_with("session "), "{text}");
        let tail = id.rsplit('-').next().unwrap();
        assert!(text.ends_with(tail), "{text} shows the random tail of {id}");
    }
}

#[actix_web::test]
async fn an_audit_row_shows_the_clients_request_id_and_the_servers_own() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-request-id", "attacker-chosen")
        .json(&json!({ "login": "nobody", "password": "whatever it is" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let mut conn = app.db.as_ref().unwrap().connect();
    let row = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(Action::AuthLoginFailed),
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .remove(0);
    assert_eq!(row.request_id.as_deref(), Some("attacker-chosen"));
    let server_id = row.server_request_id.clone().unwrap();
    assert_ne!(server_id, "attacker-chosen");
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let (status, html) = console.get_text(&format!("/admin/audit/{}", row.id)).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<code class=\"wrap\">attacker-chosen</code>"),
        "{html}"
    );
    assert!(html.contains("(sent by the client)"), "{html}");
    assert!(html.contains("Server request id"), "{html}");
    assert!(
        html.contains(&format!("<code class=\"wrap\">{server_id}</code>")),
        "{html}"
    );
}
