//! Two-factor sign-in and step-up in the console (HTTP level; the browser test does it in
//! Chromium): the code page after a right password, admins who must enrol first, and the
//! re-authentication page that completes the pending action with its CSRF token.

use std::time::Duration;

use rampart::audit::Action;

use crate::client::{Console, admin_app, audit_count, csrf_in, location, user_id, user_state};
use crate::support::PASSWORD;
use crate::support::totp::{code_now, enrol, next_step, secret_from_base32};

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker)?;
    let rest = &html[at + marker.len()..];
    Some(rest[..rest.find('"')?].to_string())
}

#[actix_web::test]
async fn an_admin_with_totp_signs_in_with_password_then_code() {
    let app = admin_app().spawn().await;
    let root = app.admin_user("root").await;
    let (secret, codes) = enrol(&app, &root.access).await;
    next_step(&app);
    let mut console = Console::new(&app);
    let res = console.sign_in_as("root", PASSWORD).await;
    assert_eq!(res.status(), 200, "the code page, not a session");
    assert!(
        !crate::client::set_cookies(&res)
            .iter()
            .any(|c| c.name == "rampart_admin"),
        "no session before the code"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("Enter your code"), "{html}");
    let token = hidden(&html, "mfa_token").unwrap();
    let nonce = csrf_in(&html).unwrap();

    let wrong = console
        .post(
            "/admin/login/mfa",
            &[
                ("mfa_token", &token),
                ("code", "000000"),
                ("csrf_token", &nonce),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.unwrap();
    assert!(html.contains("That code did not work"));
    let nonce = csrf_in(&html).unwrap();
    let res = console
        .post(
            "/admin/login/mfa",
            &[
                ("mfa_token", &token),
                ("code", &code_now(&app, &secret)),
                ("csrf_token", &nonce),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res).as_deref(), Some("/admin"));
    let (status, html) = console.get_text("/admin").await;
    assert_eq!(status, 200);
    assert!(html.contains("Dashboard"));
    assert_eq!(audit_count(&app, Action::AdminLoginSucceeded), 1);

    // The API's mfa_token does not open the console, nor the console's the API.
    let api: serde_json::Value = app.login_as("root", PASSWORD).await.json().await.unwrap();
    let api_token = api["mfa_token"].as_str().unwrap().to_string();
    let mut other = Console::new(&app);
    let nonce = other.login_nonce().await;
    let res = other
        .post(
            "/admin/login/mfa",
            &[
                ("mfa_token", &api_token),
                ("recovery_code", &codes[0]),
                ("csrf_token", &nonce),
            ],
        )
        .await;
    assert_eq!(res.status(), 401);
    // A recovery code works at the console too.
    let res = other.sign_in_as("root", PASSWORD).await;
    let html = res.text().await.unwrap();
    let token = hidden(&html, "mfa_token").unwrap();
    let nonce = csrf_in(&html).unwrap();
    let res = other
        .post(
            "/admin/login/mfa",
            &[
                ("mfa_token", &token),
                ("recovery_code", &codes[1]),
                ("csrf_token", &nonce),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
}

#[actix_web::test]
async fn the_code_form_needs_its_nonce_and_origin() {
    let app = admin_app().spawn().await;
    let root = app.admin_user("root").await;
    let (secret, _) = enrol(&app, &root.access).await;
    next_step(&app);
    let mut console = Console::new(&app);
    let html = console
        .sign_in_as("root", PASSWORD)
        .await
        .text()
        .await
        .unwrap();
    let token = hidden(&html, "mfa_token").unwrap();
    let res = console
        .post(
            "/admin/login/mfa",
            &[
                ("mfa_token", &token),
                ("code", &code_now(&app, &secret)),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
}

#[actix_web::test]
async fn admins_must_enrol_before_anything_else_when_mfa_is_required() {
    let app = admin_app()
        .env("MFA_REQUIRED_FOR_ADMINS", "true")
        .spawn()
        .await;
    app.register_admin("root").await;
    let victim = app.user("victim").await;
    let victim_id = user_id(&app, "victim");
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    for path in ["/admin", "/admin/users", "/admin/audit"] {
        let res = console.get(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(location(&res).as_deref(), Some("/admin/mfa"), "{path}");
    }
    let (status, html) = console.get_text("/admin/mfa").await;
    assert_eq!(status, 200);
    let csrf = csrf_in(&html).unwrap();
    // A state change elsewhere is not possible either.
    let res = console
        .post(
            &format!("/admin/users/{victim_id}/disable"),
            &[("csrf_token", &csrf), ("reason", "x")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(user_state(&app, "victim").0, "still active");
    let _ = victim;

    let res = console
        .post("/admin/mfa/start", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("<svg"), "the QR code is inline SVG");
    let at = html.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let secret_text = &html[at..at + html[at..].find('<').unwrap()];
    let secret = secret_from_base32(secret_text);
    let res = console
        .post(
            "/admin/mfa/confirm",
            &[("csrf_token", &csrf), ("code", &code_now(&app, &secret))],
        )
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Your recovery codes"));
    assert_eq!(html.matches("<li><code>").count(), 10);
    // This session proved the factor: the console opens.
    let (status, html) = console.get_text("/admin").await;
    assert_eq!(status, 200);
    assert!(html.contains("admins without two-factor"));
    let (_, html) = console.get_text("/admin/users?role=admin").await;
    assert!(
        html.contains("status-active\">on</span>"),
        "MFA shown per user"
    );
}

#[actix_web::test]
async fn a_stale_console_session_confirms_before_acting_and_the_action_then_completes() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.user("mallory").await;
    let id = user_id(&app, "mallory");
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let csrf = console.csrf().await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let path = format!("/admin/users/{id}/disable");
    let res = console
        .post(
            &path,
            &[("csrf_token", &csrf), ("reason", "credential stuffing")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Confirm it is you"), "{html}");
    assert!(user_state(&app, "mallory").0, "nothing done yet");
    // The pending form is carried: its token and its reason.
    assert_eq!(csrf_in(&html).as_deref(), Some(csrf.as_str()));
    assert_eq!(
        hidden(&html, "reason").as_deref(),
        Some("credential stuffing")
    );

    // A wrong password: refused, counted, nothing done.
    let res = console
        .post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("reason", "credential stuffing"),
                ("reauth_password", "not it at all"),
            ],
        )
        .await;
    assert_eq!(res.status(), 401);
    assert!(user_state(&app, "mallory").0);
    assert_eq!(audit_count(&app, Action::AuthStepUpFailed), 1);
    assert_eq!(
        app.count(
            "audit_logs WHERE action = 'auth.step_up.failed' \
             AND metadata->>'reason' = 'bad_password'"
        ),
        1,
        "recorded as a wrong password"
    );
    // Without the session's CSRF token the password is not even checked.
    let res = console
        .post(
            &path,
            &[
                ("reason", "credential stuffing"),
                ("reauth_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(audit_count(&app, Action::AuthStepUp), 0);

    let res = console
        .post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("reason", "credential stuffing"),
                ("reauth_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303, "the pending action ran");
    assert!(!user_state(&app, "mallory").0, "disabled");
    assert_eq!(audit_count(&app, Action::AuthStepUp), 1);
    assert_eq!(audit_count(&app, Action::UserDisabled), 1);
    // Recent now: the next action needs no confirmation.
    let res = console
        .post(
            &format!("/admin/users/{id}/enable"),
            &[("csrf_token", &csrf), ("reason", "false alarm")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(user_state(&app, "mallory").0);
}

#[actix_web::test]
async fn the_step_up_rule_holds_for_every_spelling_of_a_console_path() {
    let app = admin_app().spawn().await;
    app.register_admin("root").await;
    app.user("mallory").await;
    let id = user_id(&app, "mallory");
    let mut console = Console::new(&app);
    console.sign_in("root").await;
    let csrf = console.csrf().await;
    app.clock.advance(Duration::from_secs(11 * 60));
    for path in [
        format!("/%61dmin/users/{id}/disable"),
        format!("/admin/users/{id}/%64isable"),
        format!("/admin/%75sers/{id}/disable"),
    ] {
        let res = console
            .post(&path, &[("csrf_token", &csrf), ("reason", "x")])
            .await;
        let status = res.status().as_u16();
        let html = res.text().await.unwrap();
        assert!(
            html.contains("Confirm it is you") || status == 404,
            "{path}: {status}"
        );
        assert!(user_state(&app, "mallory").0, "{path} skipped step-up");
    }
}

#[actix_web::test]
async fn an_admin_with_totp_steps_up_with_a_code() {
    let app = admin_app().spawn().await;
    let root = app.admin_user("root").await;
    let (secret, _) = enrol(&app, &root.access).await;
    app.user("mallory").await;
    let id = user_id(&app, "mallory");
    next_step(&app);
    let mut console = Console::new(&app);
    let html = console
        .sign_in_as("root", PASSWORD)
        .await
        .text()
        .await
        .unwrap();
    let token = hidden(&html, "mfa_token").unwrap();
    let nonce = csrf_in(&html).unwrap();
    let res = console
        .post(
            "/admin/login/mfa",
            &[
                ("mfa_token", &token),
                ("code", &code_now(&app, &secret)),
                ("csrf_token", &nonce),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let csrf = console.csrf().await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let path = format!("/admin/users/{id}/disable");
    let html = console
        .post(&path, &[("csrf_token", &csrf), ("reason", "abuse")])
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("reauth_code"), "asks for the code: {html}");
    assert!(!html.contains("reauth_password"));
    let res = console
        .post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("reason", "abuse"),
                ("reauth_code", &code_now(&app, &secret)),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(!user_state(&app, "mallory").0);
}
