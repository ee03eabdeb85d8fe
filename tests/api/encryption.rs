//! Encryption at rest (issue 15): Fernet tokens interoperate with Python's `cryptography.fernet`
//! both ways, the Fernet spec's vectors hold, a database dump plus a wrong key reveals nothing,
//! and a master key missing from the configuration is reported by `/ready` — never a 500 on reads.

use std::process::{Command, Stdio};

use diesel::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use rampart::crypto::keyring::{DataKey, KeyRing, master_key_id};
use rampart::users::data_keys as dk;

use crate::support::{TestDb, app_sharing_database, spawn_app};

/// The Python with `cryptography` the interop tests use: `$RAMPART_PYTHON` (scripts/ensure-tools
/// makes target/py-venv and the Makefile exports it), else `python3`. A missing interpreter or
/// library fails the test: interoperability is a claim SECURITY.md makes.
fn python(script: &str, args: &[&str]) -> String {
    let python = std::env::var("RAMPART_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): run scripts/ensure-tools, which makes target/py-venv with `cryptography`, and set RAMPART_PYTHON=target/py-venv/bin/python (make test does)")
        });
    assert!(
        out.status.success(),
        "{python} failed (is `cryptography` installed? run scripts/ensure-tools and set \
         RAMPART_PYTHON=target/py-venv/bin/python; make test does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const PY_DECRYPT: &str = "import sys\nfrom cryptography.fernet import Fernet\n\
sys.stdout.write(Fernet(sys.argv[1].encode()).decrypt(sys.argv[2].encode()).decode())";

#[test]
fn a_rust_token_decrypts_in_python_and_a_python_token_in_rust() {
    // Content under a data key, exactly what the database holds for a message body.
    let key = DataKey::generate().unwrap();
    let token = key.encrypt("grüße, 👋 from rust".as_bytes());
    assert_eq!(
        python(PY_DECRYPT, &[key.expose_encoded(), &token]),
        "grüße, 👋 from rust"
    );

    let made = python(
        "from cryptography.fernet import Fernet\nk = Fernet.generate_key()\n\
         print(k.decode()); print(Fernet(k).encrypt('hello from python ✓'.encode()).decode())",
        &[],
    );
    let mut lines = made.lines();
    let (py_key, py_token) = (lines.next().unwrap(), lines.next().unwrap());
    let key = DataKey::from_encoded(py_key).unwrap();
    assert_eq!(
        key.decrypt(py_token).unwrap(),
        "hello from python ✓".as_bytes()
    );
    assert!(key.decrypt(&format!("{py_token}x")).is_err());

    // A wrapped data key is a Fernet token under the master key too.
    let master = rampart::crypto::random::fernet_key().unwrap();
    let ring = KeyRing::new(&SecretString::from(master.clone()), &[]).unwrap();
    let owner = Uuid::now_v7();
    let data_key = DataKey::generate().unwrap();
    let wrapped = ring.wrap(owner, &data_key).unwrap();
    assert_eq!(
        python(PY_DECRYPT, &[&master, &wrapped.token]),
        format!("rampart-dk-v1:{owner}:{}", data_key.expose_encoded())
    );
}

/// github.com/fernet/spec: verify.json, and invalid.json's cases that apply to tokens without a
/// TTL (rampart's content does not expire, so "expired TTL" and "far-future TS" — TTL checks —
/// do not apply; every other kind of damage is refused).
#[test]
fn the_fernet_spec_vectors_hold_in_rust_and_in_python() {
    const SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const VALID: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    let key = DataKey::from_encoded(SECRET).unwrap();
    assert_eq!(key.decrypt(VALID).unwrap(), b"hello");
    assert_eq!(python(PY_DECRYPT, &[SECRET, VALID]), "hello");
    let invalid = [
        (
            "incorrect mac",
            "rn9hs9yS0GVWjk4hH822VIwQUWz-_WZWCLzsD7SgV2IAAAAAHcCesAABAgMEBQYHCAkKCwwNDg8tNtXKRlVimf3hMAhjOASy",
        ),
        (
            "too short",
            "91GVdgz7jmWR6vJiViEA4u-LhVMhCSr87INSeFwwkYAAAAAAHcCesAABAgMEBQYHCAkKCw==",
        ),
        (
            "invalid base64",
            "%%%%%%%%%%%j-ztUarjDIfllJBmLiBMjfcmZesHVIhcAAAAAHcCesAABAgMEBQYHCAkKCwwNDg8tNtXKRlVimf3hMAhjOASy",
        ),
        (
            "payload size not multiple of block size",
            "r-pDJRzyfnW4rYfh-gZek3qA3lnFG8fGaf0qgmZlPL8AAAAAHcCesAABAgMEBQYHCAkKCwwNDg8tNtXKRlVimf3hMAhjOAQ=",
        ),
        (
            "payload padding error",
            "ApoqRxzlU8Z9-mPSV6ufXeIgKugRjI_-ugnnqqoCTjQAAAAAHcCesAABAgMEBQYHCAkKCwwNDg91rx5fbHkRnpZBxpOuEAjd",
        ),
        (
            "incorrect IV (causes padding error)",
            "fe5sCHPyF13H837yvtc65xAlWfXXP3fEUX_jMiB74EwAAAAAHcCesHV0d3ZxcHNyfXx_fnl4e3otNtXKRlVimf3hMAhjOASy",
        ),
    ];
    for (desc, token) in invalid {
        assert!(key.decrypt(token).is_err(), "{desc} accepted");
        assert!(
            fernet::Fernet::new(SECRET).unwrap().decrypt(token).is_err(),
            "{desc} accepted by the crate"
        );
    }
}

#[test]
fn a_database_dump_with_a_wrong_key_reveals_nothing() {
    let db = TestDb::new();
    let mut conn = db.connect();
    diesel::sql_query(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) \
         VALUES (gen_random_uuid(), 'dumped', 'dumped@example.org', 'x', now(), now())",
    )
    .execute(&mut conn)
    .unwrap();
    let user: Uuid = rampart::db::schema::users::table
        .select(rampart::db::schema::users::id)
        .first(&mut conn)
        .unwrap();
    let master = rampart::crypto::random::fernet_key().unwrap();
    let ring = KeyRing::new(&SecretString::from(master.clone()), &[]).unwrap();
    let (key_id, key) =
        dk::for_writing(&mut conn, &ring, user, time::OffsetDateTime::now_utc()).unwrap();
    let token = key.encrypt(b"the launch code is 0000");

    // The whole row as a dump shows it.
    #[derive(QueryableByName)]
    struct Dump {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    let dump = diesel::sql_query("SELECT row_to_json(d)::text AS row FROM data_keys d")
        .get_result::<Dump>(&mut conn)
        .unwrap()
        .row;
    assert!(!dump.contains(key.expose_encoded()), "unwrapped key stored");
    assert!(!dump.contains(&master));
    assert!(!dump.contains("rampart-dk-v1"), "wrap plaintext stored");
    let stored: Value = serde_json::from_str(&dump).unwrap();
    let wrapped = stored["wrapped"].as_str().unwrap();

    // Another key — as a ring, or straight through Fernet — gets nothing.
    let wrong = rampart::crypto::random::fernet_key().unwrap();
    let wrong_ring = KeyRing::new(&SecretString::from(wrong.clone()), &[]).unwrap();
    assert!(
        wrong_ring
            .unwrap(user, stored["master_key_id"].as_str().unwrap(), wrapped)
            .is_err()
    );
    assert!(
        fernet::Fernet::new(&wrong)
            .unwrap()
            .decrypt(wrapped)
            .is_err()
    );
    let opened = dk::open(&mut conn, &wrong_ring, &[key_id]).unwrap();
    assert!(opened.decrypt(key_id, &token).is_none());
    // The right key still opens it.
    let opened = dk::open(&mut conn, &ring, &[key_id]).unwrap();
    assert_eq!(
        opened.decrypt(key_id, &token).as_deref(),
        Some(&b"the launch code is 0000"[..])
    );
}

#[actix_web::test]
async fn ready_names_a_master_key_that_is_not_configured_and_reads_still_answer() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let res = app
        .client
        .post(app.url("/api/v1/conversations"))
        .bearer_auth(&alice.access)
        .json(&json!({ "member_usernames": ["bob"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let conversation: Value = res.json().await.unwrap();
    let messages = format!(
        "/api/v1/conversations/{}/messages",
        conversation["id"].as_str().unwrap()
    );
    let res = app
        .client
        .post(app.url(&messages))
        .bearer_auth(&alice.access)
        .json(&json!({ "body": "attack at dawn" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(body["encryption"], "ok");

    // Another instance on the same database, configured with a new key and without the old one.
    let old = app.settings_env["ENCRYPTION_KEY"].clone();
    let old_id = master_key_id(&old).unwrap();
    let new = rampart::crypto::random::fernet_key().unwrap();
    let forgetful = app_sharing_database(&app)
        .env("ENCRYPTION_KEY", &new)
        .spawn()
        .await;
    let res = forgetful.get("/ready").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let text = res.text().await.unwrap();
    assert!(!text.contains(&old) && !text.contains(&new));
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains(&old_id),
        "{problem}"
    );
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0]["field"], "encryption");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("master key {old_id} is not configured (")),
        "{problem}"
    );
    // Reads answer (the content is unavailable), never 500.
    let res = forgetful.get_auth(&messages, &alice.access).await;
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains("attack at dawn"));

    // The old key back in ENCRYPTION_KEYS_PREVIOUS: ready, and readable.
    let rotated = app_sharing_database(&app)
        .env("ENCRYPTION_KEY", &new)
        .env("ENCRYPTION_KEYS_PREVIOUS", &old)
        .spawn()
        .await;
    assert_eq!(rotated.get("/ready").await.status(), 200);
    let res = rotated.get_auth(&messages, &alice.access).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("attack at dawn"));
}
