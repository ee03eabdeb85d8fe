//! `rampart keys status` and `rampart keys rotate-encryption` on data keys made through the
//! library (`users::data_keys::for_writing`), and check-config's probe for data keys under a
//! master key that is no longer configured.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use diesel::prelude::*;
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

use rampart::crypto::keyring::{KeyRing, master_key_id};
use rampart::db::schema::{audit_logs, data_keys};
use rampart::users::data_keys as dk;

use crate::commands::rampart;
use crate::support::{TestDb, base_env, config_dir};

fn new_key() -> String {
    rampart::crypto::random::fernet_key().unwrap()
}

fn ring(newest: &str, previous: &[&str]) -> KeyRing {
    let previous: Vec<SecretString> = previous
        .iter()
        .map(|k| SecretString::from(k.to_string()))
        .collect();
    KeyRing::new(&SecretString::from(newest.to_string()), &previous).unwrap()
}

/// The test app's environment with ENCRYPTION_KEY = `newest` and ENCRYPTION_KEYS_PREVIOUS =
/// `previous` (unset when empty).
fn env_with(db: &TestDb, newest: &str, previous: &[&str]) -> BTreeMap<String, String> {
    let mut env = base_env(&db.url);
    env.insert("ENCRYPTION_KEY".into(), newest.into());
    if !previous.is_empty() {
        env.insert("ENCRYPTION_KEYS_PREVIOUS".into(), previous.join(","));
    }
    env
}

/// `n` users made straight in SQL (no password hashing: only their ids matter here).
fn seed_users(conn: &mut PgConnection, n: usize) -> Vec<Uuid> {
    diesel::sql_query(format!(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) \
         SELECT gen_random_uuid(), 'user_' || i, 'user_' || i || '@example.org', 'x', now(), now() \
         FROM generate_series(1, {n}) AS i"
    ))
    .execute(conn)
    .unwrap();
    rampart::db::schema::users::table
        .select(rampart::db::schema::users::id)
        .order(rampart::db::schema::users::id)
        .load(conn)
        .unwrap()
}

/// Each user's data key under `ring`, and a ciphertext made with it: (user, data key id, token).
fn encrypt_for_each(
    conn: &mut PgConnection,
    ring: &KeyRing,
    users: &[Uuid],
) -> Vec<(Uuid, Uuid, String)> {
    let now = time::OffsetDateTime::now_utc();
    users
        .iter()
        .map(|user| {
            let (key_id, key) = dk::for_writing(conn, ring, *user, now).unwrap();
            (
                *user,
                key_id,
                key.encrypt(format!("secret of {user}").as_bytes()),
            )
        })
        .collect()
}

/// Every ciphertext still decrypts under `ring` (and nothing else is needed).
fn assert_all_readable(conn: &mut PgConnection, ring: &KeyRing, made: &[(Uuid, Uuid, String)]) {
    let ids: Vec<Uuid> = made.iter().map(|(_, id, _)| *id).collect();
    let open = dk::open(conn, ring, &ids).unwrap();
    for (user, key_id, token) in made {
        assert_eq!(
            open.decrypt(*key_id, token).as_deref(),
            Some(format!("secret of {user}").as_bytes()),
            "data key {key_id} lost"
        );
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn status_json(env: &BTreeMap<String, String>) -> Value {
    let out = rampart(&["keys", "status", "--json"], env);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn row<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["master_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {status}"))
}

#[test]
fn rotation_moves_every_key_and_the_old_master_key_can_then_be_removed() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let (a, b) = (new_key(), new_key());
    let (id_a, id_b) = (master_key_id(&a).unwrap(), master_key_id(&b).unwrap());
    let users = seed_users(&mut conn, 6);
    let made = encrypt_for_each(&mut conn, &ring(&a, &[]), &users[..5]);
    // One erased account: its key is destroyed, not rotated.
    let now = time::OffsetDateTime::now_utc();
    dk::for_writing(&mut conn, &ring(&a, &[]), users[5], now).unwrap();
    assert!(dk::destroy(&mut conn, users[5], now).unwrap());

    let only_a = env_with(&db, &a, &[]);
    let status = status_json(&only_a);
    assert_eq!(status["current"], id_a.as_str());
    assert_eq!(row(&status, &id_a)["data_keys"], 5);
    assert_eq!(row(&status, &id_a)["current"], true);
    assert_eq!(status["destroyed"], 1);
    assert_eq!(status["pending_rewrap"], 0);

    // B is the new ENCRYPTION_KEY, A moves to ENCRYPTION_KEYS_PREVIOUS.
    let b_then_a = env_with(&db, &b, &[&a]);
    let status = status_json(&b_then_a);
    assert_eq!(status["current"], id_b.as_str());
    assert_eq!(row(&status, &id_a)["data_keys"], 5);
    assert_eq!(
        row(&status, &id_a)["variable"],
        "ENCRYPTION_KEYS_PREVIOUS[1]"
    );
    assert_eq!(row(&status, &id_b)["data_keys"], 0);
    assert_eq!(status["pending_rewrap"], 5);
    let out = rampart(&["keys", "status"], &b_then_a);
    let table = text(&out);
    assert!(
        table.contains(id_a.as_str()) && table.contains("previous (ENCRYPTION_KEYS_PREVIOUS[1])"),
        "{table}"
    );
    assert!(table.contains("5 data key(s) to re-wrap"), "{table}");
    // Neither key's value is ever printed.
    assert!(!table.contains(&a) && !table.contains(&b));

    let out = rampart(&["keys", "rotate-encryption"], &b_then_a);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rewrapped 5/5"), "{stdout}");
    assert!(
        stdout.contains(&format!("every live data key is under {id_b}")),
        "{stdout}"
    );
    assert!(!stdout.contains(&a) && !stdout.contains(&b));

    // A removed from the configuration: nothing is lost.
    let only_b = env_with(&db, &b, &[]);
    let status = status_json(&only_b);
    assert_eq!(row(&status, &id_b)["data_keys"], 5);
    assert_eq!(status["unconfigured"], 0);
    assert_eq!(status["destroyed"], 1);
    assert!(
        status["master_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != id_a.as_str())
    );
    assert_all_readable(&mut conn, &ring(&b, &[]), &made);
    let out = rampart(&["check-config"], &only_b);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("not configured"), "{}", text(&out));

    // Audited: one `encryption.rotated` row for the batch, naming ids, never keys.
    let rows: Vec<(String, Value)> = audit_logs::table
        .filter(audit_logs::action.eq("encryption.rotated"))
        .select((audit_logs::outcome, audit_logs::metadata))
        .load(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "success");
    assert_eq!(rows[0].1["rewrapped"], 5);
    assert_eq!(rows[0].1["to"], id_b.as_str());
    assert_eq!(rows[0].1["from"][&id_a], 5);

    // Nothing left: a second run moves nothing and succeeds.
    let out = rampart(&["keys", "rotate-encryption", "--json"], &b_then_a);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rewrapped"], 0);
    assert_eq!(summary["done"], true);
}

#[test]
fn a_rotation_killed_midway_loses_nothing_and_a_second_run_finishes_it() {
    const N: usize = 200;
    let db = TestDb::new();
    let mut conn = db.connect();
    let (a, b) = (new_key(), new_key());
    let id_b = master_key_id(&b).unwrap();
    let users = seed_users(&mut conn, N);
    let made = encrypt_for_each(&mut conn, &ring(&a, &[]), &users);
    let env = env_with(&db, &b, &[&a]);

    let cwd = std::env::temp_dir().join(format!("rampart-cli-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&cwd).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["keys", "rotate-encryption", "--batch-size", "1"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RAMPART_CONFIG_DIR", config_dir())
        .envs(&env)
        .current_dir(&cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(progress) = line.strip_prefix("rewrapped ")
            && let Some((done, total)) = progress.split_once('/')
        {
            assert_eq!(total, N.to_string());
            seen = done.parse().unwrap();
            if seen >= 20 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(seen >= 20, "no progress seen");

    let under = |conn: &mut PgConnection, id: &str| -> i64 {
        data_keys::table
            .filter(data_keys::master_key_id.eq(id))
            .filter(data_keys::wrapped.is_not_null())
            .count()
            .get_result(conn)
            .unwrap()
    };
    let moved = under(&mut conn, &id_b);
    assert!(
        (seen as i64..N as i64).contains(&moved),
        "killed midway: {moved} of {N} moved (saw {seen})"
    );
    // Midway, both keys configured: everything reads.
    assert_all_readable(&mut conn, &ring(&b, &[&a]), &made);

    let out = rampart(&["keys", "rotate-encryption", "--batch-size", "7"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let left = N as i64 - moved;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("rewrapped {left}/{left}")),
        "{}",
        text(&out)
    );
    assert_eq!(under(&mut conn, &id_b), N as i64);
    let total: i64 = data_keys::table.count().get_result(&mut conn).unwrap();
    assert_eq!(total, N as i64, "no key lost, none added");
    // Each key unwraps under B alone (wrapped once, bound to its owner) and opens its ciphertext.
    let only_b = ring(&b, &[]);
    let rows: Vec<(Uuid, String, Option<String>)> = data_keys::table
        .select((
            data_keys::user_id,
            data_keys::master_key_id,
            data_keys::wrapped,
        ))
        .load(&mut conn)
        .unwrap();
    for (owner, master, wrapped) in &rows {
        only_b
            .unwrap(*owner, master, wrapped.as_deref().unwrap())
            .unwrap();
    }
    assert_all_readable(&mut conn, &only_b, &made);
    // Every committed batch recorded its keys exactly once, in its own transaction.
    let audited: Vec<Value> = audit_logs::table
        .filter(audit_logs::action.eq("encryption.rotated"))
        .select(audit_logs::metadata)
        .load(&mut conn)
        .unwrap();
    let sum: i64 = audited
        .iter()
        .map(|m| m["rewrapped"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, N as i64);
    let out = rampart(&["audit", "verify"], &env);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn keys_left_behind_are_reported_by_id_and_fail_rotation_and_check_config() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let (a, b, lost) = (new_key(), new_key(), new_key());
    let id_lost = master_key_id(&lost).unwrap();
    let users = seed_users(&mut conn, 4);
    let made = encrypt_for_each(&mut conn, &ring(&a, &[]), &users[..2]);
    encrypt_for_each(&mut conn, &ring(&lost, &[]), &users[2..3]);
    // A wrap copied onto another user's row does not unwrap there: a corrupt wrap.
    let (_, corrupt_id, _) = encrypt_for_each(&mut conn, &ring(&a, &[]), &users[3..4])[0].clone();
    let donor: String = data_keys::table
        .filter(data_keys::user_id.eq(users[0]))
        .select(data_keys::wrapped.assume_not_null())
        .first(&mut conn)
        .unwrap();
    diesel::update(data_keys::table.find(corrupt_id))
        .set(data_keys::wrapped.eq(Some(donor)))
        .execute(&mut conn)
        .unwrap();

    let env = env_with(&db, &b, &[&a]);
    let out = rampart(&["check-config"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: ENCRYPTION_KEYS_PREVIOUS: 1 live data key(s) are wrapped under master key {id_lost}, which is not configured"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(&lost) && !stderr.contains(&a) && !stderr.contains(&b));

    let out = rampart(&["keys", "rotate-encryption", "--batch-size", "1"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rewrapped 2/3"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "corrupt wrap, left as it was: data key {corrupt_id}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("1 data key(s) under {id_lost} (NOT CONFIGURED)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("(ENCRYPTION_KEYS_PREVIOUS[1])"),
        "the corrupt one is left under A: {stdout}"
    );
    assert_all_readable(&mut conn, &ring(&b, &[]), &made);

    let out = rampart(&["keys", "rotate-encryption", "--json"], &env);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["done"], false);
    assert_eq!(
        summary["failed"],
        serde_json::json!([corrupt_id.to_string()])
    );
    let status = status_json(&env);
    assert_eq!(status["unconfigured"], 1);
    assert_eq!(row(&status, &id_lost)["configured"], false);
    assert_eq!(row(&status, &id_lost)["variable"], Value::Null);

    // The failed batch is audited as a failure naming the data key's id.
    let failures: Vec<Value> = audit_logs::table
        .filter(audit_logs::action.eq("encryption.rotated"))
        .filter(audit_logs::outcome.eq("failure"))
        .select(audit_logs::metadata)
        .load(&mut conn)
        .unwrap();
    assert!(!failures.is_empty());
    assert_eq!(
        failures[0]["failed"],
        serde_json::json!([corrupt_id.to_string()])
    );
}

#[test]
fn check_config_names_bad_previous_keys_by_position_never_by_value() {
    let db = TestDb::new();
    let (a, b) = (new_key(), new_key());
    let mut env = env_with(&db, &a, &[]);
    env.insert(
        "ENCRYPTION_KEYS_PREVIOUS".into(),
        format!("{b},not-a-fernet-key-at-all,{b},{a}"),
    );
    env.insert("ENVIRONMENT".into(), "production".into());
    env.insert("CORS_ORIGINS".into(), "https://app.example.org".into());
    let out = rampart(&["check-config"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "error: ENCRYPTION_KEYS_PREVIOUS: entry 2 is not a valid Fernet key",
        "error: ENCRYPTION_KEYS_PREVIOUS: entry 3 repeats entry 1",
        "error: ENCRYPTION_KEYS_PREVIOUS: entry 4 is the current ENCRYPTION_KEY",
    ] {
        assert!(stderr.contains(expected), "{expected}:\n{stderr}");
    }
    assert!(!stderr.contains(&a) && !stderr.contains(&b) && !stderr.contains("not-a-fernet"));
}
