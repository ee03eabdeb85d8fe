//! Multi-factor authentication, from the client's side: TOTP enrolment, the two-step login, code
//! replay and skew, recovery codes, the lockout counting wrong codes, the sign-in challenge's
//! single use / expiry / IP binding, step-up on every sensitive route, and admins without MFA.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::totp::{code_at, code_now, enrol, next_step, secret_bytes};
use crate::support::{PASSWORD, TestApp, Tokens, app, spawn_app};

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.unwrap()
}

/// A user with TOTP enabled: (tokens of the session that enrolled, raw secret, recovery codes).
pub async fn enrolled(app: &TestApp, username: &str) -> (Tokens, Vec<u8>, Vec<String>) {
    let tokens = app.user(username).await;
    let (secret, codes) = enrol(app, &tokens.access).await;
    (tokens, secret, codes)
}

/// A password login that must answer with the second step: its `mfa_token`.
pub async fn challenge(app: &TestApp, username: &str) -> String {
    let res = app.login_as(username, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(
        body.get("access_token").is_none(),
        "no token before the second step"
    );
    body["mfa_token"].as_str().unwrap().to_string()
}

async fn second_step(app: &TestApp, token: &str, factor: Value) -> reqwest::Response {
    let mut body = json!({ "mfa_token": token });
    body.as_object_mut()
        .unwrap()
        .extend(factor.as_object().unwrap().clone());
    app.post_json("/api/v1/auth/mfa", &body).await
}

/// The full two-step login with the current code: the token pair's body.
pub async fn login_with_code(app: &TestApp, username: &str, secret: &[u8]) -> Value {
    let token = challenge(app, username).await;
    let res = second_step(app, &token, json!({ "code": code_now(app, secret) })).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn claims(access_token: &str) -> Value {
    use base64::Engine as _;
    let payload = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

#[actix_web::test]
async fn enrolment_then_login_needs_the_code_and_works_with_it() {
    let app = spawn_app().await;
    let tokens = app.user("alice").await;
    let plain = claims(&tokens.access);
    assert_eq!(plain["amr"], json!(["pwd"]));
    assert_eq!(plain["acr"], "aal1");

    let res = post(&app, "/api/v1/me/mfa/totp", &tokens.access, &json!({})).await;
    assert_eq!(res.status(), 200);
    let enrolment: Value = res.json().await.unwrap();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/rampart:alice?"), "{uri}");
    assert!(uri.contains("secret="), "{uri}");
    assert!(
        enrolment["qr_svg"].as_str().unwrap().starts_with("<svg"),
        "the QR code is drawn by the server"
    );
    let secret = secret_bytes(&enrolment);
    assert_eq!(secret.len(), 20, "160-bit secret");
    // The secret is stored encrypted, never as the base32 the client saw.
    let b32 = enrolment["secret"].as_str().unwrap();
    assert_eq!(
        app.count(&format!("mfa_totp WHERE secret LIKE '%{b32}%'")),
        0
    );
    // Pending: a login still needs only the password.
    let res = app.login_as("alice", PASSWORD).await;
    assert!(res.json::<Value>().await.unwrap()["access_token"].is_string());

    let wrong = post(
        &app,
        "/api/v1/me/mfa/totp/confirm",
        &tokens.access,
        &json!({ "code": "000000" }),
    )
    .await;
    assert_eq!(wrong.status(), 422);
    let res = post(
        &app,
        "/api/v1/me/mfa/totp/confirm",
        &tokens.access,
        &json!({ "code": code_now(&app, &secret) }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let codes = body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    for code in codes {
        // 20 base32 characters = 100 bits (≥ 80), shown in groups.
        let plain: String = code.as_str().unwrap().replace('-', "");
        assert_eq!(plain.len(), 20, "{code}");
    }
    assert_eq!(
        app.count("mfa_recovery_codes WHERE code_hash LIKE '$argon2id$%'"),
        10,
        "stored as argon2id hashes"
    );

    // From now on a right password alone gives no token and no session.
    let sessions_before = app.count("sessions");
    let token = challenge(&app, "alice").await;
    assert_eq!(app.count("sessions"), sessions_before, "no session yet");
    next_step(&app);
    let res = second_step(&app, &token, json!({ "code": code_now(&app, &secret) })).await;
    assert_eq!(res.status(), 200);
    let pair: Value = res.json().await.unwrap();
    let access = pair["access_token"].as_str().unwrap();
    let strong = claims(access);
    assert_eq!(strong["amr"], json!(["pwd", "otp"]));
    assert_eq!(strong["acr"], "aal2");
    assert_eq!(strong["aal"], "aal2");
    let me = app.get_auth("/api/v1/me", access).await;
    assert_eq!(me.status(), 200);
    let status: Value = app
        .get_auth("/api/v1/me/mfa", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["totp"], true);
    assert_eq!(status["recovery_codes_left"], 10);
    // A second enrolment while one is active is refused.
    let again = post(&app, "/api/v1/me/mfa/totp", access, &json!({})).await;
    assert_eq!(again.status(), 409);
}

#[actix_web::test]
async fn a_code_is_accepted_once_even_across_logins() {
    let app = spawn_app().await;
    let (_, secret, _) = enrolled(&app, "alice").await;
    next_step(&app);
    let code = code_now(&app, &secret);
    let first = challenge(&app, "alice").await;
    assert_eq!(
        second_step(&app, &first, json!({ "code": code }))
            .await
            .status(),
        200
    );
    let second = challenge(&app, "alice").await;
    let replay = second_step(&app, &second, json!({ "code": code })).await;
    assert_eq!(replay.status(), 401, "replayed within its window");
    // The next step's code works (the challenge survived the wrong attempt).
    next_step(&app);
    let fresh = second_step(&app, &second, json!({ "code": code_now(&app, &secret) })).await;
    assert_eq!(fresh.status(), 200);
}

#[actix_web::test]
async fn one_step_of_clock_skew_is_accepted_two_are_not() {
    let app = spawn_app().await;
    let (_, secret, _) = enrolled(&app, "alice").await;
    app.clock.advance(Duration::from_secs(300));
    let now = app.clock.now();
    let token = challenge(&app, "alice").await;
    for off in [-60i64, 60] {
        let code = code_at(&secret, now + time::Duration::seconds(off));
        let res = second_step(&app, &token, json!({ "code": code })).await;
        assert_eq!(res.status(), 401, "{off} s of skew refused");
    }
    let behind = code_at(&secret, now - time::Duration::seconds(30));
    assert_eq!(
        second_step(&app, &token, json!({ "code": behind }))
            .await
            .status(),
        200,
        "a phone 30 s behind"
    );
    let token = challenge(&app, "alice").await;
    let ahead = code_at(&secret, now + time::Duration::seconds(30));
    assert_eq!(
        second_step(&app, &token, json!({ "code": ahead }))
            .await
            .status(),
        200,
        "a phone 30 s ahead"
    );
}

#[actix_web::test]
async fn a_recovery_code_works_once_and_says_how_many_are_left() {
    let app = spawn_app().await;
    let (_, _, codes) = enrolled(&app, "alice").await;
    let token = challenge(&app, "alice").await;
    // Typed in lower case without dashes: the same code.
    let typed = codes[3].to_lowercase().replace('-', " ");
    let res = second_step(&app, &token, json!({ "recovery_code": typed })).await;
    assert_eq!(res.status(), 200);
    let pair: Value = res.json().await.unwrap();
    assert_eq!(pair["recovery_codes_left"], 9);
    assert_eq!(
        claims(pair["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "rec"])
    );
    assert_eq!(
        app.count("audit_logs WHERE action = 'mfa.recovery_code_used'"),
        1
    );
    let token = challenge(&app, "alice").await;
    let reused = second_step(&app, &token, json!({ "recovery_code": codes[3] })).await;
    assert_eq!(reused.status(), 401, "each code works once");
    let other = second_step(&app, &token, json!({ "recovery_code": codes[4] })).await;
    assert_eq!(other.status(), 200);
}

#[actix_web::test]
async fn wrong_codes_count_towards_the_lockout_and_a_right_password_does_not_reset_it() {
    let app = spawn_app().await;
    let (_, secret, _) = enrolled(&app, "alice").await;
    next_step(&app);
    let token = challenge(&app, "alice").await;
    for _ in 0..4 {
        let res = second_step(&app, &token, json!({ "code": "123456" })).await;
        assert_eq!(res.status(), 401);
    }
    // A right password again: a new challenge, and the four failures still count.
    let token = challenge(&app, "alice").await;
    let res = second_step(&app, &token, json!({ "code": "654321" })).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        app.count("audit_logs WHERE action = 'auth.lockout'"),
        1,
        "the fifth wrong code locked the account"
    );
    let right = second_step(&app, &token, json!({ "code": code_now(&app, &secret) })).await;
    assert_eq!(
        right.status(),
        401,
        "locked: even the right code is refused"
    );
    // The lock ends (1 minute); the same challenge (5 minutes) then completes.
    app.clock.advance(Duration::from_secs(61));
    let right = second_step(&app, &token, json!({ "code": code_now(&app, &secret) })).await;
    assert_eq!(right.status(), 200);
    assert_eq!(app.count("users WHERE failed_logins = 0"), 1, "reset");
}

#[actix_web::test]
async fn parallel_wrong_codes_cannot_exceed_the_lockout_budget() {
    let app = spawn_app().await;
    let (_, _, _) = enrolled(&app, "alice").await;
    let token = challenge(&app, "alice").await;
    let attempts = (0..30).map(|i| {
        let app = &app;
        let token = token.clone();
        async move {
            second_step(app, &token, json!({ "code": format!("{:06}", i * 7 + 1) }))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert!(statuses.iter().all(|s| *s == 401));
    // Only LOCKOUT_THRESHOLD of them were checked; the rest found the account locked.
    let checked = app.count(
        "audit_logs WHERE action = 'auth.mfa.failed' AND metadata->>'reason' = 'bad_second_factor'",
    );
    assert!(checked <= 5, "{checked} codes checked");
}

#[actix_web::test]
async fn the_mfa_token_is_single_use_even_when_raced() {
    let app = spawn_app().await;
    let (_, secret, codes) = enrolled(&app, "alice").await;
    next_step(&app);
    let token = challenge(&app, "alice").await;
    // Ten completions at once, each with a different valid factor (so only the token's own
    // single use can stop all but one).
    let attempts = codes
        .iter()
        .map(|code| second_step(&app, &token, json!({ "recovery_code": code })));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(app.count("mfa_recovery_codes WHERE used_at IS NOT NULL"), 1);
    // Spent: a valid code a minute later (within the token's five) does not revive it.
    app.clock.advance(Duration::from_secs(61));
    let again = second_step(&app, &token, json!({ "code": code_now(&app, &secret) })).await;
    assert_eq!(again.status(), 401);
}

#[actix_web::test]
async fn one_code_completes_one_of_many_racing_logins() {
    let app = spawn_app().await;
    let (_, secret, _) = enrolled(&app, "alice").await;
    next_step(&app);
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.push(challenge(&app, "alice").await);
    }
    let code = code_now(&app, &secret);
    let attempts = tokens
        .iter()
        .map(|t| second_step(&app, t, json!({ "code": code })));
    let ok = futures_util::future::join_all(attempts)
        .await
        .iter()
        .filter(|r| r.status() == 200)
        .count();
    assert_eq!(ok, 1, "a code is accepted once (ASVS 6.5.1)");
}

#[actix_web::test]
async fn the_mfa_token_expires_after_five_minutes() {
    let app = spawn_app().await;
    let (_, secret, _) = enrolled(&app, "alice").await;
    let token = challenge(&app, "alice").await;
    app.clock.advance(Duration::from_secs(301));
    let res = second_step(&app, &token, json!({ "code": code_now(&app, &secret) })).await;
    assert_eq!(res.status(), 401);
    for garbage in ["", "x", &"A".repeat(1_000_000), "tok\u{0}en"] {
        let res = second_step(&app, garbage, json!({ "code": "123456" })).await;
        assert!(
            [400, 401, 413, 422].contains(&res.status().as_u16()),
            "{}",
            res.status()
        );
    }
}

#[actix_web::test]
async fn the_mfa_token_works_only_from_the_ip_it_was_issued_to() {
    let app = app().env("TRUSTED_PROXIES", "127.0.0.1/32").spawn().await;
    let (_, secret, _) = enrolled(&app, "alice").await;
    next_step(&app);
    let from = |ip: &str, path: &str, body: Value| {
        app.client
            .post(app.url(path))
            .header("x-forwarded-for", ip.to_string())
            .json(&body)
            .send()
    };
    let res = from(
        "203.0.113.5",
        "/api/v1/auth/login",
        json!({ "login": "alice", "password": PASSWORD }),
    )
    .await
    .unwrap();
    let token = res.json::<Value>().await.unwrap()["mfa_token"]
        .as_str()
        .unwrap()
        .to_string();
    let code = code_now(&app, &secret);
    for ip in ["203.0.113.6", "2001:db8::5"] {
        let res = from(
            ip,
            "/api/v1/auth/mfa",
            json!({ "mfa_token": token, "code": code }),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 401, "from {ip}");
    }
    let res = from(
        "203.0.113.5",
        "/api/v1/auth/mfa",
        json!({ "mfa_token": token, "code": code }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn login_answers_stay_uniform_for_wrong_passwords_of_mfa_users() {
    let app = spawn_app().await;
    enrolled(&app, "alice").await;
    let wrong = app.login_as("alice", "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    let unknown = app.login_as("nobody", "not the password at all").await;
    assert_eq!(unknown.status(), 401);
    let a: Value = wrong.json().await.unwrap();
    let b: Value = unknown.json().await.unwrap();
    assert_eq!(a["type"], b["type"]);
    assert_eq!(a["detail"], b["detail"]);
    assert!(
        a.get("mfa_required").is_none(),
        "only after a right password"
    );
}

#[actix_web::test]
async fn second_step_input_is_validated_without_server_errors() {
    let app = spawn_app().await;
    enrolled(&app, "alice").await;
    let token = challenge(&app, "alice").await;
    for factor in [
        json!({}),
        json!({ "code": "123456", "recovery_code": "AAAA-BBBB-CCCC-DDDD-EEEE" }),
        json!({ "code": "12\u{0}456" }),
        json!({ "code": "1".repeat(1_000_000) }),
        json!({ "recovery_code": "\u{1}".repeat(100) }),
        json!({ "recovery_code": "Z".repeat(1_000_000) }),
        json!({ "code": 123456 }),
    ] {
        let res = second_step(&app, &token, factor.clone()).await;
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{factor:.60}: {status}");
    }
}

/// Every route the registrar marks sensitive, with a body that passes its validation.
fn sensitive_routes() -> Vec<(reqwest::Method, &'static str, Value)> {
    vec![
        (
            reqwest::Method::POST,
            "/api/v1/me/password",
            json!({ "current_password": PASSWORD, "new_password": "an entirely new passphrase 77" }),
        ),
        (reqwest::Method::POST, "/api/v1/me/mfa/totp", json!({})),
        (
            reqwest::Method::POST,
            "/api/v1/me/mfa/totp/confirm",
            json!({ "code": "123456" }),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/me/mfa/recovery-codes",
            json!({}),
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/me/mfa/totp",
            json!({ "password": PASSWORD, "code": "123456" }),
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/me",
            json!({ "current_password": PASSWORD }),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/me/email",
            json!({ "email": "changed.address@example.net" }),
        ),
    ]
}

#[actix_web::test]
async fn the_route_table_marks_exactly_the_sensitive_routes() {
    let marked: Vec<(String, String)> = rampart::web::api_routes()
        .table()
        .iter()
        .filter(|r| r.step_up)
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let mut expected: Vec<(String, String)> = sensitive_routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let mut marked_sorted = marked.clone();
    marked_sorted.sort();
    expected.sort();
    assert_eq!(marked_sorted, expected);
}

#[actix_web::test]
async fn every_sensitive_route_needs_a_recent_authentication_and_step_up_refreshes_it() {
    let app = spawn_app().await;
    for (i, (method, path, body)) in sensitive_routes().into_iter().enumerate() {
        let user = format!("user{i}");
        let tokens = app.user(&user).await;
        // Eleven minutes later (STEP_UP_MAX_AGE_MINUTES is 10) the session is live, not recent.
        app.clock.advance(Duration::from_secs(11 * 60));
        let res = send(&app, method.clone(), path, &tokens.access, Some(&body)).await;
        assert_eq!(res.status(), 401, "{method} {path}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(
            problem_type(&problem),
            "step-up-required",
            "{method} {path}"
        );
        // Nothing happened: e.g. the password is unchanged.
        assert_eq!(app.login_as(&user, PASSWORD).await.status(), 200);

        let res = post(
            &app,
            "/api/v1/auth/step-up",
            &tokens.access,
            &json!({ "password": PASSWORD }),
        )
        .await;
        assert_eq!(res.status(), 200);
        let res = send(&app, method.clone(), path, &tokens.access, Some(&body)).await;
        let status = res.status().as_u16();
        let problem: Value = res.json().await.unwrap_or(Value::Null);
        assert_ne!(
            problem_type(&problem),
            "step-up-required",
            "{method} {path} after step-up: {status} {problem}"
        );
        // The refresh lasts the window, then expires again.
        app.clock.advance(Duration::from_secs(11 * 60));
    }
}

#[actix_web::test]
async fn api_key_creation_with_admin_scopes_needs_step_up_and_ordinary_keys_do_not() {
    let app = spawn_app().await;
    let admin = app.admin_user("root").await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let ordinary = post(
        &app,
        "/api/v1/api-keys",
        &admin.access,
        &json!({ "name": "ci", "scopes": ["profile:read"] }),
    )
    .await;
    assert_eq!(ordinary.status(), 201);
    let powerful = post(
        &app,
        "/api/v1/api-keys",
        &admin.access,
        &json!({ "name": "ops", "scopes": ["users:manage"] }),
    )
    .await;
    assert_eq!(powerful.status(), 401);
    assert_eq!(
        problem_type(&powerful.json().await.unwrap()),
        "step-up-required"
    );
    let res = post(
        &app,
        "/api/v1/auth/step-up",
        &admin.access,
        &json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(res.status(), 200);
    // Past the step-up, the key's scopes are judged as always: admin permissions are never an
    // API key's (DESIGN §3), so the request is refused for what it asks, not for its session.
    let powerful = post(
        &app,
        "/api/v1/api-keys",
        &admin.access,
        &json!({ "name": "ops", "scopes": ["users:manage"] }),
    )
    .await;
    assert_eq!(powerful.status(), 422);
}

#[actix_web::test]
async fn an_api_key_never_passes_step_up() {
    let app = spawn_app().await;
    let tokens = app.user("alice").await;
    let key = app
        .api_key(&tokens.access, "k", &["profile:read", "profile:write"])
        .await;
    let key = key["key"].as_str().unwrap();
    let res = post(
        &app,
        "/api/v1/me/password",
        key,
        &json!({ "current_password": PASSWORD, "new_password": "an entirely new passphrase 77" }),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem_type(&res.json().await.unwrap()), "step-up-required");
    let res = post(
        &app,
        "/api/v1/auth/step-up",
        key,
        &json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(res.status(), 400);
}

#[actix_web::test]
async fn step_up_for_an_mfa_user_needs_the_code_and_counts_failures() {
    let app = spawn_app().await;
    let (tokens, secret, _) = enrolled(&app, "alice").await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let password_only = post(
        &app,
        "/api/v1/auth/step-up",
        &tokens.access,
        &json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(password_only.status(), 422);
    let wrong = post(
        &app,
        "/api/v1/auth/step-up",
        &tokens.access,
        &json!({ "code": "000000" }),
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(app.count("users WHERE failed_logins = 1"), 1);
    assert_eq!(
        app.count(
            "audit_logs WHERE action = 'auth.step_up.failed' \
             AND metadata->>'reason' = 'bad_second_factor'"
        ),
        1
    );
    let res = post(
        &app,
        "/api/v1/auth/step-up",
        &tokens.access,
        &json!({ "code": code_now(&app, &secret) }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["aal"], "aal2", "the session is now two-factor");
    assert_eq!(app.count("users WHERE failed_logins = 0"), 1);
    let regen = post(
        &app,
        "/api/v1/me/mfa/recovery-codes",
        &tokens.access,
        &json!({}),
    )
    .await;
    assert_eq!(regen.status(), 200);
    let codes: Value = regen.json().await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
}

#[actix_web::test]
async fn disabling_needs_the_password_and_a_code() {
    let app = spawn_app().await;
    let (tokens, secret, codes) = enrolled(&app, "alice").await;
    next_step(&app);
    let wrong_password = send(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/me/mfa/totp",
        &tokens.access,
        Some(&json!({ "password": "wrong wrong wrong", "code": code_now(&app, &secret) })),
    )
    .await;
    assert_eq!(wrong_password.status(), 422);
    let no_code = send(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/me/mfa/totp",
        &tokens.access,
        Some(&json!({ "password": PASSWORD })),
    )
    .await;
    assert_eq!(no_code.status(), 422);
    let res = send(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/me/mfa/totp",
        &tokens.access,
        Some(&json!({ "password": PASSWORD, "recovery_code": codes[0] })),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.count("mfa_recovery_codes"), 0);
    assert_eq!(app.count("audit_logs WHERE action = 'mfa.disabled'"), 1);
    let res = app.login_as("alice", PASSWORD).await;
    assert!(res.json::<Value>().await.unwrap()["access_token"].is_string());
}

#[actix_web::test]
async fn admins_without_mfa_are_refused_on_admin_routes_when_required() {
    let app = app().env("MFA_REQUIRED_FOR_ADMINS", "true").spawn().await;
    let admin = app.admin_user("root").await;
    let res = app.get_auth("/api/v1/admin/users", &admin.access).await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem_type(&res.json().await.unwrap()), "mfa-required");
    // Their own routes still work, so they can enrol.
    assert_eq!(
        app.get_auth("/api/v1/me", &admin.access).await.status(),
        200
    );
    let (secret, _) = enrol(&app, &admin.access).await;
    // The enrolling session stays one-factor; a two-step sign-in gets in.
    let res = app.get_auth("/api/v1/admin/users", &admin.access).await;
    assert_eq!(res.status(), 403);
    next_step(&app);
    let pair = login_with_code(&app, "root", &secret).await;
    let res = app
        .get_auth(
            "/api/v1/admin/users",
            pair["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(res.status(), 200);
    let users: Value = res.json().await.unwrap();
    assert_eq!(users["items"][0]["mfa"], true);
}

#[actix_web::test]
async fn provider_tokens_count_as_the_provider_asserts() {
    let app = crate::identities::supabase_app()
        .env("IDENTITY_ADMIN_BY_EMAIL", "true")
        .env("ADMIN_EMAILS", "boss@example.org")
        .env("MFA_REQUIRED_FOR_ADMINS", "true")
        .spawn()
        .await;
    let now = app.clock.now().unix_timestamp();
    let one_factor = crate::identities::supabase_token_with(
        &app,
        "sb-boss",
        Some("boss@example.org"),
        json!({ "email_verified": true, "aal": "aal1", "amr": [{ "method": "password", "timestamp": now }] }),
    );
    let res = app.get_auth("/api/v1/admin/users", &one_factor).await;
    assert_eq!(res.status(), 403, "aal1 provider session");
    let two_factor = crate::identities::supabase_token_with(
        &app,
        "sb-boss",
        Some("boss@example.org"),
        json!({ "email_verified": true, "aal": "aal2", "amr": [{ "method": "totp", "timestamp": now }] }),
    );
    let res = app.get_auth("/api/v1/admin/users", &two_factor).await;
    assert_eq!(res.status(), 200, "aal2 provider session");
    // A token re-issued long after the person signed in is not a recent authentication.
    let stale = crate::identities::supabase_token_with(
        &app,
        "sb-boss",
        Some("boss@example.org"),
        json!({ "email_verified": true, "aal": "aal2", "amr": [{ "method": "totp", "timestamp": now - 3600 }] }),
    );
    let res = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/me/mfa/totp",
        &stale,
        Some(&json!({})),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem_type(&res.json().await.unwrap()), "step-up-required");
}

#[actix_web::test]
async fn erasure_removes_the_factor_and_its_recovery_codes() {
    let app = spawn_app().await;
    let (tokens, _, _) = enrolled(&app, "alice").await;
    assert_eq!(app.count("mfa_totp"), 1);
    let res = send(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/me",
        &tokens.access,
        Some(&json!({ "current_password": PASSWORD })),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.count("mfa_totp"), 0);
    assert_eq!(app.count("mfa_recovery_codes"), 0);
    assert_eq!(app.count("mfa_challenges"), 0);
}
