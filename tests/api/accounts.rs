//! Registration, login, lockout, profile and password change — from the client's (and the
//! attacker's) side.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, app, spawn_app};

async fn register_raw(
    app: &TestApp,
    username: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/register",
        &json!({ "username": username, "email": email, "password": password }),
    )
    .await
}

async fn field_messages(res: reqwest::Response, field: &str) -> Vec<String> {
    let body: Value = res.json().await.unwrap();
    body["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter(|e| e["field"] == field)
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn register_returns_the_user_without_secrets() {
    let app = spawn_app().await;
    let res = register_raw(&app, "Alice_1", "Alice@Example.ORG", PASSWORD).await;
    assert_eq!(res.status(), 201);
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["username"], "Alice_1");
    assert_eq!(
        body["email"], "alice@example.org",
        "email normalised to lower case"
    );
    assert_eq!(body["role"], "team_member");
    assert_eq!(body["active"], true);
    assert_eq!(
        uuid::Uuid::parse_str(body["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        7
    );
    for leak in ["argon2", "password", "hash", "failed_logins", "locked"] {
        assert!(!text.contains(leak), "user body leaks {leak}: {text}");
    }
}

#[actix_web::test]
async fn every_username_and_email_rule_has_its_own_message() {
    let app = spawn_app().await;
    for (username, expected) in [
        ("ab", "at least 3"),
        (&"a".repeat(51) as &str, "at most 50"),
        ("bad name", "only letters"),
        ("émile", "only letters"),
        ("x<script>", "only letters"),
    ] {
        let res = register_raw(&app, username, "u@example.org", PASSWORD).await;
        assert_eq!(res.status(), 422, "{username}");
        let messages = field_messages(res, "username").await;
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{username}: {messages:?}"
        );
    }
    for email in [
        "not-an-email",
        "a@b",
        "a b@example.org",
        "@example.org",
        "<a@example.org>",
    ] {
        let res = register_raw(&app, "valid_user", email, PASSWORD).await;
        assert_eq!(res.status(), 422, "{email}");
        assert!(!field_messages(res, "email").await.is_empty(), "{email}");
    }
}

#[actix_web::test]
async fn every_password_rule_has_its_own_message() {
    let app = spawn_app().await;
    let cases: Vec<(String, &str)> = vec![
        ("Sh0rt-pw".into(), "at least 12"),
        ("x".repeat(129), "at most 128"),
        ("password1234".into(), "commonly used"),
        ("qwertyuiop123".into(), "commonly used"),
        ("zed-carol1234-zed-99".into(), "username"),
        ("xx carol.w@ mail 9921!".into(), "email"),
        ("aaaaaaaaaaaaaaa".into(), "easy to guess"),
    ];
    for (password, expected) in cases {
        let res = register_raw(&app, "carol1234", "carol.w@example.org", &password).await;
        assert_eq!(res.status(), 422, "{password}");
        let messages = field_messages(res, "password").await;
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{password}: expected `{expected}` in {messages:?}"
        );
    }
}

#[actix_web::test]
async fn classic_policy_adds_composition_rules() {
    let app = app().env("PASSWORD_POLICY", "classic").spawn().await;
    let res = register_raw(
        &app,
        "dave_c",
        "dave@example.org",
        "lowercase only words here",
    )
    .await;
    assert_eq!(res.status(), 422);
    let messages = field_messages(res, "password").await;
    assert!(
        messages.iter().any(|m| m.contains("upper-case")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("digit")), "{messages:?}");
    let res = register_raw(&app, "dave_c", "dave@example.org", "Tr1cky-Gl4ss").await;
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn passwords_are_used_exactly_as_received() {
    let app = spawn_app().await;
    // 64 different emoji (4 bytes each in UTF-8).
    let emoji: String = (0..64u32)
        .map(|i| char::from_u32(0x1F300 + (i * 37) % 256).unwrap())
        .collect();
    assert_eq!(emoji.chars().count(), 64);
    assert_eq!(
        register_raw(&app, "emoji_user", "emoji@example.org", &emoji)
            .await
            .status(),
        201
    );
    assert_eq!(app.login_as("emoji_user", &emoji).await.status(), 200);
    // Not truncated: a prefix does not work; not trimmed: surrounding spaces matter.
    assert_eq!(
        app.login_as("emoji_user", &emoji[..emoji.len() - 4])
            .await
            .status(),
        401
    );
    let spaced = "  orbit Vellum 93 tangerine  ";
    assert_eq!(
        register_raw(&app, "spaced", "spaced@example.org", spaced)
            .await
            .status(),
        201
    );
    assert_eq!(app.login_as("spaced", spaced).await.status(), 200);
    assert_eq!(app.login_as("spaced", spaced.trim()).await.status(), 401);
}

#[actix_web::test]
async fn duplicates_are_refused_case_insensitively() {
    let app = spawn_app().await;
    app.register("Erin").await;
    let res = register_raw(&app, "eRIN", "other@example.org", PASSWORD).await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        field_messages(res, "username").await,
        vec!["is already taken"]
    );
    let res = register_raw(&app, "erin2", "ERIN@example.org", PASSWORD).await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        field_messages(res, "email").await,
        vec!["is already registered"]
    );
}

#[actix_web::test]
async fn admin_emails_grant_nothing_at_registration_and_role_cannot_be_self_assigned() {
    let app = app()
        .env("ADMIN_EMAILS", "boss@example.org")
        .env("SUPER_ADMIN_EMAIL", "chief@example.org")
        .spawn()
        .await;
    // An attacker registers the listed addresses first, in any letter case: ordinary accounts.
    for (name, email) in [("boss", "Boss@Example.org"), ("chief", "CHIEF@example.ORG")] {
        let res = register_raw(&app, name, email, PASSWORD).await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["role"], "team_member", "{email}");
        let tokens = app.login(name).await;
        let res = app.get_auth("/api/v1/admin/users", &tokens.access).await;
        assert_eq!(res.status(), 403, "{email} reaches no admin route");
    }
    // Each attempt is on record, flagged high severity, for an operator to look at.
    let mut conn = app.db.as_ref().unwrap().connect();
    let flagged = rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(rampart::audit::Action::AdminEmailUnverified),
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap()
    .items;
    assert_eq!(flagged.len(), 2);
    assert!(flagged.iter().all(|e| e.metadata["severity"] == "high"));
    // A role in the registration body is refused, not silently applied.
    let res = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"username": "sneaky", "email": "s@example.org", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let tokens = app.user("plain").await;
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&tokens.access)
        .json(&json!({"role": "admin", "active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let me: Value = app
        .get_auth("/api/v1/me", &tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "team_member");
}

#[actix_web::test]
async fn login_by_username_or_email_and_me() {
    let app = spawn_app().await;
    app.register("Frank").await;
    for login in ["Frank", "frank", "frank@example.org", "FRANK@EXAMPLE.ORG"] {
        let res = app.login_as(login, PASSWORD).await;
        assert_eq!(res.status(), 200, "{login}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert!(body["refresh_token"].as_str().unwrap().len() >= 43);
        let me: Value = app
            .get_auth("/api/v1/me", body["access_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["username"], "Frank");
    }
    let tokens = app.login("Frank").await;
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&tokens.access)
        .json(&json!({"display_name": "Frank <b>F</b>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["display_name"], "Frank <b>F</b>");
}

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

#[actix_web::test]
async fn every_login_failure_looks_the_same() {
    let app = spawn_app().await;
    app.register("grace").await;
    app.register("heidi").await;
    app.sql("UPDATE users SET active = false WHERE username = 'heidi'");
    app.register("ivan").await;
    app.sql("UPDATE users SET locked_until = now() + interval '1 hour' WHERE username = 'ivan'");

    let mut seen = Vec::new();
    for (login, password) in [
        ("grace", "wrong password entirely"),
        ("nobody-here", PASSWORD),
        ("heidi", PASSWORD),
        ("ivan", PASSWORD),
    ] {
        let res = app.login_as(login, password).await;
        let status = res.status();
        let www = res.headers().get("www-authenticate").cloned();
        let body: Value = res.json().await.unwrap();
        seen.push((status, www, without_request_id(body)));
    }
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
    assert_eq!(seen[0].0, 401);

    // The reason is in the audit log, not in the response.
    let mut conn = app.db.as_ref().unwrap().connect();
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Reason {
        #[diesel(sql_type = diesel::sql_types::Text)]
        reason: String,
    }
    let reasons: Vec<String> = diesel::sql_query(
        "SELECT metadata->>'reason' AS reason FROM audit_logs WHERE action = 'auth.login.failed' ORDER BY id",
    )
    .load::<Reason>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|r| r.reason)
    .collect();
    assert_eq!(
        reasons,
        vec!["bad_password", "unknown_user", "disabled", "locked"]
    );
}

#[actix_web::test]
async fn lockout_schedule_doubles_and_resets() {
    let app = spawn_app().await;
    app.register("judy").await;
    let wrong = "not the right password";
    for _ in 0..4 {
        assert_eq!(app.login_as("judy", wrong).await.status(), 401);
    }
    // Four failures: still open.
    assert_eq!(app.login_as("judy", PASSWORD).await.status(), 200);
    // The success reset the counter: five more failures lock for one minute.
    for _ in 0..5 {
        assert_eq!(app.login_as("judy", wrong).await.status(), 401);
    }
    assert_eq!(app.login_as("judy", PASSWORD).await.status(), 401, "locked");
    app.clock.advance(Duration::from_secs(61));
    // Lock over; a sixth failure locks for two minutes.
    assert_eq!(app.login_as("judy", wrong).await.status(), 401);
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(
        app.login_as("judy", PASSWORD).await.status(),
        401,
        "still locked (2 min)"
    );
    app.clock.advance(Duration::from_secs(60));
    // Seventh failure: four minutes.
    assert_eq!(app.login_as("judy", wrong).await.status(), 401);
    app.clock.advance(Duration::from_secs(239));
    assert_eq!(
        app.login_as("judy", PASSWORD).await.status(),
        401,
        "still locked (4 min)"
    );
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(
        app.login_as("judy", PASSWORD).await.status(),
        200,
        "lock expired"
    );
    // Reset on success.
    assert_eq!(app.login_as("judy", wrong).await.status(), 401);
    assert_eq!(app.login_as("judy", PASSWORD).await.status(), 200);
}

#[test]
fn lockout_durations_are_capped() {
    use rampart::accounts::lockout_duration;
    let base = Duration::from_secs(60);
    let max = Duration::from_secs(900);
    let minutes: Vec<_> = (4..12)
        .map(|n| lockout_duration(n, 5, base, max).map(|d| d.as_secs() / 60))
        .collect();
    assert_eq!(
        minutes,
        vec![
            None,
            Some(1),
            Some(2),
            Some(4),
            Some(8),
            Some(15),
            Some(15),
            Some(15)
        ]
    );
    assert_eq!(lockout_duration(i32::MAX, 5, base, max), Some(max));
}

#[actix_web::test]
async fn bcrypt_hash_is_upgraded_to_argon2id_on_login() {
    let app = spawn_app().await;
    app.register("kim").await;
    let bcrypt_hash = bcrypt::hash_with_salt(PASSWORD, 10, [7u8; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB);
    app.sql(&format!(
        "UPDATE users SET password_hash = '{bcrypt_hash}' WHERE username = 'kim'"
    ));
    assert_eq!(
        app.login_as("kim", "wrong password here").await.status(),
        401
    );
    assert_eq!(
        current_hash(&app, "kim"),
        bcrypt_hash,
        "a failed login changes nothing"
    );
    assert_eq!(app.login_as("kim", PASSWORD).await.status(), 200);
    let upgraded = current_hash(&app, "kim");
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    assert_eq!(app.login_as("kim", PASSWORD).await.status(), 200);
}

#[actix_web::test]
async fn weaker_argon2_parameters_are_upgraded() {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let app = spawn_app().await; // configured: m=8192, t=1
    app.register("lena").await;
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password_with_salt(PASSWORD.as_bytes(), b"fixed-salt-16byt")
    .unwrap()
    .to_string();
    app.sql(&format!(
        "UPDATE users SET password_hash = '{weak}' WHERE username = 'lena'"
    ));
    assert_eq!(app.login_as("lena", PASSWORD).await.status(), 200);
    let upgraded = current_hash(&app, "lena");
    assert!(
        upgraded.starts_with("$argon2id$") && upgraded.contains("m=8192"),
        "{upgraded}"
    );
    // argon2i is upgraded to argon2id too.
    let argon2i = Argon2::new(
        Algorithm::Argon2i,
        Version::V0x13,
        Params::new(8192, 1, 1, None).unwrap(),
    )
    .hash_password_with_salt(PASSWORD.as_bytes(), b"fixed-salt-16byt")
    .unwrap()
    .to_string();
    app.sql(&format!(
        "UPDATE users SET password_hash = '{argon2i}' WHERE username = 'lena'"
    ));
    assert_eq!(app.login_as("lena", PASSWORD).await.status(), 200);
    assert!(current_hash(&app, "lena").starts_with("$argon2id$"));
}

fn current_hash(app: &TestApp, username: &str) -> String {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Hash {
        #[diesel(sql_type = diesel::sql_types::Text)]
        password_hash: String,
    }
    let mut conn = app.db.as_ref().unwrap().connect();
    diesel::sql_query(format!(
        "SELECT password_hash FROM users WHERE username = '{username}'"
    ))
    .get_result::<Hash>(&mut conn)
    .unwrap()
    .password_hash
}

#[actix_web::test]
async fn password_change_requires_current_and_signs_out_other_sessions() {
    let app = spawn_app().await;
    let first = app.user("mallory").await;
    let second = app.login("mallory").await;
    let change = |token: String, current: &'static str, new: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/v1/me/password"))
                .bearer_auth(token)
                .json(&json!({"current_password": current, "new_password": new}))
                .send()
                .await
                .unwrap()
        }
    };
    let res = change(
        first.access.clone(),
        "not my password",
        "a brand new passphrase 77",
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = change(first.access.clone(), PASSWORD, "short").await;
    assert_eq!(res.status(), 422);
    let res = change(first.access.clone(), PASSWORD, "a brand new passphrase 77").await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_auth("/api/v1/me", &first.access).await.status(),
        200,
        "this session stays"
    );
    assert_eq!(
        app.get_auth("/api/v1/me", &second.access).await.status(),
        401,
        "others are revoked"
    );
    assert_eq!(app.login_as("mallory", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login_as("mallory", "a brand new passphrase 77")
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn hashing_pool_sheds_load_with_503() {
    let app = app()
        .env("PASSWORD_HASH_CONCURRENCY", "1")
        .env("PASSWORD_HASH_QUEUE", "0")
        .env("ARGON2_MEMORY_KIB", "19456")
        .env("ARGON2_ITERATIONS", "2")
        .spawn()
        .await;
    let requests: Vec<_> = (0..12)
        .map(|_| app.login_as("nobody", "whatever password"))
        .collect();
    let responses = futures_util::future::join_all(requests).await;
    let mut busy = 0;
    for res in responses {
        match res.status().as_u16() {
            401 => {}
            503 => {
                busy += 1;
                assert!(res.headers().get("retry-after").is_some());
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "a full queue must shed load");
}

#[actix_web::test]
async fn health_answers_while_32_logins_hash() {
    let app = app()
        .env("ARGON2_MEMORY_KIB", "19456")
        .env("ARGON2_ITERATIONS", "2")
        // 32 logins of one account at once: with the default threshold, all but five would be
        // refused before hashing (the lockout reserves attempts), and this test is about hashing.
        .env("LOCKOUT_THRESHOLD", "100")
        .spawn()
        .await;
    app.register("olivia").await;
    let logins: Vec<_> = (0..32).map(|_| app.login_as("olivia", PASSWORD)).collect();
    let health = async {
        let mut latencies = Vec::new();
        for _ in 0..40 {
            let started = std::time::Instant::now();
            assert_eq!(app.get("/health").await.status(), 200);
            latencies.push(started.elapsed());
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        latencies
    };
    let (results, mut latencies) =
        futures_util::future::join(futures_util::future::join_all(logins), health).await;
    for res in results {
        assert!(
            matches!(res.status().as_u16(), 200 | 503),
            "{}",
            res.status()
        );
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    eprintln!(
        "health p99 during 32 concurrent logins: {p99:?} (max {:?})",
        latencies.last().unwrap()
    );
}

#[actix_web::test]
async fn wrong_current_passwords_count_towards_lockout() {
    let app = spawn_app().await;
    let t = app.user("nadia").await;
    let attempt = |current: &'static str| {
        let app = &app;
        let token = t.access.clone();
        async move {
            app.client
                .post(app.url("/api/v1/me/password"))
                .bearer_auth(token)
                .json(&json!({"current_password": current, "new_password": "another fine passphrase 31"}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("a wrong guess here").await.status(), 422);
    }
    // A stolen token is no password oracle: the account is now locked for logins and for this.
    let res = attempt(PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    assert_eq!(app.login_as("nadia", PASSWORD).await.status(), 401);
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(attempt(PASSWORD).await.status(), 204);
}

/// Reasons of the `auth.login.failed` rows naming `username`'s account, as audited.
fn failure_reasons(app: &TestApp, username: &str) -> Vec<String> {
    let id = app.user_id(username);
    let mut conn = app.db.as_ref().unwrap().connect();
    rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(rampart::audit::Action::AuthLoginFailed),
            target: Some(("user".into(), id)),
            limit: 500,
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .iter()
    .map(|e| {
        e.metadata["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
    .collect()
}

/// (failed_logins, locked) straight from the database.
fn lock_state(app: &TestApp, username: &str) -> (i32, bool) {
    use diesel::prelude::*;
    use rampart::db::schema::users;
    let mut conn = app.db.as_ref().unwrap().connect();
    let (failures, until) = users::table
        .filter(users::username.eq(username))
        .select((users::failed_logins, users::locked_until))
        .first::<(i32, Option<time::OffsetDateTime>)>(&mut conn)
        .unwrap();
    (failures, until.is_some_and(|u| u > app.clock.now()))
}

#[actix_web::test]
async fn fifty_parallel_wrong_logins_reach_the_hash_at_most_threshold_times() {
    let app = spawn_app().await;
    app.register("burst").await;
    // By username and by email, all at once.
    let attempts = (0..50).map(|i| {
        let login = if i % 2 == 0 {
            "burst"
        } else {
            "BURST@example.org"
        };
        app.login_as(login, "a wrong guess, but a long one")
    });
    let results = futures_util::future::join_all(attempts).await;
    assert!(results.iter().all(|r| r.status() == 401));
    let reasons = failure_reasons(&app, "burst");
    assert_eq!(reasons.len(), 50);
    // Only five were checked against the real hash; every other one found the account locked.
    assert_eq!(reasons.iter().filter(|r| *r == "bad_password").count(), 5);
    assert_eq!(reasons.iter().filter(|r| *r == "locked").count(), 45);
    assert_eq!(lock_state(&app, "burst"), (5, true));
    // The right password now fails too, until the lock ends.
    assert_eq!(app.login_as("burst", PASSWORD).await.status(), 401);
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.login_as("burst", PASSWORD).await.status(), 200);
    assert_eq!(lock_state(&app, "burst"), (0, false));
}

#[actix_web::test]
async fn the_right_password_in_a_burst_of_wrong_ones_is_checked_within_the_budget() {
    let app = spawn_app().await;
    app.register("needle").await;
    let wrong = (0..29).map(|_| app.login_as("needle", "a wrong guess, but a long one"));
    let (wrong, right) = futures_util::future::join(
        futures_util::future::join_all(wrong),
        app.login_as("needle", PASSWORD),
    )
    .await;
    assert!(wrong.iter().all(|r| r.status() == 401));
    let reasons = failure_reasons(&app, "needle");
    let verified_wrong = reasons.iter().filter(|r| *r == "bad_password").count();
    if right.status() == 200 {
        // It reserved one of the first five attempts, and its success reset the count: at most
        // five more wrong guesses may follow it.
        assert!(
            verified_wrong <= 4 + 5,
            "{verified_wrong} wrong passwords verified"
        );
    } else {
        assert_eq!(right.status(), 401);
        assert_eq!(verified_wrong, 5, "exactly the threshold, then locked");
        assert_eq!(lock_state(&app, "needle"), (5, true));
    }
}

#[actix_web::test]
async fn fifty_parallel_wrong_current_passwords_reach_the_hash_at_most_threshold_times() {
    let app = spawn_app().await;
    let stolen = app.user("victim").await;
    let attempts = (0..50).map(|_| {
        app.client
            .post(app.url("/api/v1/me/password"))
            .bearer_auth(&stolen.access)
            .json(&json!({
                "current_password": "a wrong guess, but a long one",
                "new_password": "another fine passphrase 31"
            }))
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 422).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 45);
    assert_eq!(
        failure_reasons(&app, "victim")
            .iter()
            .filter(|r| *r == "bad_password")
            .count(),
        5
    );
    assert_eq!(lock_state(&app, "victim"), (5, true));
    assert_eq!(app.login_as("victim", PASSWORD).await.status(), 401);
}

#[actix_web::test]
async fn racing_password_changes_with_the_same_current_password_let_exactly_one_win() {
    for racers in [2usize, 20] {
        let app = app().env("LOCKOUT_THRESHOLD", "100").spawn().await;
        let t = app.user("racer").await;
        let news: Vec<String> = (0..racers)
            .map(|i| format!("brand new passphrase number {i} zq"))
            .collect();
        let changes = news.iter().map(|new| {
            app.client
                .post(app.url("/api/v1/me/password"))
                .bearer_auth(&t.access)
                .json(&json!({"current_password": PASSWORD, "new_password": new}))
                .send()
        });
        let statuses: Vec<u16> = futures_util::future::join_all(changes)
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 204).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| matches!(s, 204 | 409 | 422)),
            "{statuses:?}"
        );
        // Exactly the winner's password works.
        let winner = statuses.iter().position(|s| *s == 204).unwrap();
        for (i, new) in news.iter().enumerate() {
            let expected = if i == winner { 200 } else { 401 };
            assert_eq!(app.login_as("racer", new).await.status(), expected);
        }
        assert_eq!(app.login_as("racer", PASSWORD).await.status(), 401);
    }
}

#[actix_web::test]
async fn patch_me_leaves_absent_fields_alone_and_clears_only_on_null() {
    let app = spawn_app().await;
    let t = app.user("patchy").await;
    let patch = |body: Value| {
        app.client
            .patch(app.url("/api/v1/me"))
            .bearer_auth(&t.access)
            .json(&body)
            .send()
    };
    let res = patch(json!({"display_name": "Patchy"})).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = patch(json!({})).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["display_name"], "Patchy");
    let me: Value = app
        .get_auth("/api/v1/me", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["display_name"], "Patchy");
    let res = patch(json!({"display_name": null})).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["display_name"],
        Value::Null
    );
}

#[actix_web::test]
async fn display_names_refuse_invisible_format_characters() {
    let app = spawn_app().await;
    let t = app.user("bidi").await;
    for name in [
        "admin\u{202E}txt.exe",
        "zero\u{200B}width",
        "iso\u{2066}late\u{2069}",
        "joiner\u{200D}",
        "\u{FEFF}bom",
        "nul\u{0}byte",
        "bell\u{7}",
    ] {
        let res = app
            .client
            .patch(app.url("/api/v1/me"))
            .bearer_auth(&t.access)
            .json(&json!({"display_name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{name:?}");
    }
    // Ordinary non-Latin text and emoji are fine.
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&t.access)
        .json(&json!({"display_name": "Zoë 山田 🚀"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
