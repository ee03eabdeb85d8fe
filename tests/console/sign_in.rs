//! Console sign-in from the attacker's side: cookie attributes, id rotation, sign-out, idle and
//! absolute expiry, non-admins, the shared lockout, and CSRF on every state change.

use std::time::Duration;

use rampart::audit::Action;

use crate::client::{Console, admin_app, audit_count, location, set_cookies, user_id, user_state};
use crate::support::PASSWORD;

#[actix_web::test]
async fn the_session_cookie_is_httponly_strict_and_host_only_and_secure_in_production() {
    for production in [false, true] {
        let mut builder = admin_app();
        if production {
            builder = builder.env("ENVIRONMENT", "production");
        }
        let app = builder.spawn().await;
        app.register_admin("root").await;
        let mut console = Console::new(&app);
        let nonce = console.login_nonce().await;
        let res = console
            .post(
                "/admin/login",
                &[
                    ("login", "root"),
                    ("password", PASSWORD),
                    ("csrf_token", &nonce),
                ],
            )
            .await;
        assert_eq!(res.status(), 303);
        let cookies = set_cookies(&res);
        let name = if production {
            "__Host-rampart_admin"
        } else {
            "rampart_admin"
        };
        let session = cookies
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} set: {cookies:?}"));
        assert!(session.value.len() >= 43, "256-bit token");
        assert!(session.has("HttpOnly"), "{session:?}");
        assert_eq!(session.attribute("SameSite").as_deref(), Some("Strict"));
        assert_eq!(session.attribute("Path").as_deref(), Some("/"));
        assert!(session.attribute("Domain").is_none());
        assert_eq!(session.has("Secure"), production, "{session:?}");
        // The sign-in nonce cookie is cleared once used.
        let login_cookie = if production {
            "__Host-rampart_admin_login"
        } else {
            "rampart_admin_login"
        };
        assert!(
            cookies
                .iter()
                .any(|c| c.name == login_cookie && c.is_removal()),
            "{cookies:?}"
        );
        // Only the hash is stored.
        let mut conn = app.db.as_ref().unwrap().connect();
        use diesel::prelude::*;
        let stored: Vec<Vec<u8>> = rampart::db::schema::admin_sessions::table
            .select(rampart::db::schema::admin_sessions::token_hash)
            .load(&mut conn)
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0], session.value.as_bytes());
        let (status, html) = console.get_text("/admin").await;
        if production {
            // MFA_REQUIRED_FOR_ADMINS is on in production: this admin has no second factor yet,
            // so the console opens on the enrolment page only.
            assert_eq!(status, 303);
            let (status, html) = console.get_text("/admin/mfa").await;
            assert_eq!(status, 200);
            assert!(html.contains("Set up an authenticator app"), "{html}");
        } else {
            assert_eq!(status, 200);
            assert!(html.contains("Dashboard"));
        }
    }
}

#[actix_web::test]
async fn sign_in_rotates_the_id_and_sign_out_deletes_the_session() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let mut console = Console::new(&app);
    // A cookie planted before sign-in (session fixation) is not the one that comes out.
    console
        .cookies
        .insert("rampart_admin".into(), "planted-by-an-attacker".into());
    console.sign_in("root").await;
    let first = console.cookies["rampart_admin"].clone();
    assert_ne!(first, "planted-by-an-attacker");
    // Signing in again (same browser) issues a new id and ends the old session. (The sign-in
    // page sends a signed-in browser to the dashboard: fetch the form as if signed out.)
    let current = console.cookies.remove("rampart_admin").unwrap();
    let nonce = console.login_nonce().await;
    console.cookies.insert("rampart_admin".into(), current);
    let res = console
        .post(
            "/admin/login",
            &[
                ("login", "root"),
                ("password", PASSWORD),
                ("csrf_token", &nonce),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let second = console.cookies["rampart_admin"].clone();
    assert_ne!(first, second);
    let mut old = Console::new(&app);
    old.cookies.insert("rampart_admin".into(), first);
    let res = old.get("/admin").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res).as_deref(), Some("/admin/login"));
    // Sign out: the row goes, the cookie is cleared, and replaying it gets nowhere.
    let csrf = console.csrf().await;
    let res = console
        .post("/admin/logout", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res).as_deref(), Some("/admin/login"));
    assert!(!console.cookies.contains_key("rampart_admin"));
    let mut replay = Console::new(&app);
    replay.cookies.insert("rampart_admin".into(), second);
    assert_eq!(replay.get("/admin").await.status(), 303);
    assert_eq!(audit_count(&app, Action::AdminLoginSucceeded), 2);
    assert_eq!(audit_count(&app, Action::AdminLogout), 1);
    let (_, html) = console.get_text("/admin/login").await;
    assert!(html.contains("You are signed out."), "flash shown once");
    let (_, html) = console.get_text("/admin/login").await;
    assert!(!html.contains("You are signed out."), "and only once");
}

#[actix_web::test]
async fn sessions_end_after_30_idle_minutes_and_8_hours_in_all() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    // Idle: 29 minutes is fine (and counts as use), 31 more is not.
    app.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(console.get("/admin").await.status(), 200);
    app.clock.advance(Duration::from_secs(31 * 60));
    let res = console.get("/admin").await;
    assert_eq!(res.status(), 303, "idle for 31 minutes");
    assert_eq!(location(&res).as_deref(), Some("/admin/login"));

    // Absolute: used every 20 minutes, the session still ends 8 hours after sign-in.
    console.sign_in("root").await;
    for _ in 0..23 {
        app.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(console.get("/admin/users").await.status(), 200);
    }
    // 7 h 40 min so far.
    app.clock.advance(Duration::from_secs(20 * 60));
    let res = console.get("/admin/users").await;
    assert_eq!(res.status(), 303, "8 hours after sign-in");
}

#[actix_web::test]
async fn only_admins_get_in_and_others_see_the_same_failure_as_a_wrong_password() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.register("member").await;
    let mut console = Console::new(&app);
    let wrong = console.sign_in_as("root", "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    let wrong_html = wrong.text().await.unwrap();
    let member = console.sign_in_as("member", PASSWORD).await;
    assert_eq!(member.status(), 401);
    let member_html = member.text().await.unwrap();
    let unknown = console.sign_in_as("nobody-at-all", PASSWORD).await;
    let unknown_html = unknown.text().await.unwrap();
    let strip = |html: &str| {
        html.lines()
            .filter(|l| !l.contains("csrf_token") && !l.contains("name=\"login\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&wrong_html), strip(&member_html));
    assert_eq!(strip(&wrong_html), strip(&unknown_html));
    assert!(!console.cookies.contains_key("rampart_admin"));
    // Audited with the real reasons.
    let mut conn = app.db.as_ref().unwrap().connect();
    let reasons: Vec<String> = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(Action::AdminLoginFailed),
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .iter()
    .map(|e| e.metadata["reason"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(reasons, vec!["unknown_user", "not_admin", "bad_password"]);
    // Signed out, every page sends you to sign in; the admin API answers 401, and 403 to a
    // member.
    for path in [
        "/admin",
        "/admin/audit",
        "/admin/users",
        "/admin/keys",
        "/admin/sessions",
        "/admin/webhooks",
    ] {
        let res = console.get(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(location(&res).as_deref(), Some("/admin/login"));
    }
    let res = app.get("/api/v1/admin/users").await;
    assert_eq!(res.status(), 401);
    let tokens = app.login("member").await;
    let res = app
        .get_auth("/api/v1/admin/audit-logs", &tokens.access)
        .await;
    assert_eq!(res.status(), 403);
    // A demoted admin's console session ends with the demotion.
    let mut ops = Console::new(&app);
    app.register_admin("ops").await;
    ops.sign_in("ops").await;
    app.sql("UPDATE users SET role = 'team_member' WHERE username = 'ops'");
    assert_eq!(ops.get("/admin").await.status(), 303);
}

#[actix_web::test]
async fn the_console_shares_the_api_lockout() {
    let app = admin_app().env("LOCKOUT_THRESHOLD", "3").spawn().await;
    app.register_admin("root").await;
    let mut console = Console::new(&app);
    // Two failures on the API, one on the console: locked.
    for _ in 0..2 {
        assert_eq!(
            app.login_as("root", "wrong password 123").await.status(),
            401
        );
    }
    assert_eq!(
        console
            .sign_in_as("root", "wrong password 123")
            .await
            .status(),
        401
    );
    assert_eq!(audit_count(&app, Action::AuthLockout), 1);
    // Now even the right password fails, on both.
    assert_eq!(console.sign_in_as("root", PASSWORD).await.status(), 401);
    assert_eq!(app.login_as("root", PASSWORD).await.status(), 401);
}

#[actix_web::test]
async fn the_sign_in_form_needs_its_own_token_and_origin() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    let mut console = Console::new(&app);
    // No nonce cookie / no token.
    let res = console
        .post("/admin/login", &[("login", "root"), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("expired"));
    // A token that is not the cookie's.
    console.login_nonce().await;
    let res = console
        .post(
            "/admin/login",
            &[
                ("login", "root"),
                ("password", PASSWORD),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    // From another site.
    let nonce = console.login_nonce().await;
    console.origin = Some("https://evil.example".into());
    let res = console
        .post(
            "/admin/login",
            &[
                ("login", "root"),
                ("password", PASSWORD),
                ("csrf_token", &nonce),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(!console.cookies.contains_key("rampart_admin"));
    assert_eq!(audit_count(&app, Action::AdminLoginSucceeded), 0);
}

#[actix_web::test]
async fn state_changes_without_the_sessions_csrf_token_are_403_and_change_nothing() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.register_admin("ops").await;
    app.register("mallory").await;
    let mallory = user_id(&app, "mallory");
    let mut root = Console::new(&app);
    root.sign_in("root").await;
    let mut ops = Console::new(&app);
    ops.sign_in("ops").await;
    let ops_token = ops.csrf().await;
    let root_token = root.csrf().await;
    let path = format!("/admin/users/{mallory}/disable");
    type Attempt<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<String>);
    let attempts: Vec<Attempt> = vec![
        (
            "missing token",
            vec![("reason", "x")],
            Some(app.address.clone()),
        ),
        (
            "wrong token",
            vec![("reason", "x"), ("csrf_token", "AAAA")],
            Some(app.address.clone()),
        ),
        (
            "another session's token",
            vec![("reason", "x"), ("csrf_token", &ops_token)],
            Some(app.address.clone()),
        ),
        (
            "right token, another origin",
            vec![("reason", "x"), ("csrf_token", &root_token)],
            Some("https://evil.example".into()),
        ),
        (
            "right token, null origin",
            vec![("reason", "x"), ("csrf_token", &root_token)],
            Some("null".into()),
        ),
    ];
    for (what, fields, origin) in attempts {
        root.origin = origin;
        let res = root.post(&path, &fields).await;
        assert_eq!(res.status(), 403, "{what}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{what}: a page, not JSON");
        assert!(user_state(&app, "mallory").0, "{what}: nothing changed");
    }
    // The sign-out form is protected the same way.
    root.origin = Some(app.address.clone());
    let res = root.post("/admin/logout", &[("csrf_token", "nope")]).await;
    assert_eq!(res.status(), 403);
    assert_eq!(root.get("/admin").await.status(), 200, "still signed in");
    assert_eq!(audit_count(&app, Action::UserDisabled), 0);
    // With everything right it works, and a Referer alone (no Origin) is checked too.
    root.origin = None;
    let res = root
        .app
        .client
        .post(app.url(&path))
        .header(
            "cookie",
            format!("rampart_admin={}", root.cookies["rampart_admin"]),
        )
        .header("referer", "https://evil.example/page")
        .form(&[("reason", "x"), ("csrf_token", root_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a foreign Referer");
    root.origin = Some(app.address.clone());
    let res = root
        .post(&path, &[("reason", "spam"), ("csrf_token", &root_token)])
        .await;
    assert_eq!(res.status(), 303);
    assert!(!user_state(&app, "mallory").0);
}

#[actix_web::test]
async fn fifty_parallel_console_sign_ins_reach_the_hash_at_most_threshold_times() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    // Fifty browsers, each with its own sign-in nonce, all posting at once.
    let mut consoles: Vec<Console<'_>> = (0..50).map(|_| Console::new(&app)).collect();
    let mut nonces = Vec::new();
    for console in &mut consoles {
        nonces.push(console.login_nonce().await);
    }
    let posts = consoles
        .iter_mut()
        .zip(&nonces)
        .map(|(console, nonce)| async move {
            let fields = [
                ("login", "root"),
                ("password", "a wrong guess, but a long one"),
                ("csrf_token", nonce.as_str()),
            ];
            console.post("/admin/login", &fields).await
        });
    let results = futures_util::future::join_all(posts).await;
    assert!(results.iter().all(|r| r.status() == 401));
    let mut conn = app.db.as_ref().unwrap().connect();
    let failed = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(Action::AdminLoginFailed),
            limit: 500,
            ..Default::default()
        },
    )
    .unwrap()
    .items;
    let verified = failed
        .iter()
        .filter(|e| e.metadata["reason"] == "bad_password")
        .count();
    assert_eq!(failed.len(), 50);
    assert_eq!(verified, 5, "only the threshold reached the hash");
    assert_eq!(audit_count(&app, Action::AuthLockout), 1);
    let mut late = Console::new(&app);
    assert_eq!(late.sign_in_as("root", PASSWORD).await.status(), 401);
}

#[actix_web::test]
async fn ending_api_sessions_ends_console_sessions_too() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    // 1. "Sign out other sessions" from the API.
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    assert_eq!(console.get("/admin").await.status(), 200);
    let api = app.login("root").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/sessions/revoke-others"))
        .bearer_auth(&api.access)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let res = console.get("/admin").await;
    assert_eq!(res.status(), 303, "revoke-others ends the console session");
    assert_eq!(location(&res).as_deref(), Some("/admin/login"));
    // 2. A password change.
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    assert_eq!(console.get("/admin").await.status(), 200);
    let res = app
        .client
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&api.access)
        .json(&serde_json::json!({
            "current_password": PASSWORD,
            "new_password": "a freshly changed passphrase 7"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        console.get("/admin").await.status(),
        303,
        "a password change ends it"
    );
    // The API session that made the change lives on; nothing else does.
    assert_eq!(app.get_auth("/api/v1/me", &api.access).await.status(), 200);
}

#[actix_web::test]
async fn a_registered_super_admin_address_gets_neither_admin_nor_protection() {
    let app = admin_app().spawn().await;
    // An attacker registers the super admin's address before its owner does.
    app.register("root").await;
    assert_eq!(user_state(&app, "root"), (true, "team_member".into()));
    let mut console = Console::new(&app);
    assert_eq!(console.sign_in_as("root", PASSWORD).await.status(), 401);
    // A real admin (made by an operator) can disable that account.
    let ops = app.admin_user("ops").await;
    let id = user_id(&app, "root");
    let res = app
        .client
        .post(app.url(&format!("/api/v1/admin/users/{id}/disable")))
        .bearer_auth(&ops.access)
        .json(&serde_json::json!({ "reason": "squatted the super admin address" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!user_state(&app, "root").0);
    // Had an operator promoted it, it would be protected: promote and try again.
    app.sql(&format!("UPDATE users SET active = true WHERE id = '{id}'"));
    app.promote("root");
    let res = app
        .client
        .post(app.url(&format!("/api/v1/admin/users/{id}/disable")))
        .bearer_auth(&ops.access)
        .json(&serde_json::json!({ "reason": "try again" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
}
