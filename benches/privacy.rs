//! Data export and erasure at scale (issue 16), against a real Postgres: a user with 50 000
//! messages (1 KiB each, plus one 1 MiB attachment) is exported through the same producer the
//! route streams from — as JSON and as a zip, into a sink that counts bytes — reporting messages
//! per second and the process's peak RSS growth; then the erasure transaction is timed (the
//! window in which it holds the user's row lock and, at its tail, the audit chain lock).
//!
//! `cargo bench --bench privacy` (TEST_DATABASE_URL as for the tests; PRIVACY_BENCH_MESSAGES sets
//! the number of messages, default 50 000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/db.rs"]
#[allow(dead_code)]
mod db;

use std::io::{self, Write};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rampart::audit::{Actor, AuditKey, Auditor, RequestMeta};
use rampart::config::settings::DatabaseSettings;
use rampart::crypto::keyring::{DataKey, KeyRing};
use rampart::privacy::{self, ExportFormat};
use secrecy::SecretString;
use uuid::Uuid;

/// Counts bytes, keeps none.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0 += data.len() as u64;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: i64 = std::env::var("PRIVACY_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let db = db::TestDb::new();
    let mut conn = db.connect();
    let ring = KeyRing::new(
        &SecretString::from(rampart::crypto::random::fernet_key().unwrap()),
        &[],
    )
    .unwrap();
    let (alice, bob, conversation, key_id) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let data_key = DataKey::generate().unwrap();
    let wrapped = ring.wrap(alice, &data_key).unwrap();
    let body = data_key.encrypt(&[b'x'; 1024]);
    let seeding = Instant::now();
    conn.batch_execute(&format!(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES \
           ('{alice}', 'alice', 'alice@example.org', 'x', now(), now()), \
           ('{bob}', 'bob', 'bob@example.org', 'x', now(), now()); \
         INSERT INTO data_keys (id, user_id, master_key_id, wrapped, created_at) \
           VALUES ('{key_id}', '{alice}', '{}', '{}', now()); \
         INSERT INTO conversations (id, kind, creator_id, data_key_id, created_at, last_activity_at, last_seq) \
           VALUES ('{conversation}', 'direct', '{alice}', '{key_id}', now(), now(), {n}); \
         INSERT INTO conversation_members (conversation_id, user_id, joined_at, last_read_seq) \
           VALUES ('{conversation}', '{alice}', now(), 0), ('{conversation}', '{bob}', now(), 0); \
         INSERT INTO messages (id, conversation_id, seq, author_id, data_key_id, body_ciphertext, created_at) \
           SELECT gen_random_uuid(), '{conversation}', g, '{alice}', '{key_id}', '{body}', now() \
           FROM generate_series(1, {n}) g;",
        wrapped.master_key_id, wrapped.token
    ))
    .unwrap();
    // One 1 MiB attachment on the last message, in 4 chunks.
    let attachment = Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO attachments (id, message_id, conversation_id, data_key_id, name_ciphertext, \
           content_type, size, chunks, position, created_at) \
         SELECT '{attachment}', id, '{conversation}', '{key_id}', '{}', 'pdf', 1048576, 4, 0, now() \
         FROM messages WHERE seq = {n}",
        data_key.encrypt(b"big.pdf")
    ))
    .execute(&mut conn)
    .unwrap();
    let chunk = data_key.encrypt(&vec![7u8; 256 * 1024]);
    for seq in 0..4 {
        diesel::sql_query(format!(
            "INSERT INTO attachment_chunks (attachment_id, seq, ciphertext) VALUES ('{attachment}', {seq}, '{chunk}')"
        ))
        .execute(&mut conn)
        .unwrap();
    }
    println!(
        "seeded {n} messages in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let pool = rampart::db::Pool::new(&DatabaseSettings {
        url: SecretString::from(db.url.clone()),
        pool_size: 4,
        pool_timeout: Duration::from_secs(10),
        test_on_checkout: false,
        migrate_on_start: false,
        startup_wait: Duration::from_secs(0),
    });
    for format in [ExportFormat::Json, ExportFormat::Zip] {
        let job = privacy::export::Job {
            user_id: alice,
            current_session: None,
            format,
            now: time::OffsetDateTime::now_utc(),
        };
        let rss_before = status_kib("VmRSS:");
        let hwm_before = status_kib("VmHWM:");
        let started = Instant::now();
        let mut sink = Sink(0);
        privacy::export::produce(&pool, &ring, &job, &mut sink).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let hwm_after = status_kib("VmHWM:");
        println!(
            "export {:<4} {n} messages: {:.2} s, {:.0} messages/s, {:.1} MiB ({:.1} MiB/s); \
             RSS before {} MiB, peak growth {} MiB",
            format.as_str(),
            seconds,
            n as f64 / seconds,
            sink.0 as f64 / 1_048_576.0,
            sink.0 as f64 / 1_048_576.0 / seconds,
            rss_before / 1024,
            hwm_after.saturating_sub(hwm_before.max(rss_before)) / 1024,
        );
    }

    // Sessions and keys to end, as a real account would have.
    diesel::sql_query(format!(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, ip, user_agent) \
         SELECT gen_random_uuid(), '{alice}', now(), now(), now() + interval '1 day', '192.0.2.1', 'bench' \
         FROM generate_series(1, 20)"
    ))
    .execute(&mut conn)
    .unwrap();
    let auditor = Auditor::new(
        AuditKey::derive(&SecretString::from("bench-audit-secret-0123456789abcdef")),
        true,
    );
    let meta = RequestMeta {
        ip: None,
        user_agent: Some("bench".into()),
        request_id: None,
        server_request_id: None,
    };
    let started = Instant::now();
    let erased = conn
        .transaction::<_, privacy::PrivacyError, _>(|conn| {
            privacy::erase_in_tx(
                conn,
                &auditor,
                &meta,
                privacy::Erasure {
                    user_id: alice,
                    actor: Actor::system(),
                    by: None,
                    reason: Some("bench".into()),
                    via: "cli",
                    extra: serde_json::json!({}),
                },
                None,
                time::OffsetDateTime::now_utc(),
            )
        })
        .unwrap();
    println!(
        "erasure of a user with {n} messages: transaction {:.1} ms ({} sessions ended, data key destroyed: {})",
        started.elapsed().as_secs_f64() * 1000.0,
        erased.sessions_revoked,
        erased.data_key_destroyed
    );
}
