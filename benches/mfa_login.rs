//! Issue 18's benchmark: login throughput with a second factor versus without, in one run,
//! against one instance with the production argon2id parameters (m=19456 KiB, t=2) — the second
//! step (its own HTTP request: the challenge, the lockout reservation, the user's data key, the
//! TOTP check, the session) must cost < 5 % beyond the password hash.
//!
//! Every login uses a user of its own (seeded straight into the database: the same password hash,
//! each with a data key and, for the MFA group, a confirmed TOTP factor under it), so the replay
//! guard — one accepted code per user per 30-second step — never refuses a measured login.
//! Rounds alternate password-only and password + TOTP; a "login" is complete when the client
//! holds an access token.
//!
//! `cargo bench --bench mfa_login` — BENCH_ROUNDS [3], BENCH_SECONDS [10], BENCH_CONNECTIONS [4],
//! BENCH_DATABASE_URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use serde_json::{Value, json};

use common::{Round, env_or};

const PASSWORD: &str = "correct horse battery staple 42";
/// The TOTP secret every seeded MFA user shares (each has their own row and replay guard).
const SECRET: [u8; 20] = *b"bench-totp-secret-20";

/// Users `{prefix}{0..n}`, all with the password hash of `template`, each with a data key; with
/// `mfa`, each also with a confirmed TOTP factor encrypted under that key.
fn seed(
    conn: &mut diesel::PgConnection,
    ring: &rampart::crypto::keyring::KeyRing,
    prefix: &str,
    n: usize,
    mfa: bool,
) {
    let mut sql = String::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut users = Vec::new();
        let mut keys = Vec::new();
        let mut factors = Vec::new();
        for i in chunk {
            let id = uuid::Uuid::now_v7();
            let key_id = uuid::Uuid::now_v7();
            let data_key = rampart::crypto::keyring::DataKey::generate().unwrap();
            let wrapped = ring.wrap(id, &data_key).unwrap();
            users.push(format!(
                "('{id}', '{prefix}{i}', '{prefix}{i}@example.org', \
                 (SELECT password_hash FROM users WHERE username = 'template'), now(), now())"
            ));
            keys.push(format!(
                "('{key_id}', '{id}', '{}', '{}', now())",
                wrapped.master_key_id, wrapped.token
            ));
            if mfa {
                factors.push(format!(
                    "('{id}', '{key_id}', '{}', now(), now(), -1)",
                    data_key.encrypt(&SECRET)
                ));
            }
        }
        sql.push_str(&format!(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES {};\n\
             INSERT INTO data_keys (id, user_id, master_key_id, wrapped, created_at) VALUES {};\n",
            users.join(","),
            keys.join(",")
        ));
        if mfa {
            sql.push_str(&format!(
                "INSERT INTO mfa_totp (user_id, data_key_id, secret, created_at, confirmed_at, last_step) VALUES {};\n",
                factors.join(",")
            ));
        }
    }
    conn.batch_execute(&sql).unwrap();
}

fn code_now() -> String {
    let totp = rampart::mfa::model::totp(&SECRET, "rampart", "bench").unwrap();
    totp.generate(u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap())
        .to_string()
}

/// One complete login of user `{prefix}{n}`: password, then (with `mfa`) the code. Ok when the
/// client holds an access token.
async fn login(client: &reqwest::Client, base: &str, user: String, mfa: bool) -> bool {
    let Ok(res) = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "login": user, "password": PASSWORD }))
        .send()
        .await
    else {
        return false;
    };
    let Ok(body) = res.json::<Value>().await else {
        return false;
    };
    if !mfa {
        return body["access_token"].is_string();
    }
    let Some(token) = body["mfa_token"].as_str() else {
        return false;
    };
    let Ok(res) = client
        .post(format!("{base}/api/v1/auth/mfa"))
        .json(&json!({ "mfa_token": token, "code": code_now() }))
        .send()
        .await
    else {
        return false;
    };
    res.json::<Value>()
        .await
        .is_ok_and(|b| b["access_token"].is_string())
}

async fn round(base: &str, prefix: &'static str, mfa: bool, next: Arc<AtomicU64>) -> Round {
    let seconds: u64 = env_or("BENCH_SECONDS", "10").parse().unwrap();
    let connections: usize = env_or("BENCH_CONNECTIONS", "4").parse().unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, next, errors, base) = (
                client.clone(),
                next.clone(),
                errors.clone(),
                base.to_string(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    if login(&client, &base, format!("{prefix}{n}"), mfa).await {
                        latencies.push(t.elapsed().as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    common::summarize(all, started.elapsed(), errors.load(Ordering::Relaxed))
}

fn main() {
    if !common::benchmarking() {
        return;
    }
    let rounds: usize = env_or("BENCH_ROUNDS", "3").parse().unwrap();
    let per_group: usize = env_or("BENCH_USERS", "4000").parse().unwrap();
    let (mut admin, name, url) = common::fresh_database("rampart_bench_mfa");
    // Production argon2id parameters (the defaults); lockout and limits as shipped except the
    // per-IP limiter, which a load generator on one address would trip.
    let settings = common::settings(&url, &[]);
    assert_eq!(
        settings.auth.argon2_memory_kib, 19_456,
        "production argon2id"
    );
    let ring = rampart::state::key_ring(&settings).unwrap();
    let port = common::start(settings, rampart::app::no_extra_routes());
    let base = format!("http://127.0.0.1:{port}");
    let runtime = common::load_runtime();
    runtime.block_on(async {
        let res = reqwest::Client::new()
            .post(format!("{base}/api/v1/auth/register"))
            .json(
                &json!({ "username": "template", "email": "t@example.org", "password": PASSWORD }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    });
    let mut conn = <diesel::PgConnection as diesel::Connection>::establish(&url).unwrap();
    let seeding = Instant::now();
    seed(&mut conn, &ring, "pwd", per_group, false);
    seed(&mut conn, &ring, "mfa", per_group, true);
    println!(
        "seeded {per_group} password-only and {per_group} TOTP users in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let (pwd_next, mfa_next) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut pwd_rounds = Vec::new();
    let mut mfa_rounds = Vec::new();
    runtime.block_on(async {
        // Warm-up (connections, JIT-free but caches and the pool).
        round(&base, "pwd", false, pwd_next.clone()).await;
        round(&base, "mfa", true, mfa_next.clone()).await;
        for _ in 0..rounds {
            pwd_rounds.push(round(&base, "pwd", false, pwd_next.clone()).await);
            mfa_rounds.push(round(&base, "mfa", true, mfa_next.clone()).await);
        }
    });
    assert!(
        pwd_next.load(Ordering::Relaxed) < per_group as u64
            && mfa_next.load(Ordering::Relaxed) < per_group as u64,
        "ran out of seeded users: raise BENCH_USERS"
    );
    println!("\nlogins per second (a login = the client holds an access token)\n");
    println!("{}", common::TABLE_HEAD);
    let (line, pwd) = common::row("password only (POST /auth/login)", &pwd_rounds);
    println!("{line}");
    let (line, mfa) = common::row("password + TOTP (login, then /auth/mfa)", &mfa_rounds);
    println!("{line}");
    println!(
        "\nMFA / password-only throughput: {:.3}× (the second step costs {:.1} % of a login)",
        mfa / pwd,
        (pwd / mfa - 1.0) * 100.0
    );
    common::drop_database(&mut admin, &name);
}
