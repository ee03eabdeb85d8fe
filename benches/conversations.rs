//! Encrypted conversations (issue 15's benchmark section): what encryption at rest costs a chat,
//! what the HTTP API does end to end, and what attachments cost in time and memory.
//!
//! 1. **Encryption cost, like for like, same run.** rampart has no switch to turn encryption off,
//!    so the plaintext control is built at the storage layer: `BENCH_CONNECTIONS` client threads
//!    share one fresh database and one `db::Pool` (DATABASE_POOL_SIZE 10, the production default)
//!    and each loops "send one message, then read the newest page of 50" in a conversation of its
//!    own, with the service's transaction shape (one checkout and one transaction per send, one
//!    per page) and its store calls (`next_seq_and_key_for_member` — which also reads the
//!    author's stored data key —, `blocked_by_a_member`, `insert_message`;
//!    `messages_with_keys_for_member` — rows, author names and key wraps in one query —,
//!    `attachments_of`). Both variants run the same statements; the *encrypted* one adds exactly
//!    what the service adds on the CPU: `data_keys::for_writing_from` (unwrap) +
//!    `DataKey::encrypt` per send, `OpenKeys::from_wraps` + one decrypt per body per page. The
//!    *plaintext* control writes the text into `body_ciphertext` and skips
//!    both. Quotas are left out of both (unlimited quotas cost nothing; a limited one is one
//!    upsert, the same in both). Rounds alternate ABBA; bodies of 200 bytes and of 8 KiB, each
//!    pair of variant and size in conversations of its own, seeded with 50 messages first.
//!    Caveat: the control's repetitive text compresses in Postgres (an 8 KiB body is stored as
//!    ~185 bytes by pglz) while a Fernet token does not (~11 KB, out of line in TOAST), so at
//!    8 KiB the control is flattered by compression real chat text would not get in full.
//! 2. **End to end** (absolute numbers): rampart in-process, one conversation between two users,
//!    a closed loop of `POST …/messages` (JSON, 200 bytes) and `GET …/messages?limit=50`
//!    alternating, at 32 connections.
//! 3. **Attachments**: `rampart serve` as a separate process (the binary cargo builds for this
//!    bench, `CARGO_BIN_EXE_rampart`, in the bench profile) on a fresh database migrated by
//!    `rampart migrate`, so its memory can be read from `/proc/<pid>/status`: upload throughput of
//!    a valid 5 MiB PNG (8 concurrent clients), peak RSS while exactly 8 uploads are in flight
//!    (sampled every 10 ms) against the idle RSS after a warm-up, and download throughput of the
//!    same file (8 concurrent clients).
//! 4. **Crypto alone**: Fernet encrypt/decrypt per body size and per attachment chunk, and the
//!    data-key unwrap each send and page does, to explain the figures above.
//!
//! `cargo bench --bench conversations` — env: BENCH_DATABASE_URL (a superuser URL, default
//! postgres://postgres@127.0.0.1:5432/postgres), BENCH_ROUNDS [4], BENCH_SECONDS [8],
//! BENCH_CONNECTIONS [16] (storage clients; the HTTP section uses 32, attachments 8). About
//! 4 minutes with the defaults, after the release build. Prints markdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use diesel::prelude::*;
use rampart::conversations::store::{self, ConversationRow, MessageRow};
use rampart::crypto::keyring::{DataKey, KeyRing};
use rampart::users::data_keys;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use common::{MakeRequest, Round, env_or, median};

const PAGE: i64 = 50;
const MIB: f64 = 1024.0 * 1024.0;
/// The attachment: a PNG of exactly 5 MiB (ATTACHMENT_MAX_BYTES, the default limit).
const FILE_BYTES: usize = 5 * 1024 * 1024;
const UPLOADERS: usize = 8;
const PASSWORD: &str = "correct horse battery staple 42";

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// `n` bytes of chat-like ASCII text.
fn text(n: usize) -> String {
    "Sounds good, see you at the station at half past nine; I'll bring the tickets. "
        .chars()
        .cycle()
        .take(n)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 4. Crypto alone

struct CryptoCost {
    /// (label, encrypt µs, decrypt µs)
    sizes: Vec<(String, f64, f64)>,
    unwrap_us: f64,
}

fn time_per_op(mut f: impl FnMut()) -> f64 {
    // Calibrate to about 0.3 s.
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_millis(50) {
        f();
        n += 1;
    }
    let target = (n * 6).max(3);
    let t = Instant::now();
    for _ in 0..target {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / target as f64
}

fn crypto_cost(ring: &KeyRing) -> CryptoCost {
    let key = DataKey::generate().unwrap();
    let mut sizes = Vec::new();
    for (label, n) in [
        ("200 B body", 200usize),
        ("8 KiB body", 8192),
        ("256 KiB attachment chunk", 256 * 1024),
    ] {
        let plain = text(n).into_bytes();
        let token = key.encrypt(&plain);
        let enc = time_per_op(|| {
            std::hint::black_box(key.encrypt(std::hint::black_box(&plain)));
        });
        let dec = time_per_op(|| {
            std::hint::black_box(key.decrypt(std::hint::black_box(&token)).unwrap());
        });
        sizes.push((label.to_string(), enc, dec));
    }
    let owner = Uuid::now_v7();
    let wrapped = ring.wrap(owner, &key).unwrap();
    let unwrap_us = time_per_op(|| {
        std::hint::black_box(
            ring.unwrap(owner, &wrapped.master_key_id, &wrapped.token)
                .unwrap(),
        );
    });
    CryptoCost { sizes, unwrap_us }
}

// ---------------------------------------------------------------------------------------------
// 1. Storage layer: encrypted versus plaintext control

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Encrypted,
    Plaintext,
}

struct Client {
    user: Uuid,
    key_id: Uuid,
    /// Conversations by (variant, size index).
    conversations: [[Uuid; 2]; 2],
}

impl Client {
    fn conversation(&self, variant: Variant, size: usize) -> Uuid {
        self.conversations[usize::from(variant == Variant::Plaintext)][size]
    }
}

struct Storage {
    pool: rampart::db::Pool,
    ring: KeyRing,
    clients: Vec<Client>,
}

/// One send, as `conversations::send` does it (minus quotas), in one transaction: the same
/// statements for both variants (the conversation's lock also reads the author's stored key);
/// only the encrypted one unwraps the key and encrypts.
fn send(st: &Storage, c: &Client, variant: Variant, conversation: Uuid, body: &str) {
    let mut pooled = st.pool.get().unwrap();
    let at = OffsetDateTime::now_utc();
    pooled
        .conn
        .transaction::<_, anyhow::Error, _>(|conn| {
            let (seq, stored) = store::next_seq_and_key_for_member(conn, conversation, c.user, at)?
                .expect("a member");
            assert!(!store::blocked_by_a_member(conn, conversation, c.user)?);
            let (key_id, ciphertext) = match variant {
                Variant::Encrypted => {
                    let (key_id, key) =
                        data_keys::for_writing_from(conn, &st.ring, c.user, at, stored)?;
                    (key_id, key.encrypt(body.as_bytes()))
                }
                Variant::Plaintext => (c.key_id, body.to_string()),
            };
            let row = MessageRow {
                id: Uuid::now_v7(),
                conversation_id: conversation,
                seq,
                author_id: c.user,
                data_key_id: key_id,
                body_ciphertext: Some(ciphertext),
                created_at: at,
                edited_at: None,
                deleted_at: None,
            };
            store::insert_message(conn, &row)?;
            Ok(())
        })
        .unwrap();
}

/// The newest page of 50, as `conversations::page` does it, in one transaction: the same
/// statements for both variants (rows with author names and key wraps in one query, then the
/// attachments); only the encrypted one unwraps keys and decrypts. The bodies' total length.
fn page(st: &Storage, c: &Client, variant: Variant, conversation: Uuid) -> usize {
    let mut pooled = st.pool.get().unwrap();
    pooled
        .conn
        .transaction::<_, anyhow::Error, _>(|conn| {
            let mut rows = store::messages_with_keys_for_member(
                conn,
                conversation,
                c.user,
                None,
                None,
                PAGE + 1,
            )?;
            assert!(!rows.is_empty());
            rows.truncate(PAGE as usize);
            let ids: Vec<Uuid> = rows.iter().map(|r| r.0.id).collect();
            let attachments = store::attachments_of(conn, &ids)?;
            std::hint::black_box(attachments);
            let bodies: Vec<String> = match variant {
                Variant::Encrypted => {
                    let keys = data_keys::OpenKeys::from_wraps(
                        &st.ring,
                        rows.iter().filter_map(|(r, _, wrap)| {
                            wrap.as_ref().map(|(owner, master, w)| {
                                (r.data_key_id, *owner, master.as_str(), w.as_deref())
                            })
                        }),
                    );
                    rows.iter()
                        .map(|(r, _, _)| {
                            let token = r.body_ciphertext.as_deref().unwrap();
                            String::from_utf8(keys.decrypt(r.data_key_id, token).unwrap()).unwrap()
                        })
                        .collect()
                }
                Variant::Plaintext => rows
                    .iter()
                    .map(|(r, _, _)| r.body_ciphertext.clone().unwrap())
                    .collect(),
            };
            std::hint::black_box(rows.iter().map(|(_, name, _)| name.len()).sum::<usize>());
            Ok(bodies.iter().map(String::len).sum())
        })
        .unwrap()
}

fn storage_setup(url: &str, connections: usize, bodies: &[String; 2]) -> Arc<Storage> {
    let settings = common::settings(url, &[("DATABASE_POOL_SIZE", "10")]);
    let ring = rampart::state::key_ring(&settings).unwrap();
    let pool = rampart::db::Pool::new(&settings.database);
    let mut conn = PgConnection::establish(url).unwrap();
    let now = OffsetDateTime::now_utc();
    let mut user = |name: String| -> Uuid {
        let id = Uuid::now_v7();
        diesel::sql_query(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, 'not-a-hash', now(), now())",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Text, _>(&name)
        .bind::<diesel::sql_types::Text, _>(format!("{name}@example.org"))
        .execute(&mut conn)
        .unwrap();
        id
    };
    let pairs: Vec<(Uuid, Uuid)> = (0..connections)
        .map(|i| (user(format!("author{i}")), user(format!("partner{i}"))))
        .collect();
    let mut clients = Vec::new();
    for (author, partner) in pairs {
        let (key_id, _) = data_keys::for_writing(&mut conn, &ring, author, now).unwrap();
        let mut conversation = || {
            let row = ConversationRow {
                id: Uuid::now_v7(),
                kind: "direct".into(),
                creator_id: author,
                data_key_id: key_id,
                title_ciphertext: None,
                created_at: now,
                last_activity_at: now,
                last_seq: 0,
            };
            store::insert_conversation(&mut conn, &row).unwrap();
            store::insert_members(&mut conn, row.id, &[author, partner], now).unwrap();
            row.id
        };
        let conversations = [
            [conversation(), conversation()],
            [conversation(), conversation()],
        ];
        clients.push(Client {
            user: author,
            key_id,
            conversations,
        });
    }
    let st = Arc::new(Storage {
        pool,
        ring,
        clients,
    });
    // 50 messages in every conversation, so each page read is a full page from the start.
    let threads: Vec<_> = (0..connections)
        .map(|i| {
            let st = st.clone();
            let bodies = bodies.clone();
            std::thread::spawn(move || {
                let c = &st.clients[i];
                for variant in [Variant::Encrypted, Variant::Plaintext] {
                    for (size, body) in bodies.iter().enumerate() {
                        for _ in 0..PAGE {
                            send(&st, c, variant, c.conversation(variant, size), body);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    st
}

struct LoopRound {
    /// send + page pairs per second
    rate: f64,
    send_p50: u64,
    send_p99: u64,
    page_p50: u64,
    page_p99: u64,
}

fn storage_round(
    st: &Arc<Storage>,
    variant: Variant,
    size: usize,
    body: &Arc<String>,
    secs: u64,
) -> LoopRound {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let threads: Vec<_> = (0..st.clients.len())
        .map(|i| {
            let st = st.clone();
            let body = body.clone();
            std::thread::spawn(move || {
                let c = &st.clients[i];
                let conversation = c.conversation(variant, size);
                let (mut sends, mut pages) = (Vec::new(), Vec::new());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    send(&st, c, variant, conversation, &body);
                    sends.push(t.elapsed().as_micros() as u64);
                    let t = Instant::now();
                    let total = page(&st, c, variant, conversation);
                    pages.push(t.elapsed().as_micros() as u64);
                    assert_eq!(total, body.len() * PAGE as usize);
                }
                (sends, pages)
            })
        })
        .collect();
    let (mut sends, mut pages) = (Vec::new(), Vec::new());
    for t in threads {
        let (s, p) = t.join().unwrap();
        sends.extend(s);
        pages.extend(p);
    }
    let elapsed = started.elapsed().as_secs_f64();
    sends.sort_unstable();
    pages.sort_unstable();
    LoopRound {
        rate: sends.len() as f64 / elapsed,
        send_p50: pct(&sends, 0.5),
        send_p99: pct(&sends, 0.99),
        page_p50: pct(&pages, 0.5),
        page_p99: pct(&pages, 0.99),
    }
}

struct SizeResult {
    label: &'static str,
    encrypted: Vec<LoopRound>,
    plaintext: Vec<LoopRound>,
    /// Median over rounds of (encrypted rate / plaintext rate), each pair from the same ABBA slot.
    ratio: f64,
}

fn storage_section(url: &str, rounds: usize, seconds: u64, connections: usize) -> Vec<SizeResult> {
    let bodies = [text(200), text(8192)];
    let st = storage_setup(url, connections, &bodies);
    let mut results = Vec::new();
    for (size, label) in [(0usize, "200 B"), (1, "8 KiB")] {
        let body = Arc::new(bodies[size].clone());
        storage_round(&st, Variant::Encrypted, size, &body, 2);
        storage_round(&st, Variant::Plaintext, size, &body, 2);
        let (mut encrypted, mut plaintext) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            if round % 2 == 0 {
                encrypted.push(storage_round(&st, Variant::Encrypted, size, &body, seconds));
                plaintext.push(storage_round(&st, Variant::Plaintext, size, &body, seconds));
            } else {
                plaintext.push(storage_round(&st, Variant::Plaintext, size, &body, seconds));
                encrypted.push(storage_round(&st, Variant::Encrypted, size, &body, seconds));
            }
            eprintln!(
                "storage {label} round {}: encrypted {:.0}/s, plaintext {:.0}/s",
                round + 1,
                encrypted.last().unwrap().rate,
                plaintext.last().unwrap().rate
            );
        }
        let mut ratios: Vec<f64> = encrypted
            .iter()
            .zip(&plaintext)
            .map(|(e, p)| e.rate / p.rate)
            .collect();
        let ratio = median(&mut ratios);
        results.push(SizeResult {
            label,
            encrypted,
            plaintext,
            ratio,
        });
    }
    results
}

fn loop_row(name: &str, rounds: &[LoopRound]) -> (String, f64) {
    let mut rates: Vec<f64> = rounds.iter().map(|r| r.rate).collect();
    let med = median(&mut rates);
    let join =
        |f: &dyn Fn(&LoopRound) -> String| rounds.iter().map(f).collect::<Vec<_>>().join(" / ");
    let line = format!(
        "| {name} | {} | {med:.0} | {} / {} | {} | {} / {} | {} |",
        join(&|r| format!("{:.0}", r.rate)),
        median(&mut rounds.iter().map(|r| r.send_p50 as f64).collect::<Vec<_>>()),
        median(&mut rounds.iter().map(|r| r.page_p50 as f64).collect::<Vec<_>>()),
        join(&|r| r.send_p99.to_string()),
        median(&mut rounds.iter().map(|r| r.send_p99 as f64).collect::<Vec<_>>()),
        median(&mut rounds.iter().map(|r| r.page_p99 as f64).collect::<Vec<_>>()),
        join(&|r| r.page_p99.to_string()),
    );
    (line, med)
}

// ---------------------------------------------------------------------------------------------
// 2. End to end over HTTP, in-process

async fn register_and_login(client: &reqwest::Client, url: &str, name: &str) -> String {
    let res = client
        .post(format!("{url}/api/v1/auth/register"))
        .json(&json!({"username": name, "email": format!("{name}@example.org"), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "register {name}");
    let res = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"login": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login {name}");
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// Alice's token and a conversation between alice and bob.
async fn pair(client: &reqwest::Client, url: &str) -> (String, String) {
    let alice = register_and_login(client, url, "alice").await;
    register_and_login(client, url, "bob").await;
    let res = client
        .post(format!("{url}/api/v1/conversations"))
        .bearer_auth(&alice)
        .json(&json!({"member_usernames": ["bob"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "create conversation");
    let c: Value = res.json().await.unwrap();
    (alice, c["id"].as_str().unwrap().to_string())
}

fn http_section(url: &str, rounds: usize, seconds: u64) -> Vec<Round> {
    let settings = common::settings(
        url,
        &[
            ("DATABASE_POOL_SIZE", "10"),
            ("QUOTA_MESSAGES_PER_DAY", "unlimited"),
        ],
    );
    let port = common::start(
        settings,
        Arc::new(|_: &mut actix_web::web::ServiceConfig| {}),
    );
    let runtime = common::load_runtime();
    let base = format!("http://127.0.0.1:{port}");
    let (token, conversation) = runtime.block_on(pair(&reqwest::Client::new(), &base));
    let messages = format!("{base}/api/v1/conversations/{conversation}/messages");
    let body = Bytes::from(serde_json::to_vec(&json!({"body": text(200)})).unwrap());
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for _ in 0..PAGE {
            let res = client
                .post(&messages)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
    });
    let page = format!("{messages}?limit={PAGE}");
    let make: MakeRequest = Arc::new(move |client: &reqwest::Client, n| {
        if n % 2 == 0 {
            client
                .post(&messages)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
        } else {
            client.get(&page).bearer_auth(&token)
        }
    });
    let counter = Arc::new(AtomicU64::new(0));
    runtime.block_on(common::load(make.clone(), 2, 32, counter.clone()));
    (0..rounds.div_ceil(2))
        .map(|_| runtime.block_on(common::load(make.clone(), seconds, 32, counter.clone())))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 3. Attachments against a separate `rampart serve`

/// A PNG of `w`×`h` and exactly `total` bytes (its IDAT carries the rest), valid chunk CRCs
/// (as tests/api/attachments.rs builds one).
fn png(w: u32, h: u32, total: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let payload = total - out.len() - 12 - 12;
    let data: Vec<u8> = (0..payload).map(|i| (i * 31 % 251) as u8).collect();
    chunk(&mut out, b"IDAT", &data);
    chunk(&mut out, b"IEND", &[]);
    assert_eq!(out.len(), total);
    out
}

fn multipart(file: &[u8]) -> (String, Bytes) {
    let boundary = "rampart-bench-boundary-5f1c";
    let mut body = Vec::with_capacity(file.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nholiday photo\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"photo.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

/// `rampart serve` in a process of its own, killed when dropped.
struct Server {
    child: Child,
    pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (VmRSS, VmHWM) of `pid` in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn rampart_command(env: &[(String, String)], args: &[&str], log: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(log).unwrap(),
        ));
    cmd
}

fn start_server(db_url: &str) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env: Vec<(String, String)> = rampart::crypto::random::env_block()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in [
        ("ENVIRONMENT", "test"),
        ("HOST", "127.0.0.1"),
        ("PORT", &port.to_string()),
        ("DATABASE_URL", db_url),
        ("DATABASE_POOL_SIZE", "10"),
        ("RATE_LIMIT_ENABLED", "false"),
        ("QUOTA_ATTACHMENTS_PER_DAY", "unlimited"),
        ("QUOTA_MESSAGES_PER_DAY", "unlimited"),
        ("LOG_LEVEL", "warn"),
        (
            "RAMPART_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        ),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    let log = std::env::temp_dir().join(format!("rampart-bench-conversations-{port}.log"));
    let status = rampart_command(&env, &["migrate"], &log).status().unwrap();
    assert!(
        status.success(),
        "rampart migrate failed: see {}",
        log.display()
    );
    let child = rampart_command(&env, &["serve"], &log).spawn().unwrap();
    let pid = child.id();
    let server = Server { child, pid };
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rampart serve did not start: see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("rampart serve: pid {pid}, log {}", log.display());
    (server, base)
}

struct Attachments {
    idle_kib: u64,
    burst_peak_kib: u64,
    burst_hwm_kib: u64,
    burst_ms: u64,
    upload: Transfer,
    load_peak_kib: u64,
    final_hwm_kib: u64,
    download: Transfer,
}

struct Transfer {
    count: usize,
    per_s: f64,
    mib_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

#[derive(Clone)]
struct Uploader {
    client: reqwest::Client,
    url: String,
    token: Arc<String>,
    content_type: Arc<String>,
    body: Bytes,
}

impl Uploader {
    /// One upload: the new attachment's id, or `None` on any failure.
    async fn upload(&self) -> Option<String> {
        let res = self
            .client
            .post(&self.url)
            .bearer_auth(self.token.as_str())
            .header("content-type", self.content_type.as_str())
            .body(self.body.clone())
            .send()
            .await
            .ok()?;
        if res.status() != 201 {
            eprintln!(
                "upload: {} {}",
                res.status(),
                res.text().await.unwrap_or_default()
            );
            return None;
        }
        let m: Value = res.json().await.ok()?;
        Some(m["attachments"][0]["id"].as_str()?.to_string())
    }
}

async fn download(client: &reqwest::Client, url: &str, token: &str) -> Option<usize> {
    let mut res = client.get(url).bearer_auth(token).send().await.ok()?;
    if res.status() != 200 {
        return None;
    }
    let mut n = 0;
    while let Some(chunk) = res.chunk().await.ok()? {
        n += chunk.len();
    }
    Some(n)
}

/// `clients` closed loops of `op` for `seconds`: (count, latencies ms sorted, errors, elapsed).
async fn closed_loop<F, Fut>(clients: usize, seconds: u64, op: F) -> (Vec<f64>, usize, f64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut ok, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if op().await {
                        ok.push(t.elapsed().as_secs_f64() * 1e3);
                    } else {
                        errors += 1;
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (ok, e) = t.await.unwrap();
        all.extend(ok);
        errors += e;
    }
    all.sort_by(f64::total_cmp);
    (all, errors, started.elapsed().as_secs_f64())
}

fn transfer(latencies: &[f64], errors: usize, elapsed: f64) -> Transfer {
    let q = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Transfer {
        count: latencies.len(),
        per_s: latencies.len() as f64 / elapsed,
        mib_per_s: latencies.len() as f64 * FILE_BYTES as f64 / MIB / elapsed,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        errors,
    }
}

/// Samples VmRSS every 10 ms until stopped: the highest value seen (KiB).
fn rss_sampler(pid: u32) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(Ordering::Relaxed) {
            peak = peak.max(memory(pid).0);
            std::thread::sleep(Duration::from_millis(10));
        }
        peak.max(memory(pid).0)
    });
    (stop, handle)
}

fn attachments_section(seconds: u64) -> Attachments {
    let (mut admin, name, db_url) = common::empty_database("rampart_bench_attachments");
    let (server, base) = start_server(&db_url);
    let pid = server.pid;
    let runtime = common::load_runtime();
    let file = png(1024, 1024, FILE_BYTES);
    let (content_type, body) = multipart(&file);
    let result = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let (token, conversation) = pair(&client, &base).await;
        let uploader = Uploader {
            client: client.clone(),
            url: format!("{base}/api/v1/conversations/{conversation}/messages"),
            token: Arc::new(token.clone()),
            content_type: Arc::new(content_type),
            body,
        };
        // Warm-up: one upload and one download, checked byte for byte.
        let aid = uploader.upload().await.expect("the warm-up upload");
        let file_url = format!("{base}/api/v1/conversations/{conversation}/attachments/{aid}");
        let back = client
            .get(&file_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(back.as_ref() == file.as_slice(), "the download is the file");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (idle_kib, _) = memory(pid);

        // Exactly 8 uploads at once, VmRSS sampled every 10 ms.
        let (stop, sampler) = rss_sampler(pid);
        let t = Instant::now();
        let burst: Vec<_> = (0..UPLOADERS)
            .map(|_| {
                let u = uploader.clone();
                tokio::spawn(async move { u.upload().await })
            })
            .collect();
        for b in burst {
            assert!(b.await.unwrap().is_some(), "a burst upload failed");
        }
        let burst_ms = t.elapsed().as_millis() as u64;
        stop.store(true, Ordering::Relaxed);
        let burst_peak_kib = sampler.join().unwrap();
        let (_, burst_hwm_kib) = memory(pid);

        // Throughput: 8 uploaders in closed loops.
        let (stop, sampler) = rss_sampler(pid);
        let u = uploader.clone();
        let (lat, errors, elapsed) = closed_loop(UPLOADERS, seconds, move || {
            let u = u.clone();
            async move { u.upload().await.is_some() }
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        let load_peak_kib = sampler.join().unwrap();
        let upload = transfer(&lat, errors, elapsed);

        // Download throughput of the same file: 8 readers in closed loops.
        let (c, url, tok) = (client.clone(), Arc::new(file_url), Arc::new(token));
        let (lat, errors, elapsed) = closed_loop(UPLOADERS, seconds, move || {
            let (c, url, tok) = (c.clone(), url.clone(), tok.clone());
            async move { download(&c, &url, &tok).await == Some(FILE_BYTES) }
        })
        .await;
        let download = transfer(&lat, errors, elapsed);
        let (_, final_hwm_kib) = memory(pid);
        Attachments {
            idle_kib,
            burst_peak_kib,
            burst_hwm_kib,
            burst_ms,
            upload,
            load_peak_kib,
            final_hwm_kib,
            download,
        }
    });
    drop(server);
    common::drop_database(&mut admin, &name);
    result
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if !common::benchmarking() {
        return;
    }
    let rounds: usize = env_or("BENCH_ROUNDS", "4").parse().unwrap();
    let seconds: u64 = env_or("BENCH_SECONDS", "8").parse().unwrap();
    let connections: usize = env_or("BENCH_CONNECTIONS", "16").parse().unwrap();

    let (mut admin, name, db_url) = common::fresh_database("rampart_bench_conversations");
    let ring = rampart::state::key_ring(&common::settings(&db_url, &[])).unwrap();
    let crypto = crypto_cost(&ring);
    eprintln!("crypto timed; storage section ({rounds} ABBA rounds × {seconds} s × 2 sizes)…");
    let storage = storage_section(&db_url, rounds, seconds, connections);
    eprintln!("HTTP section…");
    let http = http_section(&db_url, rounds, seconds);
    eprintln!("attachments section…");
    let att = attachments_section(seconds);

    println!(
        "## Encryption cost at the storage layer ({rounds} ABBA rounds × {seconds} s, \
         {connections} client threads, pool 10)\n"
    );
    println!(
        "| variant | send+page pairs/s per round | median/s | p50 µs send / page | send p99 µs per round | p99 µs send / page (median) | page p99 µs per round |\n\
         | --- | --- | --- | --- | --- | --- | --- |"
    );
    for s in &storage {
        let (e, _) = loop_row(&format!("encrypted, {} bodies", s.label), &s.encrypted);
        let (p, _) = loop_row(&format!("plaintext, {} bodies", s.label), &s.plaintext);
        println!("{e}\n{p}");
    }
    println!();
    for s in &storage {
        println!(
            "**{} bodies: encrypted / plaintext = {:.3} (median of paired rounds) → encryption costs {:.1} %** (target < 15 %)",
            s.label,
            s.ratio,
            (1.0 - s.ratio) * 100.0
        );
    }

    println!("\n## Crypto alone (one thread)\n");
    println!("| operation | encrypt µs | decrypt µs |\n| --- | --- | --- |");
    for (label, e, d) in &crypto.sizes {
        println!("| Fernet, {label} | {e:.2} | {d:.2} |");
    }
    println!(
        "| data-key unwrap (`KeyRing::unwrap`, once per send and once per page) | – | {:.2} |",
        crypto.unwrap_us
    );
    for (i, s) in storage.iter().enumerate() {
        let (_, enc, dec) = &crypto.sizes[i];
        let per_pair = 2.0 * crypto.unwrap_us + enc + PAGE as f64 * dec;
        let mut rates: Vec<f64> = s.encrypted.iter().map(|r| r.rate).collect();
        let rate = median(&mut rates);
        println!(
            "\n{} bodies: crypto per send+page pair ≈ {per_pair:.0} µs (2 unwraps + 1 encrypt + {PAGE} decrypts); \
             at {rate:.0} pairs/s that is {:.1} % of the machine's 2 cores",
            s.label,
            per_pair * rate / 1e6 / 2.0 * 100.0
        );
    }

    println!(
        "\n## End to end over HTTP (in-process, 32 connections, POST message (200 B) and GET 50 alternating)\n"
    );
    println!("{}", common::TABLE_HEAD);
    println!(
        "{}",
        common::row("POST /messages + GET /messages?limit=50", &http).0
    );

    let per_upload = |peak: u64| {
        (peak.saturating_sub(att.idle_kib)) as f64 * 1024.0 / UPLOADERS as f64 / FILE_BYTES as f64
    };
    println!(
        "\n## Attachments (5 MiB PNG, separate `rampart serve`, {UPLOADERS} concurrent clients, {seconds} s)\n"
    );
    println!("| figure | value |\n| --- | --- |");
    let t = |name: &str, x: &Transfer| {
        println!(
            "| {name} | {:.1} MiB/s, {:.2} files/s ({} in all), p50 {:.0} ms, p99 {:.0} ms, {} errors |",
            x.mib_per_s, x.per_s, x.count, x.p50_ms, x.p99_ms, x.errors
        );
    };
    t("upload throughput", &att.upload);
    t("download throughput", &att.download);
    println!(
        "| idle RSS after warm-up | {:.1} MiB |",
        att.idle_kib as f64 / 1024.0
    );
    println!(
        "| peak RSS, burst of exactly {UPLOADERS} uploads ({} ms) | {:.1} MiB (VmHWM {:.1} MiB) |",
        att.burst_ms,
        att.burst_peak_kib as f64 / 1024.0,
        att.burst_hwm_kib as f64 / 1024.0
    );
    println!(
        "| **(peak − idle) / {UPLOADERS} / 5 MiB, burst** | **{:.2} × file size per upload** (target ≤ 2) |",
        per_upload(att.burst_peak_kib)
    );
    println!(
        "| peak RSS during the {seconds} s upload load | {:.1} MiB → {:.2} × per upload |",
        att.load_peak_kib as f64 / 1024.0,
        per_upload(att.load_peak_kib)
    );
    println!(
        "| VmHWM at the end (after downloads) | {:.1} MiB |",
        att.final_hwm_kib as f64 / 1024.0
    );

    println!("\n## Summary\n");
    println!("| figure | value | target |\n| --- | --- | --- |");
    for s in &storage {
        println!(
            "| encryption cost, {} bodies (send + page of 50) | {:.1} % | < 15 % |",
            s.label,
            (1.0 - s.ratio) * 100.0
        );
    }
    let mut http_rps: Vec<f64> = http.iter().map(|r| r.rps).collect();
    println!(
        "| HTTP POST+GET mix, 32 connections | {:.0} req/s, p50 {} µs, p99 {} µs | – |",
        median(&mut http_rps),
        http.last().map_or(0, |r| r.p50_us),
        http.last().map_or(0, |r| r.p99_us)
    );
    println!(
        "| attachment upload, 5 MiB × {UPLOADERS} | {:.1} MiB/s ({:.2}/s), p50 {:.0} ms, p99 {:.0} ms | – |",
        att.upload.mib_per_s, att.upload.per_s, att.upload.p50_ms, att.upload.p99_ms
    );
    println!(
        "| attachment download, 5 MiB × {UPLOADERS} | {:.1} MiB/s ({:.2}/s), p50 {:.0} ms, p99 {:.0} ms | – |",
        att.download.mib_per_s, att.download.per_s, att.download.p50_ms, att.download.p99_ms
    );
    println!(
        "| RSS per upload, burst of {UPLOADERS} | {:.2} × file size (idle {:.0} MiB, peak {:.0} MiB) | ≤ 2 × |",
        per_upload(att.burst_peak_kib),
        att.idle_kib as f64 / 1024.0,
        att.burst_peak_kib as f64 / 1024.0
    );
    common::drop_database(&mut admin, &name);
    std::process::exit(0);
}
