//! Per-IP rate limits from the client's side: exact budgets, per-route limits, exemptions, the
//! `RateLimit-*` headers, X-Forwarded-For handling, the audit trail, and budgets shared through
//! Redis by two instances.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TestApp, app, app_sharing_database, redis_url};

/// Limits are per process; each test spawns its own app, so budgets never leak between tests.
fn limited(per_minute: &str, per_hour: &str) -> crate::support::AppBuilder {
    app()
        .env("RATE_LIMIT_PER_MINUTE", per_minute)
        .env("RATE_LIMIT_PER_HOUR", per_hour)
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.get(path).await
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn number(res: &reqwest::Response, name: &str) -> u64 {
    header(res, name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .parse()
        .unwrap()
}

async fn assert_rate_limited(res: reqwest::Response, limit: u64) -> Value {
    assert_eq!(res.status(), 429);
    assert_eq!(number(&res, "ratelimit-limit"), limit);
    assert_eq!(number(&res, "ratelimit-remaining"), 0);
    assert!(number(&res, "retry-after") >= 1);
    assert!(number(&res, "ratelimit-reset") >= 1);
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "https://rampart.dev/problems/rate-limited");
    assert_eq!(body["status"], 429);
    assert!(body["request_id"].is_string());
    body
}

/// Sends `n` requests as fast as possible; returns their statuses and how long they took.
async fn burst(app: &TestApp, path: &str, n: usize) -> (Vec<u16>, Duration) {
    let start = Instant::now();
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        statuses.push(get(app, path).await.status().as_u16());
    }
    (statuses, start.elapsed())
}

#[actix_web::test]
async fn the_61st_request_in_a_minute_is_429_with_retry_after_and_ratelimit_headers() {
    let app = limited("60", "1000").spawn().await;
    let first = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(first.status(), 200);
    assert_eq!(number(&first, "ratelimit-limit"), 60);
    assert_eq!(number(&first, "ratelimit-remaining"), 59);
    assert!((1..=60).contains(&number(&first, "ratelimit-reset")));
    assert_eq!(
        header(&first, "ratelimit-policy").as_deref(),
        Some("60;w=60, 1000;w=3600")
    );
    let (statuses, elapsed) = burst(&app, "/api/v1/openapi.json", 59).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The minute budget refills one request a second (actix-governor's GCRA): a burst that took
    // longer than a second may have earned as many extra requests as whole seconds passed.
    let earned = elapsed.as_secs() as usize;
    let (after, _) = burst(&app, "/api/v1/openapi.json", earned + 1).await;
    assert_eq!(after.last(), Some(&429), "{after:?} after {elapsed:?}");
    let res = get(&app, "/api/v1/openapi.json").await;
    let body = assert_rate_limited(res, 60).await;
    assert!(
        body["detail"].as_str().unwrap().contains("retry after"),
        "{body}"
    );
    // Refused requests spend nothing of anybody else's budget, and health checks still answer.
    assert_eq!(get(&app, "/health").await.status(), 200);
}

#[actix_web::test]
async fn the_1001st_request_in_an_hour_is_429_however_spaced() {
    // The minute limit is lifted here so that only the hourly window is under test; the clock
    // spreads 1000 requests over more than 59 minutes (the test's own seconds come on top).
    let app = limited("1000000", "1000").spawn().await;
    for i in 0..1000 {
        let res = get(&app, "/api/v1/openapi.json").await;
        assert_eq!(res.status(), 200, "request {}", i + 1);
        if i == 0 {
            assert_eq!(number(&res, "ratelimit-limit"), 1000);
            assert_eq!(number(&res, "ratelimit-remaining"), 999);
            assert_eq!(number(&res, "ratelimit-reset"), 3600);
        }
        if i < 999 {
            app.clock.advance(Duration::from_millis(3500));
        }
    }
    // 999 × 3.5 s = 58 min 16.5 s after the first request: still the same hour, with 103 s to
    // spare for the test's own (real) seconds, however slow the machine.
    let res = get(&app, "/api/v1/openapi.json").await;
    assert_rate_limited(res, 1000).await;
    app.clock.advance(Duration::from_secs(110));
    let res = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(res.status(), 200, "a new hour, a new budget");
    assert_eq!(number(&res, "ratelimit-remaining"), 999);
}

#[actix_web::test]
async fn login_register_refresh_and_password_change_have_their_own_limits() {
    let app = app()
        .env("RATE_LIMIT_LOGIN_PER_MINUTE", "10")
        .env("RATE_LIMIT_REGISTER_PER_MINUTE", "5")
        .env("RATE_LIMIT_REFRESH_PER_MINUTE", "30")
        .env("RATE_LIMIT_PASSWORD_PER_MINUTE", "5")
        // Lockout would refuse the password changes below with its own 429.
        .env("LOCKOUT_THRESHOLD", "1000")
        .spawn()
        .await;
    // Register: the 6th attempt in a minute is refused, whatever the outcome of the first five.
    for i in 0..5 {
        let res = app
            .post_json(
                "/api/v1/auth/register",
                &serde_json::json!({ "username": format!("u{i}"), "email": "bad", "password": "x" }),
            )
            .await;
        assert_eq!(res.status(), 422);
        assert_eq!(number(&res, "ratelimit-limit"), 5);
        assert_eq!(number(&res, "ratelimit-remaining"), 4 - i);
    }
    let res = app
        .post_json(
            "/api/v1/auth/register",
            &serde_json::json!({ "username": "ok_user", "email": "ok@example.org", "password": crate::support::PASSWORD }),
        )
        .await;
    assert_rate_limited(res, 5).await;

    // A user made directly (register is used up for this IP).
    let tokens = {
        let other = app_sharing_database(&app).spawn().await;
        other.user("alice").await
    };
    // Login: 10 attempts, then 429 — even with the right password.
    for _ in 0..10 {
        let res = app.login_as("alice", "wrong password 1234").await;
        assert_eq!(res.status(), 401);
    }
    let res = app.login_as("alice", crate::support::PASSWORD).await;
    assert_rate_limited(res, 10).await;

    // Refresh: 30 a minute.
    for _ in 0..30 {
        let res = app
            .post_json(
                "/api/v1/auth/refresh",
                &serde_json::json!({ "refresh_token": "nope" }),
            )
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = app
        .post_json(
            "/api/v1/auth/refresh",
            &serde_json::json!({ "refresh_token": tokens.refresh }),
        )
        .await;
    assert_rate_limited(res, 30).await;

    // Password change: 5 a minute.
    for _ in 0..5 {
        let res = app
            .client
            .post(app.url("/api/v1/me/password"))
            .bearer_auth(&tokens.access)
            .json(&serde_json::json!({ "current_password": "wrong wrong wrong", "new_password": "another long passphrase 99" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
    }
    let res = app
        .client
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(&tokens.access)
        .json(&serde_json::json!({ "current_password": crate::support::PASSWORD, "new_password": "another long passphrase 99" }))
        .send()
        .await
        .unwrap();
    assert_rate_limited(res, 5).await;

    // The per-route limits leave the rest of the API alone.
    let res = app.get_auth("/api/v1/me", &tokens.access).await;
    assert_eq!(res.status(), 200);
    assert_eq!(number(&res, "ratelimit-limit"), 1_000_000);
}

#[actix_web::test]
async fn health_and_ready_are_exempt_and_spend_nothing() {
    let app = limited("3", "1000").spawn().await;
    for _ in 0..20 {
        let res = get(&app, "/health").await;
        assert_eq!(res.status(), 200);
        assert!(header(&res, "ratelimit-limit").is_none());
        let res = get(&app, "/ready").await;
        assert_eq!(res.status(), 200);
        assert!(header(&res, "ratelimit-remaining").is_none());
    }
    let res = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(number(&res, "ratelimit-remaining"), 2);
}

#[actix_web::test]
async fn x_forwarded_for_does_not_choose_the_bucket_without_a_trusted_proxy() {
    let app = limited("3", "1000").spawn().await;
    for i in 0..3 {
        let res = app
            .client
            .get(app.url("/api/v1/openapi.json"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .header("x-forwarded-for", "203.0.113.77")
        .header("x-real-ip", "203.0.113.78")
        .send()
        .await
        .unwrap();
    assert_rate_limited(res, 3).await;
}

#[actix_web::test]
async fn behind_a_trusted_proxy_only_the_rightmost_untrusted_entry_counts() {
    let app = limited("3", "1000")
        .env("TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8")
        .spawn()
        .await;
    let send = |xff: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/api/v1/openapi.json"))
                .header("x-forwarded-for", xff)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(send("6.6.6.6, 198.51.100.7, 10.0.0.5").await.status(), 200);
    }
    // The client changes what it controls (the left part): same bucket, refused.
    let res = send("1.2.3.4, 198.51.100.7").await;
    assert_rate_limited(res, 3).await;
    // Another client behind the same proxy has a budget of its own.
    let res = send("198.51.100.8").await;
    assert_eq!(res.status(), 200);
    assert_eq!(number(&res, "ratelimit-remaining"), 2);
    // The refusal is audited with the client's address, not the proxy's.
    let ips = wait_for_refusals(&app, 1).await;
    assert_eq!(ips, vec!["198.51.100.7".to_string()]);
}

/// Polls the audit log until `rate_limit.exceeded` rows appear (the reporter writes them in the
/// background); returns their IPs.
async fn wait_for_refusals(app: &TestApp, rows: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = refusal_rows(app);
        if found.len() >= rows || Instant::now() > deadline {
            return found.into_iter().map(|(ip, _, _)| ip).collect();
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (ip, policy, count) of every `rate_limit.exceeded` row.
fn refusal_rows(app: &TestApp) -> Vec<(String, String, i64)> {
    let mut conn = app.db.as_ref().unwrap().connect();
    rampart::audit::list(
        &mut conn,
        &rampart::audit::AuditQuery {
            action: Some(rampart::audit::Action::RateLimitExceeded),
            ..Default::default()
        },
    )
    .unwrap()
    .items
    .into_iter()
    .map(|e| {
        (
            e.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            e.metadata["policy"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            e.metadata["count"].as_i64().unwrap_or(0),
        )
    })
    .collect()
}

#[actix_web::test]
async fn refusals_are_audited_once_per_ip_policy_and_minute_with_a_count() {
    let app = limited("2", "1000")
        .env("RATE_LIMIT_LOGIN_PER_MINUTE", "1")
        .spawn()
        .await;
    for _ in 0..12 {
        get(&app, "/api/v1/openapi.json").await;
    }
    let res = app.login_as("nobody", "whatever whatever").await;
    assert_eq!(res.status(), 429, "the global budget is spent");
    wait_for_refusals(&app, 1).await;
    // The reporter coalesces in the background: wait until all 11 refusals are counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = refusal_rows(&app);
        let total: i64 = rows.iter().map(|(_, _, n)| n).sum();
        if total >= 11 || Instant::now() > deadline {
            break rows;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        rows,
        vec![("127.0.0.1".to_string(), "global".to_string(), 11)],
        "one row for the minute, counting every refusal"
    );
    let mut conn = app.db.as_ref().unwrap().connect();
    let entry = rampart::audit::list(&mut conn, &Default::default())
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.action == "rate_limit.exceeded")
        .unwrap();
    assert_eq!(entry.outcome, "denied");
    assert_eq!(entry.metadata["limit"], 2);
    assert_eq!(entry.metadata["window_seconds"], 60);
    assert_eq!(entry.metadata["path"], "/api/v1/openapi.json");
    assert_eq!(entry.metadata["aggregate"]["scope"], "global");
    // The refused request's server-generated id is kept, whatever the client sent as its own.
    let server_id = entry
        .server_request_id
        .as_deref()
        .expect("a server request id");
    assert!(uuid::Uuid::parse_str(server_id).is_ok(), "{server_id}");
}

#[actix_web::test]
async fn limits_can_be_switched_off() {
    let app = limited("1", "1")
        .env("RATE_LIMIT_ENABLED", "false")
        .spawn()
        .await;
    let (statuses, _) = burst(&app, "/api/v1/openapi.json", 30).await;
    assert!(statuses.iter().all(|s| *s == 200));
    let res = get(&app, "/api/v1/openapi.json").await;
    assert!(header(&res, "ratelimit-limit").is_none());
}

/// A key prefix of its own, so parallel tests never share Redis budgets.
fn redis_prefix() -> String {
    format!("rampart-test:{}:", uuid::Uuid::now_v7().simple())
}

#[actix_web::test]
async fn with_redis_two_instances_share_one_budget() {
    let prefix = redis_prefix();
    let a = limited("10", "1000")
        .env("REDIS_URL", &redis_url())
        .env("REDIS_KEY_PREFIX", &prefix)
        .spawn()
        .await;
    let b = app_sharing_database(&a).spawn().await;
    for _ in 0..5 {
        assert_eq!(get(&a, "/api/v1/openapi.json").await.status(), 200);
        assert_eq!(get(&b, "/api/v1/openapi.json").await.status(), 200);
    }
    // Each instance has spent only 5 of its local 10; the shared window has 10 of 10.
    let res = get(&a, "/api/v1/openapi.json").await;
    assert_rate_limited(res, 10).await;
    let res = get(&b, "/api/v1/openapi.json").await;
    assert_rate_limited(res, 10).await;
}

#[actix_web::test]
async fn with_redis_the_hourly_budget_and_route_limits_are_shared_too() {
    let prefix = redis_prefix();
    let a = limited("1000", "6")
        .env("RATE_LIMIT_LOGIN_PER_MINUTE", "4")
        .env("REDIS_URL", &redis_url())
        .env("REDIS_KEY_PREFIX", &prefix)
        .spawn()
        .await;
    let b = app_sharing_database(&a).spawn().await;
    for app in [&a, &b] {
        for _ in 0..2 {
            assert_eq!(app.login_as("nobody", "x").await.status(), 401);
        }
    }
    assert_rate_limited(a.login_as("nobody", "x").await, 4).await;
    // Redis counts every attempt, refused ones included (5 of the hour's 6 are spent): one more
    // request anywhere, then the hour is used up everywhere.
    assert_eq!(get(&b, "/api/v1/openapi.json").await.status(), 200);
    assert_rate_limited(get(&a, "/api/v1/openapi.json").await, 6).await;
    assert_rate_limited(get(&b, "/api/v1/openapi.json").await, 6).await;
}

#[actix_web::test]
async fn an_unreachable_redis_leaves_the_local_limits_in_force() {
    let app = limited("3", "1000")
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .spawn()
        .await;
    let started = Instant::now();
    let (statuses, _) = burst(&app, "/api/v1/openapi.json", 4).await;
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead Redis does not hold requests up"
    );
}

/// One raw POST (so that no client normalises the path): status, `RateLimit-Remaining`, and
/// `RateLimit-Limit`.
async fn raw_post(app: &TestApp, path: &str) -> (u16, Option<u64>, Option<u64>) {
    let (status, raw) = crate::support::raw_http(
        app.port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    )
    .await;
    let value = |name: &str| {
        raw.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .and_then(|v| v.parse().ok())
    };
    (
        status,
        value("ratelimit-remaining"),
        value("ratelimit-limit"),
    )
}

/// Spellings of `path` an attacker would try: percent-encoded letters (lower- and upper-case
/// hex, one or all), case, double and trailing slashes, dot segments, an encoded slash, a query.
fn spellings(path: &str) -> Vec<String> {
    let (dir, last) = path.rsplit_once('/').unwrap();
    let first = last.as_bytes()[0];
    let all: String = last.bytes().map(|b| format!("%{b:02X}")).collect();
    let second_segment = path[1..].find('/').unwrap() + 1;
    vec![
        path.to_string(),
        format!("{dir}/%{first:02x}{}", &last[1..]),
        format!("{dir}/%{first:02X}{}", &last[1..]),
        format!("{dir}/{all}"),
        format!("/%{:02x}{}", path.as_bytes()[1], &path[2..]),
        format!("{path}?next=/x"),
        path.to_uppercase(),
        format!("{dir}/{}", last.to_uppercase()),
        format!("/{path}"),
        format!("{}/{}", &path[..second_segment], &path[second_segment..]),
        format!("{path}/"),
        format!("{path}//"),
        format!("{dir}/./{last}"),
        format!("{dir}/x/../{last}"),
        format!("{}%2F{last}", dir),
        format!("{path}%00"),
        format!("{path};x=1"),
    ]
}

#[actix_web::test]
async fn every_spelling_of_a_limited_route_404s_or_spends_that_routes_budget() {
    let app = app()
        .env("RATE_LIMIT_LOGIN_PER_MINUTE", "200")
        .env("RATE_LIMIT_REGISTER_PER_MINUTE", "201")
        .env("RATE_LIMIT_REFRESH_PER_MINUTE", "202")
        .env("RATE_LIMIT_PASSWORD_PER_MINUTE", "203")
        .spawn()
        .await;
    // (route, its class's limit); the console's sign-in shares the login budget.
    let routes = [
        ("/api/v1/auth/login", 200),
        ("/admin/login", 200),
        ("/api/v1/auth/register", 201),
        ("/api/v1/auth/refresh", 202),
        ("/api/v1/me/password", 203),
    ];
    let mut spent = std::collections::BTreeMap::<u64, u64>::new();
    let mut routed = Vec::new();
    for (route, limit) in routes {
        for spelling in spellings(route) {
            let (status, remaining, header_limit) = raw_post(&app, &spelling).await;
            if status == 404 {
                continue;
            }
            let n = spent.entry(limit).or_default();
            *n += 1;
            assert_eq!(
                (header_limit, remaining),
                (Some(limit), Some(limit - *n)),
                "POST {spelling} answered {status} without spending the {route} budget"
            );
            routed.push(spelling);
        }
    }
    // The encoded spellings really reached the handlers (else the test proves nothing).
    for reached in [
        "/api/v1/auth/%6cogin",
        "/api/v1/auth/%72egister",
        "/api/v1/me/%70assword",
        "/admin/%6cogin",
        "/%61dmin/login",
        "/api/v1/auth/%72%65%66%72%65%73%68",
    ] {
        assert!(
            routed.iter().any(|r| r.eq_ignore_ascii_case(reached)),
            "{reached} not routed: {routed:?}"
        );
    }
    // Once the budget is spent, an encoded spelling is refused like the plain one.
    let small = crate::support::app()
        .env("RATE_LIMIT_LOGIN_PER_MINUTE", "2")
        .spawn()
        .await;
    assert_eq!(raw_post(&small, "/api/v1/auth/%6cogin").await.0, 422);
    // JSON is not a sign-in form: 415, but still spent from the login budget.
    assert_eq!(raw_post(&small, "/admin/%6Cogin").await.0, 415);
    assert_eq!(
        raw_post(&small, "/api/v1/auth/%6C%6F%67%69%6E").await.0,
        429
    );
    assert_eq!(raw_post(&small, "/api/v1/auth/login").await.0, 429);
}

#[actix_web::test]
async fn only_what_routes_to_health_or_ready_is_exempt() {
    let app = limited("4", "1000").spawn().await;
    for path in [
        "/health/../api/v1/auth/login",
        "/health/%2e%2e/api/v1/auth/login",
        "/health/",
        "/ready//",
    ] {
        let (status, remaining, _) = raw_post(&app, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(remaining.is_some(), "{path} spent no budget");
    }
    let (status, _, _) = raw_post(&app, "/health/../api/v1/auth/login").await;
    assert_eq!(
        status, 429,
        "a path that only starts like /health is limited"
    );
    // The probes themselves, however spelled, still answer.
    for path in ["/health", "/%68ealth", "/ready", "/%72eady"] {
        let res = get(&app, path).await;
        assert!(
            res.status() == 200 || res.status() == 503,
            "{path}: {}",
            res.status()
        );
        assert!(res.headers().get("ratelimit-remaining").is_none(), "{path}");
    }
}
