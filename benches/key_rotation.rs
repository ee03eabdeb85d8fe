//! Master-key rotation rate against a real Postgres: data keys re-wrapped per second by the loop
//! `rampart keys rotate-encryption` runs, in batches of 500 — once with `rewrap_batch` alone, once
//! with `rewrap_batch_audited` (what the command does: one `encryption.rotated` row per batch, in
//! the batch's transaction).
//!
//! `cargo bench --bench key_rotation` (TEST_DATABASE_URL as for the tests; ROTATION_BENCH_KEYS
//! sets the number of data keys, default 20 000; ROTATION_BENCH_BATCH the batch size, 500).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/db.rs"]
#[allow(dead_code)]
mod db;

use std::time::Instant;

use diesel::prelude::*;
use rampart::audit::{AuditKey, Auditor};
use rampart::crypto::keyring::{DataKey, KeyRing};
use rampart::db::schema::data_keys;
use rampart::users::data_keys as dk;
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

fn ring(newest: &str, previous: &[&str]) -> KeyRing {
    let previous: Vec<SecretString> = previous
        .iter()
        .map(|k| SecretString::from(k.to_string()))
        .collect();
    KeyRing::new(&SecretString::from(newest.to_string()), &previous).unwrap()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` users and one data key each, wrapped under `ring`'s newest key, inserted in chunks.
fn seed(conn: &mut PgConnection, ring: &KeyRing, n: usize) {
    diesel::sql_query(format!(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) \
         SELECT gen_random_uuid(), 'user_' || i, 'user_' || i || '@example.org', 'x', now(), now() \
         FROM generate_series(1, {n}) AS i"
    ))
    .execute(conn)
    .unwrap();
    let users: Vec<Uuid> = rampart::db::schema::users::table
        .select(rampart::db::schema::users::id)
        .load(conn)
        .unwrap();
    let now = OffsetDateTime::now_utc();
    for chunk in users.chunks(1000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|user| {
                let wrapped = ring.wrap(*user, &DataKey::generate().unwrap()).unwrap();
                (
                    data_keys::id.eq(Uuid::now_v7()),
                    data_keys::user_id.eq(*user),
                    data_keys::master_key_id.eq(wrapped.master_key_id),
                    data_keys::wrapped.eq(Some(wrapped.token)),
                    data_keys::created_at.eq(now),
                )
            })
            .collect();
        diesel::insert_into(data_keys::table)
            .values(&rows)
            .execute(conn)
            .unwrap();
    }
}

/// Runs the rotation loop to the end; returns (keys re-wrapped, seconds).
fn rotate(
    conn: &mut PgConnection,
    ring: &KeyRing,
    auditor: Option<&Auditor>,
    batch: i64,
) -> (usize, f64) {
    let started = Instant::now();
    let now = OffsetDateTime::now_utc();
    let (mut after, mut total) = (None, 0);
    loop {
        let result = match auditor {
            Some(auditor) => dk::rewrap_batch_audited(conn, ring, auditor, after, batch, now),
            None => dk::rewrap_batch(conn, ring, after, batch, now),
        }
        .unwrap();
        let Some(last) = result.last_id else { break };
        assert!(result.failed.is_empty());
        total += result.rewrapped;
        after = Some(last);
    }
    (total, started.elapsed().as_secs_f64())
}

fn main() {
    let n = env_usize("ROTATION_BENCH_KEYS", 20_000);
    let batch = env_usize("ROTATION_BENCH_BATCH", 500) as i64;
    let db = db::TestDb::new();
    let mut conn = db.connect();
    let keys: Vec<String> = (0..3)
        .map(|_| rampart::crypto::random::fernet_key().unwrap())
        .collect();
    let seeding = Instant::now();
    seed(&mut conn, &ring(&keys[0], &[]), n);
    println!(
        "seeded {n} data keys in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    diesel::sql_query("ANALYZE data_keys")
        .execute(&mut conn)
        .unwrap();

    let (moved, secs) = rotate(&mut conn, &ring(&keys[1], &[&keys[0]]), None, batch);
    assert_eq!(moved, n);
    println!(
        "rewrap_batch ({batch}/batch):          {moved} keys in {secs:.2} s = {:.0} keys/s",
        moved as f64 / secs
    );

    let auditor = Auditor::new(
        AuditKey::derive(&SecretString::from(
            "bench-secret-key-4mK9pQ2rT7vX1zB8nC3dF6gH0jL5wY",
        )),
        true,
    );
    let (moved, secs) = rotate(
        &mut conn,
        &ring(&keys[2], &[&keys[1]]),
        Some(&auditor),
        batch,
    );
    assert_eq!(moved, n);
    println!(
        "rewrap_batch_audited ({batch}/batch):  {moved} keys in {secs:.2} s = {:.0} keys/s",
        moved as f64 / secs
    );
}
