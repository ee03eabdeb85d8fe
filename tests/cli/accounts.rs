//! `rampart create-admin` and `rampart users import` against a real database.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use diesel::prelude::*;

use crate::commands::rampart;
use crate::support::{TestDb, base_env, config_dir};

#[derive(QueryableByName, Debug)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    username: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    role: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    password_hash: String,
}

fn users(db: &TestDb) -> Vec<Row> {
    let mut conn = db.connect();
    diesel::sql_query("SELECT username, role, password_hash FROM users ORDER BY username")
        .load(&mut conn)
        .unwrap()
}

fn env_for(db: &TestDb) -> BTreeMap<String, String> {
    base_env(&db.url)
}

#[test]
fn create_admin_generates_a_password_once_or_reads_stdin() {
    let db = TestDb::new();
    let env = env_for(&db);
    let out = rampart(
        &[
            "create-admin",
            "--username",
            "root_admin",
            "--email",
            "root@example.org",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once, store it now): "))
        .expect("generated password printed");
    assert!(password.len() >= 32);
    let rows = users(&db);
    assert_eq!(rows[0].role, "admin");
    assert!(rows[0].password_hash.starts_with("$argon2id$"));
    assert!(!rows[0].password_hash.contains(password));

    // --if-no-admin: nothing happens now that an admin exists.
    let out = rampart(
        &[
            "create-admin",
            "--username",
            "second",
            "--email",
            "s@example.org",
            "--if-no-admin",
        ],
        &env,
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already exists"));
    assert_eq!(users(&db).len(), 1);

    // --password-stdin, policy enforced.
    let run = |password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args([
                "create-admin",
                "--username",
                "stdin_admin",
                "--email",
                "in@example.org",
                "--password-stdin",
            ])
            .env_clear()
            .env("RAMPART_CONFIG_DIR", config_dir())
            .envs(&env)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let weak = run("password");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let ok = run("a sturdy admin passphrase 2026");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&ok.stdout).contains("sturdy"),
        "a given password is never echoed"
    );
    assert_eq!(users(&db).len(), 2);
}

fn write_csv(content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "rampart-import-{}.csv",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn import_checks_the_whole_file_first() {
    let db = TestDb::new();
    let env = env_for(&db);
    let bcrypt_hash = bcrypt::hash_with_salt("imported password 1", 10, [1u8; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let bad = write_csv(&format!(
        "username,email,password_hash,role\n\
         good_one,good@example.org,{bcrypt_hash},team_member\n\
         x,bad-email,plaintext-password,emperor\n\
         good_two,good@example.org,{bcrypt_hash}\n\
         only,two\n"
    ));
    let out = rampart(&["users", "import", bad.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 3: username",
        "line 3: email",
        "line 3: password_hash",
        "line 3: role",
        "line 4: email appears earlier",
        "line 5: has 2 fields",
        "nothing was imported",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(users(&db).is_empty(), "no partial import");

    let argon = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8dQ1Q1B2c6y2b0l3m8WZ0o4q1G4Bv8V7yq8wQkQyY6s";
    let good = write_csv(&format!(
        "alice_imp,alice@example.org,{bcrypt_hash},admin\nbob_imp,bob@example.org,{bcrypt_hash}\ncarl_imp,carl@example.org,{argon},demo\n"
    ));
    let out = rampart(&["users", "import", good.to_str().unwrap()], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 3 user(s)"));
    let rows = users(&db);
    assert_eq!(rows.len(), 3);
    let names: Vec<_> = rows.iter().map(|r| r.username.as_str()).collect();
    assert_eq!(names, ["alice_imp", "bob_imp", "carl_imp"]);
    assert_eq!(rows[0].role, "admin");
    assert_eq!(rows[1].role, "team_member");
    assert_eq!(rows[2].role, "demo");
    assert_eq!(
        rows[1].password_hash, bcrypt_hash,
        "hashes are kept as they were"
    );

    // Importing the same people again: every row conflicts, nothing changes.
    let out = rampart(&["users", "import", good.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already taken"));
    assert_eq!(users(&db).len(), 3);
}

#[test]
fn create_admin_promote_makes_an_existing_account_an_operator_granted_admin() {
    let db = TestDb::new();
    let mut env = env_for(&db);
    env.insert("SUPER_ADMIN_EMAIL".into(), "chief@example.org".into());
    {
        let mut conn = db.connect();
        diesel::sql_query(
            "INSERT INTO users (id, username, email, password_hash, role, created_at, updated_at) \
             VALUES (gen_random_uuid(), 'chief', 'chief@example.org', 'x', 'team_member', now(), now())",
        )
        .execute(&mut conn)
        .unwrap();
    }
    // Unknown account: one line, exit 1, nothing changed.
    let out = rampart(&["create-admin", "--promote", "nobody"], &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nobody"), "{stderr}");
    // --promote does not mix with creating an account.
    let out = rampart(
        &["create-admin", "--promote", "chief", "--username", "x"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    // By email, any case.
    let out = rampart(&["create-admin", "--promote", "Chief@Example.org"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("chief"));
    #[derive(QueryableByName)]
    struct Granted {
        #[diesel(sql_type = diesel::sql_types::Text)]
        role: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        admin_granted_by: Option<String>,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        audited: i64,
    }
    let mut conn = db.connect();
    let row: Granted = diesel::sql_query(
        "SELECT role, admin_granted_by, \
         (SELECT count(*) FROM audit_logs WHERE action = 'user.role_changed' \
          AND actor_type = 'system') AS audited \
         FROM users WHERE username = 'chief'",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(row.role, "admin");
    assert_eq!(row.admin_granted_by.as_deref(), Some("operator"));
    assert_eq!(row.audited, 1);
}
