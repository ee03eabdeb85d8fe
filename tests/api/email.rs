//! Email through the outbox, against a real SMTP conversation (a sink on a loopback port):
//! verification and address-change links, password reset (enumeration-safe, single use, expiring,
//! MFA still required), every security notice, retries, and two senders on one outbox.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::smtp::{Mail, SmtpSink};
use crate::support::totp::{code_now, enrol, next_step};
use crate::support::{AppBuilder, PASSWORD, TestApp, app, app_sharing_database, eventually};

const WAIT: Duration = Duration::from_secs(10);

/// An app whose mail goes to `sink` over SMTP, polled often.
fn mailing(builder: AppBuilder, sink: &SmtpSink) -> AppBuilder {
    builder
        .env("EMAIL_BACKEND", "smtp")
        .env("SMTP_URL", &sink.url())
        .env("EMAIL_POLL_INTERVAL_MS", "20")
        .env("PUBLIC_BASE_URL", "https://app.example")
        .env("SMTP_FROM", "Rampart Security <security@rampart.test>")
}

async fn mail_app() -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start();
    let app = mailing(app(), &sink).spawn().await;
    (app, sink)
}

fn address(username: &str) -> String {
    format!("{username}@example.org")
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// `POST /api/v1/auth/password-reset/complete` with `body`.
async fn complete_reset(app: &TestApp, body: Value) -> reqwest::Response {
    post(app, "/api/v1/auth/password-reset/complete", None, body).await
}

/// Asks for a password reset for `username`'s address: the token of the link mailed.
async fn reset_token(app: &TestApp, sink: &SmtpSink, username: &str) -> String {
    let res = post(
        app,
        "/api/v1/auth/password-reset",
        None,
        json!({ "email": address(username) }),
    )
    .await;
    assert_eq!(res.status(), 202);
    sink.wait_for_mail(&address(username), "Reset your", WAIT)
        .await
        .token()
        .unwrap()
}

async fn verification_mail(sink: &SmtpSink, username: &str) -> Mail {
    sink.wait_for_mail(&address(username), "Confirm your email address", WAIT)
        .await
}

#[actix_web::test]
async fn registration_mails_a_verification_link_that_verifies_once() {
    let (app, sink) = mail_app().await;
    app.register("alice").await;
    let mail = verification_mail(&sink, "alice").await;
    assert_eq!(mail.from, "security@rampart.test");
    let text = mail.text();
    assert!(
        text.contains("https://app.example/verify-email?token="),
        "{text}"
    );
    assert!(text.contains("Content-Type: text/plain"), "a text part");
    assert!(text.contains("Content-Type: text/html"), "an HTML part");
    assert!(text.contains("Hello alice,"));
    assert!(!text.contains(PASSWORD), "never a password");
    let token = mail.token().unwrap();
    assert_eq!(token.len(), 43, "256 bits");
    assert_eq!(
        app.count(&format!(
            "email_tokens WHERE encode(token_hash, 'hex') = '{token}'"
        )),
        0,
        "only the hash is stored"
    );

    let alice = app.login("alice").await;
    let me: Value = app
        .get_auth("/api/v1/me", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], false);
    let res = post(
        &app,
        "/api/v1/auth/verify-email",
        None,
        json!({ "token": token }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["email_verified"], true);
    let again = post(
        &app,
        "/api/v1/auth/verify-email",
        None,
        json!({ "token": token }),
    )
    .await;
    assert_eq!(again.status(), 400, "single use");
    assert_eq!(
        app.count("audit_logs WHERE action = 'user.email_verified'"),
        1
    );
    // Sent, the stored bodies are emptied (the link does not stay in the table).
    assert_eq!(
        app.count("email_outbox WHERE status = 'sent' AND text_body = '' AND html_body = ''"),
        1
    );
}

#[actix_web::test]
async fn expired_tampered_and_garbage_links_are_refused() {
    let (app, sink) = mail_app().await;
    app.register("alice").await;
    let token = verification_mail(&sink, "alice").await.token().unwrap();
    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        tampered.as_str(),
        "",
        "x",
        &"A".repeat(1_000_000),
        "tok\u{0}en",
    ] {
        let res = post(
            &app,
            "/api/v1/auth/verify-email",
            None,
            json!({ "token": bad }),
        )
        .await;
        assert!(
            [400, 413, 422].contains(&res.status().as_u16()),
            "{}",
            res.status()
        );
    }
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    let res = post(
        &app,
        "/api/v1/auth/verify-email",
        None,
        json!({ "token": token }),
    )
    .await;
    assert_eq!(res.status(), 400, "expired after 24 hours");
}

#[actix_web::test]
async fn an_admin_address_becomes_admin_only_when_verified() {
    let sink = SmtpSink::start();
    let app = mailing(app(), &sink)
        .env("ADMIN_EMAILS", "boss@example.org")
        .spawn()
        .await;
    let user = app.register("boss").await;
    assert_eq!(user["role"], "team_member", "registering proves nothing");
    let boss = app.login("boss").await;
    assert_eq!(
        app.get_auth("/api/v1/admin/users", &boss.access)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.count("audit_logs WHERE action = 'user.admin_email_unverified'"),
        1
    );
    let token = verification_mail(&sink, "boss").await.token().unwrap();
    let res = post(
        &app,
        "/api/v1/auth/verify-email",
        None,
        json!({ "token": token }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "admin");
    assert_eq!(
        app.get_auth("/api/v1/admin/users", &boss.access)
            .await
            .status(),
        200,
        "roles apply without a new token"
    );
    assert_eq!(
        app.count(
            "audit_logs WHERE action = 'user.role_changed' \
             AND metadata->>'via' = 'verified_admin_email'"
        ),
        1
    );
}

#[actix_web::test]
async fn with_verification_required_unverified_accounts_reach_only_me_and_resend() {
    let sink = SmtpSink::start();
    let app = mailing(app(), &sink)
        .env("EMAIL_VERIFICATION_REQUIRED", "true")
        .spawn()
        .await;
    let alice = app.user("alice").await;
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        200
    );
    let res = app.get_auth("/api/v1/auth/sessions", &alice.access).await;
    assert_eq!(res.status(), 403);
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/email-unverified")
    );
    let res = post(
        &app,
        "/api/v1/me/email/verification",
        Some(&alice.access),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 202);
    // Two links now; the newest works.
    let mails = sink.wait_for(2, WAIT).await;
    let token = mails.last().unwrap().token().unwrap();
    let res = post(
        &app,
        "/api/v1/auth/verify-email",
        None,
        json!({ "token": token }),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get_auth("/api/v1/auth/sessions", &alice.access)
            .await
            .status(),
        200
    );
    let res = post(
        &app,
        "/api/v1/me/email/verification",
        Some(&alice.access),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 409, "already verified");
}

#[actix_web::test]
async fn an_address_change_applies_only_when_the_new_address_confirms_it() {
    let (app, sink) = mail_app().await;
    let alice = app.user("alice").await;
    let res = post(
        &app,
        "/api/v1/me/email",
        Some(&alice.access),
        json!({ "email": "alice.new@example.net" }),
    )
    .await;
    assert_eq!(res.status(), 202);
    let confirm = sink
        .wait_for_mail(
            "alice.new@example.net",
            "Confirm your new email address",
            WAIT,
        )
        .await;
    let notice = sink
        .wait_for_mail(&address("alice"), "is being changed", WAIT)
        .await;
    assert!(
        notice.text().contains("a***@example.net"),
        "masked: {}",
        notice.text()
    );
    assert!(notice.token().is_none(), "no link in the notice");
    let me: Value = app
        .get_auth("/api/v1/me", &alice.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["email"], "alice@example.org",
        "not before the link is used"
    );
    let token = confirm.token().unwrap();
    let res = post(
        &app,
        "/api/v1/auth/verify-email",
        None,
        json!({ "token": token }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["email"], "alice.new@example.net");
    assert_eq!(me["email_verified"], true);
    sink.wait_for_mail(&address("alice"), "email address was changed", WAIT)
        .await;
    // Taken addresses and the same address are refused.
    app.register("bob").await;
    let res = post(
        &app,
        "/api/v1/me/email",
        Some(&alice.access),
        json!({ "email": "bob@example.org" }),
    )
    .await;
    assert_eq!(res.status(), 409);
    // A sensitive operation: 11 minutes later it needs step-up.
    app.clock.advance(Duration::from_secs(11 * 60));
    let res = post(
        &app,
        "/api/v1/me/email",
        Some(&alice.access),
        json!({ "email": "alice.third@example.net" }),
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[actix_web::test]
async fn password_reset_answers_the_same_for_known_and_unknown_addresses() {
    let (app, sink) = mail_app().await;
    app.register("alice").await;
    verification_mail(&sink, "alice").await;
    let mut known_ms = Vec::new();
    let mut unknown_ms = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..20 {
        for (email, times) in [
            ("alice@example.org", &mut known_ms),
            ("nobody@example.org", &mut unknown_ms),
        ] {
            let started = Instant::now();
            let res = post(
                &app,
                "/api/v1/auth/password-reset",
                None,
                json!({ "email": if i % 2 == 0 { email.to_uppercase() } else { email.to_string() } }),
            )
            .await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(res.status(), 202);
            let mut body: Value = res.json().await.unwrap();
            body.as_object_mut().unwrap().remove("request_id");
            bodies.push(body);
        }
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "same body");
    let p50 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (known, unknown) = (p50(&mut known_ms), p50(&mut unknown_ms));
    assert!(
        (known - unknown).abs() < 5.0,
        "p50 {known:.2} ms vs {unknown:.2} ms"
    );
    // Three links an hour to one address (EMAIL_LINKS_PER_HOUR), whatever was asked.
    sink.wait_for(1 + 3, WAIT).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let resets: Vec<Mail> = sink
        .mails()
        .into_iter()
        .filter(|m| m.subject().contains("Reset your"))
        .collect();
    assert_eq!(resets.len(), 3);
    assert!(resets.iter().all(|m| m.to == vec![address("alice")]));
}

#[actix_web::test]
async fn a_reset_link_sets_a_new_password_once_and_ends_every_session() {
    let (app, sink) = mail_app().await;
    let alice = app.user("alice").await;
    post(
        &app,
        "/api/v1/auth/password-reset",
        None,
        json!({ "email": "alice@example.org" }),
    )
    .await;
    let mail = sink
        .wait_for_mail(&address("alice"), "Reset your", WAIT)
        .await;
    assert!(
        mail.text()
            .contains("https://app.example/reset-password?token=")
    );
    let token = mail.token().unwrap();
    let weak = complete_reset(&app, json!({ "token": token, "new_password": "short" })).await;
    assert_eq!(weak.status(), 422, "the policy applies");
    let new = "a completely different passphrase 91";
    let res = complete_reset(&app, json!({ "token": token, "new_password": new })).await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_auth("/api/v1/me", &alice.access).await.status(),
        401
    );
    assert_eq!(app.login_as("alice", PASSWORD).await.status(), 401);
    assert_eq!(app.login_as("alice", new).await.status(), 200);
    let again = complete_reset(
        &app,
        json!({ "token": token, "new_password": "yet another passphrase 12" }),
    )
    .await;
    assert_eq!(again.status(), 400, "single use");
    sink.wait_for_mail(&address("alice"), "password was changed", WAIT)
        .await;
    // A link expires after 30 minutes.
    post(
        &app,
        "/api/v1/auth/password-reset",
        None,
        json!({ "email": "alice@example.org" }),
    )
    .await;
    let resets = || -> Vec<Mail> {
        sink.mails()
            .into_iter()
            .filter(|m| m.subject().contains("Reset your"))
            .collect()
    };
    eventually("a second reset mail", || resets().len() == 2).await;
    let second = resets()[1].token().unwrap();
    app.clock.advance(Duration::from_secs(31 * 60));
    let res = complete_reset(
        &app,
        json!({ "token": second, "new_password": "yet another passphrase 12" }),
    )
    .await;
    assert_eq!(res.status(), 400, "expired");
}

#[actix_web::test]
async fn racing_resets_with_one_link_set_one_password() {
    let (app, sink) = mail_app().await;
    app.register("alice").await;
    let token = reset_token(&app, &sink, "alice").await;
    let attempts = (0..20).map(|i| {
        complete_reset(
            &app,
            json!({ "token": token, "new_password": format!("racing passphrase number {i} xyz") }),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        app.count("audit_logs WHERE action = 'auth.password_reset.completed'"),
        1
    );
}

#[actix_web::test]
async fn a_reset_never_bypasses_the_second_factor() {
    let (app, sink) = mail_app().await;
    let alice = app.user("alice").await;
    let (secret, _) = enrol(&app, &alice.access).await;
    let token = reset_token(&app, &sink, "alice").await;
    let new = "a completely different passphrase 91";
    let without = complete_reset(&app, json!({ "token": token, "new_password": new })).await;
    assert_eq!(without.status(), 422);
    let wrong = complete_reset(
        &app,
        json!({ "token": token, "new_password": new, "code": "000000" }),
    )
    .await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(app.count("users WHERE failed_logins = 1"), 1, "counted");
    next_step(&app);
    let res = complete_reset(
        &app,
        json!({ "token": token, "new_password": new, "code": code_now(&app, &secret) }),
    )
    .await;
    assert_eq!(res.status(), 204);
    let login: Value = app.login_as("alice", new).await.json().await.unwrap();
    assert_eq!(login["mfa_required"], true, "the factor stays");
}

#[actix_web::test]
async fn every_security_notice_reaches_the_owner() {
    let sink = SmtpSink::start();
    let app = mailing(app(), &sink)
        .env("TRUSTED_PROXIES", "127.0.0.1/32")
        .spawn()
        .await;
    let alice = app.user("alice").await;
    let to = address("alice");
    // Password changed.
    let res = post(
        &app,
        "/api/v1/me/password",
        Some(&alice.access),
        json!({ "current_password": PASSWORD, "new_password": "a completely different passphrase 91" }),
    )
    .await;
    assert_eq!(res.status(), 204);
    let mail = sink.wait_for_mail(&to, "password was changed", WAIT).await;
    assert!(
        !mail.text().contains("a completely different passphrase"),
        "no password"
    );
    // New API key.
    app.api_key(&alice.access, "deploy bot", &["profile:read"])
        .await;
    let mail = sink.wait_for_mail(&to, "new API key", WAIT).await;
    assert!(mail.text().contains("deploy bot"));
    // MFA on, a recovery code used, MFA off.
    let (_, codes) = enrol(&app, &alice.access).await;
    sink.wait_for_mail(&to, "was turned on", WAIT).await;
    let login: Value = app
        .login_as("alice", "a completely different passphrase 91")
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .post_json(
            "/api/v1/auth/mfa",
            &json!({ "mfa_token": login["mfa_token"], "recovery_code": codes[0] }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let mail = sink
        .wait_for_mail(&to, "recovery code was used", WAIT)
        .await;
    assert!(mail.text().contains("9 unused codes are left"));
    let res = app
        .client
        .delete(app.url("/api/v1/me/mfa/totp"))
        .bearer_auth(&alice.access)
        .json(&json!({ "password": "a completely different passphrase 91", "recovery_code": codes[1] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    sink.wait_for_mail(&to, "was turned off", WAIT).await;
    // A sign-in from another browser and network than before.
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", "Mozilla/5.0 (Windows NT 10.0) Firefox/133.0")
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({ "login": "alice", "password": "a completely different passphrase 91" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mail = sink.wait_for_mail(&to, "New sign-in", WAIT).await;
    assert!(
        mail.text().contains("Firefox on Windows"),
        "{}",
        mail.text()
    );
    assert!(mail.text().contains("198.51.100.0/24"));
    // The same browser and /24 again: nothing new.
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", "Mozilla/5.0 (Windows NT 10.0) Firefox/134.0")
        .header("x-forwarded-for", "198.51.100.99")
        .json(&json!({ "login": "alice", "password": "a completely different passphrase 91" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Locked.
    for _ in 0..5 {
        app.login_as("alice", "wrong wrong wrong wrong").await;
    }
    let mail = sink.wait_for_mail(&to, "was locked", WAIT).await;
    assert!(mail.text().contains("locked until"));
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.mails()
            .iter()
            .filter(|m| m.subject().contains("New sign-in"))
            .count(),
        1
    );
    // Every mail went to alice only.
    assert!(sink.mails().iter().all(|m| m.to == vec![to.clone()]));
}

#[actix_web::test]
async fn the_operator_switches_notices_off_per_kind() {
    let sink = SmtpSink::start();
    let app = mailing(app(), &sink)
        .env(
            "EMAIL_NOTIFICATIONS_OFF",
            "api_key_created,password_changed",
        )
        .spawn()
        .await;
    let alice = app.user("alice").await;
    app.api_key(&alice.access, "k", &["profile:read"]).await;
    let (_, _) = enrol(&app, &alice.access).await;
    sink.wait_for_mail(&address("alice"), "was turned on", WAIT)
        .await;
    let subjects: Vec<String> = sink.mails().iter().map(Mail::subject).collect();
    assert!(
        !subjects.iter().any(|s| s.contains("API key")),
        "{subjects:?}"
    );
    // Not switchable: the link mails.
    assert!(subjects.iter().any(|s| s.contains("Confirm your email")));
}

#[actix_web::test]
async fn a_change_that_rolls_back_sends_nothing() {
    let (app, sink) = mail_app().await;
    app.register("alice").await;
    verification_mail(&sink, "alice").await;
    let before = app.count("email_outbox");
    let settings = app.settings.email.clone();
    let id = uuid::Uuid::parse_str(&app.user_id("alice")).unwrap();
    let mut conn = app.db.as_ref().unwrap().connect();
    use diesel::Connection;
    let result = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        let queued = rampart::email::notify_in_tx(
            conn,
            &settings,
            id,
            rampart::email::Notice::PasswordChanged,
            app.clock.now(),
        )
        .unwrap();
        assert!(queued);
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(result.is_err());
    assert_eq!(
        app.count("email_outbox"),
        before,
        "rolled back with the change"
    );
    // Registrations that fail (a taken name) queue nothing either.
    let res = app
        .post_json(
            "/api/v1/auth/register",
            &json!({ "username": "alice", "email": "other@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(app.count("email_outbox"), before);
}

#[actix_web::test]
async fn refused_mail_is_retried_with_back_off_then_delivered() {
    let sink = SmtpSink::start();
    sink.refuse_next(2);
    let app = mailing(app(), &sink).spawn().await;
    app.register("alice").await;
    // First try refused: due again in 30 s (service clock).
    eventually("a first refusal", || sink.refused() >= 1).await;
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.refused(), 1, "not again before its time");
    assert_eq!(
        app.count(
            "email_outbox WHERE status = 'pending' AND attempts = 1 AND last_error LIKE '%451%'"
        ),
        1
    );
    app.clock.advance(Duration::from_secs(31));
    eventually("a second refusal", || sink.refused() >= 2).await;
    // Then 60 s (doubled).
    app.clock.advance(Duration::from_secs(61));
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        app.count("email_outbox WHERE status = 'sent' AND attempts = 3"),
        1
    );
}

#[actix_web::test]
async fn a_mail_fails_for_good_after_its_attempts() {
    let sink = SmtpSink::start();
    sink.refuse_next(2);
    let app = mailing(app(), &sink)
        .env("EMAIL_MAX_ATTEMPTS", "2")
        .spawn()
        .await;
    app.register("alice").await;
    eventually("a first refusal", || sink.refused() >= 1).await;
    app.clock.advance(Duration::from_secs(31));
    eventually("the mail failed", || {
        app.count("email_outbox WHERE status = 'failed'") == 1
    })
    .await;
    assert!(sink.mails().is_empty());
}

#[actix_web::test]
async fn two_senders_on_one_outbox_never_send_a_mail_twice() {
    let sink = SmtpSink::start();
    let first = mailing(app(), &sink)
        .env("EMAIL_POLL_INTERVAL_MS", "10")
        .spawn()
        .await;
    let second = mailing(app_sharing_database(&first), &sink)
        .env("EMAIL_POLL_INTERVAL_MS", "10")
        .spawn()
        .await;
    let registrations = (0..40).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        async move { app.register(&format!("user{i}")).await }
    });
    futures_util::future::join_all(registrations).await;
    let mails = sink.wait_for(40, Duration::from_secs(20)).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let mails = if mails.len() < sink.mails().len() {
        sink.mails()
    } else {
        mails
    };
    assert_eq!(mails.len(), 40, "each mail once");
    let mut tokens: Vec<String> = mails.iter().filter_map(Mail::token).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 40);
    assert_eq!(first.count("email_outbox WHERE status = 'sent'"), 40);
}

#[actix_web::test]
async fn the_log_backend_writes_mail_files_and_sends_nothing() {
    let dir = std::env::temp_dir().join(format!("rampart-mail-{}", uuid::Uuid::now_v7().simple()));
    let app = app()
        .env("EMAIL_BACKEND", "log")
        .env("EMAIL_LOG_DIR", &dir.display().to_string())
        .env("EMAIL_POLL_INTERVAL_MS", "20")
        .spawn()
        .await;
    app.register("alice").await;
    let files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    eventually("a mail file", || !files().is_empty()).await;
    let text = std::fs::read_to_string(&files()[0]).unwrap();
    assert!(text.contains("To: alice@example.org"), "{text}");
    assert!(text.contains("verify-email?token="));
    let _ = std::fs::remove_dir_all(&dir);
}
