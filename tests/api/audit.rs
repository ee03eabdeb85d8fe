//! The audit log against a real Postgres: in-transaction semantics, scrubbing, the hash chain
//! under concurrency, tamper detection, retention, the append-only triggers, aggregation and the
//! `rampart audit` commands.

use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_query;
use diesel::sql_types::BigInt;
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

use rampart::audit::{
    self, Action, Actor, AuditKey, AuditQuery, AuditRow, Auditor, Event, FailureKind, Outcome,
    PruneReport, RequestMeta, VerifyReport, chain, scrub,
};
use rampart::db::schema::audit_logs;

use crate::support::TestDb;

const SECRET: &str = "audit-test-secret-4mK9pQ2rT7vX1zB8nC3dF6gH0jL5wY";

fn key() -> AuditKey {
    AuditKey::derive(&SecretString::from(SECRET))
}

fn auditor() -> Auditor {
    Auditor::new(key(), true)
}

/// An auditor whose clock reads `seconds` (Unix time), which the test moves.
fn auditor_at(seconds: &Arc<AtomicI64>) -> Auditor {
    let seconds = seconds.clone();
    auditor().with_clock(move || {
        OffsetDateTime::from_unix_timestamp(seconds.load(Ordering::SeqCst)).unwrap()
    })
}

fn meta() -> RequestMeta {
    RequestMeta {
        ip: Some("203.0.113.9".parse().unwrap()),
        user_agent: Some("test-agent/1.0".into()),
        request_id: Some("req-1".into()),
        server_request_id: Some("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into()),
    }
}

fn failed_login(n: i64) -> Event {
    Event::new(
        Action::AuthLoginFailed,
        Outcome::Failure,
        Actor::anonymous(),
    )
    .metadata(json!({ "n": n, "login": format!("user{n}") }))
}

fn write(conn: &mut PgConnection, auditor: &Auditor, n: i64) -> Vec<i64> {
    (1..=n)
        .map(|i| {
            auditor
                .record_standalone(conn, &meta(), failed_login(i))
                .unwrap()
                .unwrap()
        })
        .collect()
}

#[derive(QueryableByName)]
struct Scalar {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn scalar(conn: &mut PgConnection, sql: &str) -> i64 {
    sql_query(sql).get_result::<Scalar>(conn).unwrap().n
}

fn audit_rows(conn: &mut PgConnection) -> i64 {
    audit_logs::table.count().get_result(conn).unwrap()
}

/// Runs `sql` the way a superuser who bypasses the triggers would.
fn tamper(conn: &mut PgConnection, sql: &str) {
    conn.batch_execute(&format!(
        "SET session_replication_role = replica; {sql}; SET session_replication_role = DEFAULT;"
    ))
    .unwrap();
}

fn verified(conn: &mut PgConnection, auditor: &Auditor) -> VerifyReport {
    auditor.verify(conn).unwrap()
}

fn failure_of(conn: &mut PgConnection, auditor: &Auditor) -> (FailureKind, Option<i64>, String) {
    let report = verified(conn, auditor);
    let failure = report.failure.expect("verification should fail");
    (failure.kind, failure.row_id, failure.message)
}

fn setup_widgets(conn: &mut PgConnection) {
    conn.batch_execute("CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL UNIQUE)")
        .unwrap();
}

fn widgets(conn: &mut PgConnection) -> i64 {
    scalar(conn, "SELECT count(*) AS n FROM widgets")
}

fn add_widget(conn: &mut PgConnection, name: &str) -> QueryResult<usize> {
    sql_query("INSERT INTO widgets (name) VALUES ($1)")
        .bind::<diesel::sql_types::Text, _>(name)
        .execute(conn)
}

// --- in-transaction semantics -------------------------------------------------------------------

#[test]
fn a_committed_change_always_has_its_audit_row() {
    let db = TestDb::new();
    let mut conn = db.connect();
    setup_widgets(&mut conn);
    let auditor = auditor();
    let user = uuid::Uuid::now_v7();
    let id = conn
        .transaction::<_, DieselError, _>(|conn| {
            add_widget(conn, "w1")?;
            auditor.record(
                conn,
                &meta(),
                Event::new(Action::UserUpdated, Outcome::Success, Actor::user(user))
                    .target("widget", 1)
                    .metadata(json!({ "changed": ["name"] })),
            )
        })
        .unwrap()
        .unwrap();
    assert_eq!(widgets(&mut conn), 1);
    let entry = audit::get(&mut conn, id).unwrap().unwrap();
    assert_eq!(entry.action, "user.updated");
    assert_eq!(entry.action(), Some(Action::UserUpdated));
    assert_eq!(entry.outcome, "success");
    assert_eq!(entry.actor_type, "user");
    assert_eq!(entry.actor_id, Some(user.to_string()));
    assert_eq!(entry.target_type.as_deref(), Some("widget"));
    assert_eq!(entry.target_id.as_deref(), Some("1"));
    assert_eq!(entry.ip, Some("203.0.113.9".parse::<IpAddr>().unwrap()));
    assert_eq!(entry.user_agent.as_deref(), Some("test-agent/1.0"));
    assert_eq!(entry.request_id.as_deref(), Some("req-1"));
    assert_eq!(entry.metadata, json!({ "changed": ["name"] }));
    assert!(verified(&mut conn, &auditor).is_ok());
}

#[test]
fn a_rolled_back_change_leaves_no_audit_row() {
    let db = TestDb::new();
    let mut conn = db.connect();
    setup_widgets(&mut conn);
    let auditor = auditor();
    // Rolled back on purpose after recording.
    let result = conn.transaction::<(), DieselError, _>(|conn| {
        add_widget(conn, "w1")?;
        auditor.record(conn, &meta(), failed_login(1))?;
        Err(DieselError::RollbackTransaction)
    });
    assert!(result.is_err());
    // Rolled back because a later statement of the same use-case failed.
    add_widget(&mut conn, "taken").unwrap();
    let result = conn.transaction::<(), DieselError, _>(|conn| {
        auditor.record(conn, &meta(), failed_login(2))?;
        add_widget(conn, "taken")?;
        Ok(())
    });
    assert!(result.is_err());
    assert_eq!(widgets(&mut conn), 1);
    assert_eq!(audit_rows(&mut conn), 0);
    // Rolled-back appends leave no gap: the next row is id 1 and the chain verifies.
    let ids = write(&mut conn, &auditor, 1);
    assert_eq!(ids, vec![1]);
    assert!(verified(&mut conn, &auditor).is_ok());
}

#[test]
fn record_needs_the_callers_transaction_and_standalone_refuses_one() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    assert!(matches!(
        auditor.record(&mut conn, &meta(), failed_login(1)),
        Err(DieselError::NotInTransaction)
    ));
    let inside = conn.transaction::<_, DieselError, _>(|conn| {
        Ok(auditor.record_standalone(conn, &meta(), failed_login(2)))
    });
    assert!(matches!(inside, Ok(Err(DieselError::AlreadyInTransaction))));
    assert_eq!(audit_rows(&mut conn), 0);
}

#[test]
fn a_standalone_event_is_recorded_without_a_surrounding_change() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    let id = auditor
        .record_standalone(&mut conn, &meta(), failed_login(1))
        .unwrap()
        .unwrap();
    let entry = audit::get(&mut conn, id).unwrap().unwrap();
    assert_eq!(entry.action, "auth.login.failed");
    assert_eq!(entry.outcome, "failure");
    assert_eq!(entry.actor_type, "anonymous");
    assert_eq!(entry.actor_id, None);
}

#[test]
fn a_disabled_auditor_records_nothing() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = Auditor::new(key(), false);
    assert_eq!(
        auditor
            .record_standalone(&mut conn, &meta(), failed_login(1))
            .unwrap(),
        None
    );
    let in_tx = conn
        .transaction::<_, DieselError, _>(|conn| auditor.record(conn, &meta(), failed_login(2)))
        .unwrap();
    assert_eq!(in_tx, None);
    assert_eq!(
        auditor
            .record_aggregated(&mut conn, &meta(), failed_login(3))
            .unwrap(),
        None
    );
    assert_eq!(audit_rows(&mut conn), 0);
}

// --- scrubbing ----------------------------------------------------------------------------------

#[test]
fn nested_secrets_are_redacted_before_they_are_stored() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    let metadata = json!({
        "login": "alice",
        "password": "Tr0ub4dor&3-plaintext",
        "request": {
            "headers": {"Authorization": "Bearer live-token-abc", "X-Api-Key": "rk_secretvalue"},
            "body": {"user": {"new_password": "n3w-plaintext", "profile": {"apiKey": "k-123"}}},
            "jar": [{"name": "sid", "cookie": "session-cookie-value"}],
            "cookies": ["whole-container-redacted"]
        },
        "refresh_token": {"nested": "object-value"},
        "client_secret": 12345,
        "key_id": "0190-key-id",
        "token_type": "Bearer",
    });
    let id = auditor
        .record_standalone(
            &mut conn,
            &meta(),
            Event::new(
                Action::AuthLoginFailed,
                Outcome::Failure,
                Actor::anonymous(),
            )
            .metadata(metadata),
        )
        .unwrap()
        .unwrap();
    let entry = audit::get(&mut conn, id).unwrap().unwrap();
    let m = &entry.metadata;
    assert_eq!(m["login"], "alice");
    assert_eq!(m["password"], scrub::REDACTED);
    assert_eq!(m["request"]["headers"]["Authorization"], scrub::REDACTED);
    assert_eq!(m["request"]["headers"]["X-Api-Key"], scrub::REDACTED);
    assert_eq!(
        m["request"]["body"]["user"]["new_password"],
        scrub::REDACTED
    );
    assert_eq!(
        m["request"]["body"]["user"]["profile"]["apiKey"],
        scrub::REDACTED
    );
    assert_eq!(m["request"]["jar"][0]["cookie"], scrub::REDACTED);
    assert_eq!(m["request"]["jar"][0]["name"], "sid");
    assert_eq!(m["request"]["cookies"], scrub::REDACTED);
    assert_eq!(m["refresh_token"], scrub::REDACTED);
    assert_eq!(m["client_secret"], scrub::REDACTED);
    assert_eq!(m["key_id"], "0190-key-id");
    assert_eq!(m["token_type"], "Bearer");
    // Nothing secret reached the database in any form.
    let stored: String = audit_logs::table
        .select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "metadata::text",
        ))
        .filter(audit_logs::id.eq(id))
        .first(&mut conn)
        .unwrap();
    for secret in [
        "Tr0ub4dor",
        "live-token",
        "rk_secretvalue",
        "n3w-plaintext",
        "k-123",
        "session-cookie-value",
        "object-value",
        "whole-container-redacted",
        "12345",
    ] {
        assert!(!stored.contains(secret), "{secret} leaked into {stored}");
    }
}

#[test]
fn hostile_strings_are_stored_and_returned_verbatim_but_bounded() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    let hostile = "'; DROP TABLE audit_logs; --\n<script>alert(1)</script>\x1b[2J\u{202e}gnp.exe\r\t\u{7f}\u{feff}\u{1F600}\\\"";
    let short_hostile = "<b>'\"\x1b[0m\u{202e}\n";
    let long_ua = format!("{hostile}{}", "A".repeat(10_000));
    let mut deep = json!("bottom");
    for _ in 0..1000 {
        deep = json!({ "d": deep });
    }
    let meta = RequestMeta {
        ip: Some("2001:db8::1".parse().unwrap()),
        user_agent: Some(long_ua.clone()),
        request_id: Some(hostile.to_string()),
        server_request_id: None,
    };
    let event = Event::new(Action::WebhookRejected, Outcome::Denied, Actor::anonymous())
        .target(short_hostile, hostile)
        .metadata(json!({
            "verbatim": hostile,
            hostile: "as a key",
            "nul": "before\0after",
            "huge": "x".repeat(1_000_000),
            "deep": deep,
            "surrogate_body": scrub::parse_untrusted_json(br#"{"a":"\ud800 lone"}"#),
            "invalid_utf8_body": scrub::parse_untrusted_json(b"{\"a\":\"\xff\xfe\"}"),
            "deep_body": scrub::parse_untrusted_json("[".repeat(100_000).as_bytes()),
        }));
    let id = auditor
        .record_standalone(&mut conn, &meta, event)
        .unwrap()
        .unwrap();
    let entry = audit::get(&mut conn, id).unwrap().unwrap();
    let m = &entry.metadata;
    assert_eq!(m["verbatim"], hostile);
    assert_eq!(m[hostile], "as a key");
    assert_eq!(m["nul"], "before\u{FFFD}after");
    assert_eq!(entry.target_type.as_deref(), Some(short_hostile));
    assert_eq!(entry.target_id.as_deref(), Some(hostile));
    assert_eq!(entry.request_id.as_deref(), Some(hostile));
    assert_eq!(entry.ip, Some("2001:db8::1".parse::<IpAddr>().unwrap()));
    let ua = entry.user_agent.unwrap();
    assert_eq!(ua.chars().count(), scrub::MAX_USER_AGENT_CHARS);
    assert!(ua.starts_with(hostile));
    assert!(ua.ends_with(scrub::TRUNCATED));
    let huge = m["huge"].as_str().unwrap();
    assert!(huge.chars().count() <= scrub::MAX_STRING_CHARS);
    assert!(huge.ends_with(scrub::TRUNCATED));
    assert!(
        m["surrogate_body"]["unparsed"]
            .as_str()
            .unwrap()
            .contains(r"\ud800 lone")
    );
    assert!(
        m["invalid_utf8_body"]["unparsed"]
            .as_str()
            .unwrap()
            .contains('\u{FFFD}')
    );
    assert!(m["deep_body"]["unparsed"].is_string());
    let mut depth = 0;
    let mut cursor = &m["deep"];
    while let Some(next) = cursor.get("d") {
        cursor = next;
        depth += 1;
    }
    assert!(depth < scrub::MAX_DEPTH, "depth {depth}");
    let row_bytes = scalar(
        &mut conn,
        &format!("SELECT pg_column_size(a.*)::bigint AS n FROM audit_logs a WHERE id = {id}"),
    );
    assert!(row_bytes < 64 * 1024, "row is {row_bytes} bytes");
    // The chain still verifies over all of it.
    assert!(verified(&mut conn, &auditor).is_ok());
}

#[test]
fn metadata_numbers_and_key_order_survive_jsonb_and_verify() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    let metadata: Value = serde_json::from_str(
        r#"{"zeta": 1, "a": 2, "ab": 3, "é": 4, "Z": 5, "1e16": 1e16, "neg_zero": -0.0,
            "tenth": 0.1, "tiny": 1.5e-7, "big": 1e300, "five": 5.0, "u64": 18446744073709551615,
            "i64": -9223372036854775808, "two64": 18446744073709551616.0,
            "nested": {"b": [1.0, 2.5, {"y": null, "x": true}], "a": "s"}}"#,
    )
    .unwrap();
    auditor
        .record_standalone(
            &mut conn,
            &meta(),
            Event::new(Action::DataExported, Outcome::Success, Actor::system()).metadata(metadata),
        )
        .unwrap();
    let report = verified(&mut conn, &auditor);
    assert!(report.is_ok(), "{report}");
}

// --- the chain under concurrency -----------------------------------------------------------------

#[test]
fn sixteen_concurrent_writers_build_one_unbroken_chain() {
    let db = TestDb::new();
    let auditor = auditor();
    let mut setup = db.connect();
    setup_widgets(&mut setup);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let url = db.url.clone();
            let auditor = auditor.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                for i in 0..25 {
                    if i % 2 == 0 {
                        auditor
                            .record_standalone(&mut conn, &meta(), failed_login(t * 100 + i))
                            .unwrap();
                    } else {
                        conn.transaction::<_, DieselError, _>(|conn| {
                            add_widget(conn, &format!("w{t}-{i}"))?;
                            auditor.record(
                                conn,
                                &meta(),
                                Event::new(Action::UserUpdated, Outcome::Success, Actor::system())
                                    .target("widget", format!("w{t}-{i}")),
                            )
                        })
                        .unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut conn = db.connect();
    assert_eq!(audit_rows(&mut conn), 400);
    assert_eq!(scalar(&mut conn, "SELECT min(id) AS n FROM audit_logs"), 1);
    assert_eq!(
        scalar(&mut conn, "SELECT max(id) AS n FROM audit_logs"),
        400
    );
    // Every row links to its predecessor (checked without the verifier too).
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) AS n FROM audit_logs a JOIN audit_logs b ON b.id = a.id + 1 \
             WHERE b.prev_hash <> a.hash"
        ),
        0
    );
    let report = verified(&mut conn, &auditor);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_verified, 400);
    assert_eq!(report.head.as_ref().unwrap().0, 400);
}

// --- tamper detection ----------------------------------------------------------------------------

#[test]
fn verify_detects_an_update_by_a_superuser_who_bypassed_the_trigger() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    write(&mut conn, &auditor, 10);
    assert!(verified(&mut conn, &auditor).is_ok());
    tamper(
        &mut conn,
        "UPDATE audit_logs SET metadata = '{\"n\": 4, \"login\": \"someone-else\"}' WHERE id = 4",
    );
    let (kind, row, message) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Edited, Some(4)), "{message}");
    let report = verified(&mut conn, &auditor);
    assert_eq!(report.rows_verified, 3);
    assert!(
        report.to_string().starts_with("FAILED: row 4: edited"),
        "{report}"
    );

    // Re-dating a row is an edit too.
    let db = TestDb::new();
    let mut conn = db.connect();
    write(&mut conn, &auditor, 5);
    tamper(
        &mut conn,
        "UPDATE audit_logs SET occurred_at = occurred_at - interval '1 day' WHERE id = 2",
    );
    assert_eq!(failure_of(&mut conn, &auditor).0, FailureKind::Edited);
}

#[test]
fn verify_detects_a_deleted_row() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    write(&mut conn, &auditor, 10);
    tamper(&mut conn, "DELETE FROM audit_logs WHERE id = 5");
    let (kind, row, message) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Deleted, Some(6)));
    assert!(message.contains("row 5 is missing"), "{message}");

    // The oldest rows, without a checkpoint.
    tamper(&mut conn, "DELETE FROM audit_logs WHERE id <= 2");
    let (kind, row, message) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Deleted, Some(3)));
    assert!(message.contains("rows 1..=2"), "{message}");
}

#[test]
fn verify_detects_a_swapped_pair() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    write(&mut conn, &auditor, 10);
    tamper(
        &mut conn,
        "UPDATE audit_logs SET id = 1000000 WHERE id = 3; \
         UPDATE audit_logs SET id = 3 WHERE id = 4; \
         UPDATE audit_logs SET id = 4 WHERE id = 1000000",
    );
    let (kind, row, message) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Reordered, Some(3)));
    assert!(message.contains("written as row 4"), "{message}");
}

fn forged_row(id: i64, prev_hash: Vec<u8>) -> AuditRow {
    let mut row = AuditRow {
        id,
        occurred_at: datetime!(2026-01-01 0:00 UTC),
        actor_type: "admin".into(),
        actor_id: Some(uuid::Uuid::now_v7().to_string()),
        action: "admin.login.succeeded".into(),
        outcome: "success".into(),
        target_type: None,
        target_id: None,
        ip: Some("198.51.100.1/32".parse().unwrap()),
        user_agent: None,
        request_id: None,
        server_request_id: None,
        metadata: json!({}),
        prev_hash,
        hash: Vec::new(),
    };
    // Hashed correctly, but with a key the forger made up.
    let forger = AuditKey::derive(&SecretString::from("not-the-real-secret-key-0123456789"));
    row.hash = chain::row_hash(&forger, &row).to_vec();
    row
}

fn stored_hash(conn: &mut PgConnection, id: i64) -> Vec<u8> {
    audit_logs::table
        .select(audit_logs::hash)
        .filter(audit_logs::id.eq(id))
        .first(conn)
        .unwrap()
}

#[test]
fn verify_detects_a_forged_inserted_row() {
    let auditor = auditor();
    // Appended after the real head (no trigger bypass needed to INSERT).
    let db = TestDb::new();
    let mut conn = db.connect();
    write(&mut conn, &auditor, 10);
    let head = stored_hash(&mut conn, 10);
    audit::store::insert_row(&mut conn, &forged_row(11, head)).unwrap();
    let (kind, row, message) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Inserted, Some(11)), "{message}");

    // Slipped into the middle in place of a deleted row, linked to its predecessor.
    let db = TestDb::new();
    let mut conn = db.connect();
    write(&mut conn, &auditor, 10);
    tamper(&mut conn, "DELETE FROM audit_logs WHERE id = 5");
    let prev = stored_hash(&mut conn, 4);
    audit::store::insert_row(&mut conn, &forged_row(5, prev)).unwrap();
    let (kind, row, message) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Inserted, Some(5)), "{message}");

    // The app keeps appending after a forged row; verify still names it.
    auditor
        .record_standalone(&mut conn, &meta(), failed_login(99))
        .unwrap();
    assert_eq!(failure_of(&mut conn, &auditor).1, Some(5));
}

// --- retention -----------------------------------------------------------------------------------

const DAY: i64 = 86_400;
const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Ten rows, one a day from 2026-01-01.
fn ten_days(conn: &mut PgConnection, clock: &Arc<AtomicI64>) -> Auditor {
    let auditor = auditor_at(clock);
    for day in 0..10 {
        clock.store(T0 + day * DAY, Ordering::SeqCst);
        auditor
            .record_standalone(conn, &meta(), failed_login(day + 1))
            .unwrap();
    }
    clock.store(T0 + 30 * DAY, Ordering::SeqCst);
    auditor
}

#[test]
fn prune_keeps_the_rest_verifiable_and_tamper_evident() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let clock = Arc::new(AtomicI64::new(T0));
    let auditor = ten_days(&mut conn, &clock);

    let report = auditor
        .prune(&mut conn, datetime!(2026-01-06 0:00 UTC))
        .unwrap();
    let PruneReport::Pruned {
        rows,
        through_id,
        checkpoint_id,
        ..
    } = report.clone()
    else {
        panic!("expected a prune: {report}");
    };
    assert_eq!((rows, through_id), (5, 5));
    assert_eq!(scalar(&mut conn, "SELECT min(id) AS n FROM audit_logs"), 6);
    // Rows 6..=10 plus the audit.pruned row (11).
    let report = verified(&mut conn, &auditor);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_verified, 6);
    let checkpoint = report.checkpoint.unwrap();
    assert_eq!(
        (checkpoint.id, checkpoint.last_pruned_id),
        (checkpoint_id, 5)
    );
    let pruned = audit::get(&mut conn, 11).unwrap().unwrap();
    assert_eq!(pruned.action, "audit.pruned");
    assert_eq!(pruned.metadata["pruned_count"], 5);

    // Nothing older left: a second prune at the same date has nothing to do.
    assert!(matches!(
        auditor
            .prune(&mut conn, datetime!(2026-01-06 0:00 UTC))
            .unwrap(),
        PruneReport::NothingToPrune { .. }
    ));
    // A second prune chains a second checkpoint; still verifies.
    assert!(matches!(
        auditor
            .prune(&mut conn, datetime!(2026-01-08 0:00 UTC))
            .unwrap(),
        PruneReport::Pruned {
            rows: 2,
            through_id: 7,
            ..
        }
    ));
    assert!(verified(&mut conn, &auditor).is_ok());

    // Tampering with what remains is still detected.
    tamper(
        &mut conn,
        "UPDATE audit_logs SET outcome = 'success' WHERE id = 9",
    );
    let (kind, row, _) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Edited, Some(9)));
}

#[test]
fn after_prune_deleting_the_first_kept_row_or_the_checkpoint_is_detected() {
    let clock = Arc::new(AtomicI64::new(T0));

    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = ten_days(&mut conn, &clock);
    auditor
        .prune(&mut conn, datetime!(2026-01-04 0:00 UTC))
        .unwrap();
    tamper(&mut conn, "DELETE FROM audit_logs WHERE id = 4");
    let (kind, row, _) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Deleted, Some(5)));

    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = ten_days(&mut conn, &clock);
    auditor
        .prune(&mut conn, datetime!(2026-01-04 0:00 UTC))
        .unwrap();
    tamper(&mut conn, "DELETE FROM audit_checkpoints");
    let (kind, row, _) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Deleted, Some(4)));

    // A forged checkpoint that hides more deleted rows.
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = ten_days(&mut conn, &clock);
    auditor
        .prune(&mut conn, datetime!(2026-01-04 0:00 UTC))
        .unwrap();
    let hash6 = hex::encode(stored_hash(&mut conn, 6));
    tamper(
        &mut conn,
        &format!(
            "DELETE FROM audit_logs WHERE id <= 6; \
             UPDATE audit_checkpoints SET last_pruned_id = 6, last_pruned_hash = '\\x{hash6}'"
        ),
    );
    let (kind, _, message) = failure_of(&mut conn, &auditor);
    assert_eq!(kind, FailureKind::Checkpoint, "{message}");

    // A row put back below the checkpoint.
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = ten_days(&mut conn, &clock);
    auditor
        .prune(&mut conn, datetime!(2026-01-04 0:00 UTC))
        .unwrap();
    audit::store::insert_row(&mut conn, &forged_row(2, vec![0; 32])).unwrap();
    let (kind, row, _) = failure_of(&mut conn, &auditor);
    assert_eq!((kind, row), (FailureKind::Inserted, Some(2)));
}

#[test]
fn prune_refuses_a_chain_that_does_not_verify() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let clock = Arc::new(AtomicI64::new(T0));
    let auditor = ten_days(&mut conn, &clock);
    tamper(
        &mut conn,
        "UPDATE audit_logs SET actor_type = 'admin' WHERE id = 2",
    );
    let report = auditor
        .prune(&mut conn, datetime!(2026-01-06 0:00 UTC))
        .unwrap();
    assert!(
        matches!(&report, PruneReport::Refused(f) if f.kind == FailureKind::Edited && f.row_id == Some(2)),
        "{report}"
    );
    assert_eq!(audit_rows(&mut conn), 10);
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) AS n FROM audit_checkpoints"),
        0
    );
}

#[test]
fn appends_continue_from_the_checkpoint_when_everything_was_pruned() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let clock = Arc::new(AtomicI64::new(T0));
    let auditor = ten_days(&mut conn, &clock);
    // A disabled auditor writes no audit.pruned row, so the table ends up empty.
    let quiet = Auditor::new(key(), false);
    let report = quiet
        .prune(&mut conn, datetime!(2027-01-01 0:00 UTC))
        .unwrap();
    assert!(
        matches!(report, PruneReport::Pruned { rows: 10, .. }),
        "{report}"
    );
    assert_eq!(audit_rows(&mut conn), 0);
    assert!(verified(&mut conn, &auditor).is_ok());
    let ids = write(&mut conn, &auditor, 2);
    assert_eq!(ids, vec![11, 12]);
    let report = verified(&mut conn, &auditor);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_verified, 2);
}

// --- the append-only triggers --------------------------------------------------------------------

/// A non-superuser role for the duration of a test; dropped afterwards.
struct TempRole {
    name: String,
    url: String,
}

impl TempRole {
    fn new(conn: &mut PgConnection, db: &TestDb, grants: &str) -> TempRole {
        let name = format!("rampart_role_{}", uuid::Uuid::now_v7().simple());
        conn.batch_execute(&format!(
            "CREATE ROLE {name} NOLOGIN NOSUPERUSER; {}",
            grants.replace("{role}", &name)
        ))
        .unwrap();
        TempRole {
            name,
            url: db.url.clone(),
        }
    }
}

impl Drop for TempRole {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.url) {
            let _ = conn.batch_execute(&format!(
                "RESET ROLE; DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}",
                self.name
            ));
        }
    }
}

fn error_of(conn: &mut PgConnection, sql: &str) -> String {
    match conn.batch_execute(sql) {
        Ok(()) => panic!("`{sql}` was allowed"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_trigger_blocks_update_and_delete_from_the_app_role() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    write(&mut conn, &auditor, 3);
    auditor
        .record_aggregated(&mut conn, &meta(), failed_login(9))
        .unwrap();
    let role = TempRole::new(
        &mut conn,
        &db,
        "GRANT ALL ON audit_logs, audit_checkpoints, audit_aggregates TO {role}; \
         GRANT ALL ON SEQUENCE audit_checkpoints_id_seq TO {role}",
    );
    conn.batch_execute(&format!("SET ROLE {}", role.name))
        .unwrap();
    for sql in [
        "UPDATE audit_logs SET outcome = 'success' WHERE id = 1",
        "UPDATE audit_logs SET metadata = '{}'",
        "DELETE FROM audit_logs WHERE id = 3",
        "DELETE FROM audit_logs",
        "TRUNCATE audit_logs CASCADE",
        "TRUNCATE audit_checkpoints",
        "INSERT INTO audit_checkpoints (created_at, pruned_before, last_pruned_id, last_pruned_hash, pruned_count, prev_mac, mac) \
         VALUES (now(), now(), 1, '\\x00', 1, '\\x00', '\\x00')",
        "UPDATE audit_aggregates SET event_count = 0",
        "UPDATE audit_aggregates SET log_id = 1",
        "DELETE FROM audit_aggregates",
    ] {
        let error = error_of(&mut conn, sql);
        assert!(
            error.contains("append-only")
                || error.contains("audit_aggregates")
                || error.contains("check constraint"),
            "{sql}: {error}"
        );
    }
    // A DELETE of rows beyond what the prune setting names is still refused.
    let error = error_of(
        &mut conn,
        "BEGIN; SELECT set_config('rampart.audit_prune_through', '1', true); \
         DELETE FROM audit_logs WHERE id = 2; COMMIT",
    );
    assert!(error.contains("append-only"), "{error}");
    conn.batch_execute("ROLLBACK; RESET ROLE").unwrap();
    // The superuser is held to the same rules unless it disables the triggers.
    let error = error_of(&mut conn, "UPDATE audit_logs SET outcome = 'success'");
    assert!(error.contains("append-only"), "{error}");
    assert_eq!(audit_rows(&mut conn), 4);
    assert!(verified(&mut conn, &auditor).is_ok());
}

#[test]
fn stricter_grants_deny_delete_even_through_the_prune_setting() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    // The GRANTs documented in the migration for the application role.
    let role = TempRole::new(
        &mut conn,
        &db,
        "GRANT SELECT, INSERT ON audit_logs, audit_checkpoints TO {role}; \
         GRANT SELECT, INSERT, UPDATE ON audit_aggregates TO {role}",
    );
    conn.batch_execute(&format!("SET ROLE {}", role.name))
        .unwrap();
    // The application still works...
    write(&mut conn, &auditor, 3);
    auditor
        .record_aggregated(&mut conn, &meta(), failed_login(4))
        .unwrap();
    auditor
        .record_aggregated(&mut conn, &meta(), failed_login(5))
        .unwrap();
    assert!(verified(&mut conn, &auditor).is_ok());
    // ...but cannot delete, even by setting what prune sets.
    let error = error_of(
        &mut conn,
        "BEGIN; SELECT set_config('rampart.audit_prune_through', '100', true); \
         DELETE FROM audit_logs WHERE id = 1; COMMIT",
    );
    assert!(error.contains("permission denied"), "{error}");
    conn.batch_execute("ROLLBACK").unwrap();
    assert!(
        auditor
            .prune(&mut conn, datetime!(2100-01-01 0:00 UTC))
            .is_err()
    );
    conn.batch_execute("RESET ROLE").unwrap();
    assert_eq!(audit_rows(&mut conn), 4);
}

// --- aggregation ---------------------------------------------------------------------------------

fn rate_limited() -> Event {
    Event::new(
        Action::RateLimitExceeded,
        Outcome::Denied,
        Actor::anonymous(),
    )
    .metadata(json!({ "limit": "60/min" }))
}

#[test]
fn a_hundred_events_from_one_ip_in_one_minute_make_one_row_with_count_100() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let clock = Arc::new(AtomicI64::new(T0 + 10));
    let auditor = auditor_at(&clock);
    let mut ids = Vec::new();
    for i in 0..100 {
        clock.store(T0 + 10 + i / 2, Ordering::SeqCst); // 12:00:10 .. 12:00:59
        ids.push(
            auditor
                .record_aggregated(&mut conn, &meta(), rate_limited())
                .unwrap()
                .unwrap(),
        );
    }
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(audit_rows(&mut conn), 1);
    let entry = audit::get(&mut conn, ids[0]).unwrap().unwrap();
    assert_eq!(entry.metadata["count"], 100);
    assert_eq!(entry.metadata["limit"], "60/min");
    assert_eq!(entry.metadata["aggregate"]["window_seconds"], 60);
    assert_eq!(
        entry.metadata["aggregate"]["window_start"],
        "2026-01-01T00:00:00Z"
    );
    // Same IP next minute, and another IP this minute: one more row each.
    clock.store(T0 + 65, Ordering::SeqCst);
    let next_minute = auditor
        .record_aggregated(&mut conn, &meta(), rate_limited())
        .unwrap()
        .unwrap();
    let other_ip = RequestMeta {
        ip: Some("198.51.100.4".parse().unwrap()),
        ..meta()
    };
    clock.store(T0 + 30, Ordering::SeqCst);
    let other = auditor
        .record_aggregated(&mut conn, &other_ip, rate_limited())
        .unwrap()
        .unwrap();
    assert_eq!((next_minute, other), (2, 3));
    assert_eq!(audit_rows(&mut conn), 3);
    let page = audit::list(
        &mut conn,
        &AuditQuery {
            action: Some(Action::RateLimitExceeded),
            ..AuditQuery::default()
        },
    )
    .unwrap();
    let counts: Vec<Value> = page
        .items
        .iter()
        .map(|e| e.metadata["count"].clone())
        .collect();
    assert_eq!(counts, vec![json!(1), json!(1), json!(100)]);
    // The chain is untouched by the counting.
    let report = verified(&mut conn, &auditor);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_verified, 3);
}

#[test]
fn concurrent_repeated_events_still_make_one_row() {
    let db = TestDb::new();
    let clock = Arc::new(AtomicI64::new(T0 + 5));
    let auditor = auditor_at(&clock);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let url = db.url.clone();
            let auditor = auditor.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                for _ in 0..10 {
                    auditor
                        .record_aggregated(&mut conn, &meta(), rate_limited())
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut conn = db.connect();
    assert_eq!(audit_rows(&mut conn), 1);
    assert_eq!(
        audit::get(&mut conn, 1).unwrap().unwrap().metadata["count"],
        160
    );
    assert!(verified(&mut conn, &auditor).is_ok());
}

// --- reading -------------------------------------------------------------------------------------

#[test]
fn list_filters_and_pages_by_keyset() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    let alice = uuid::Uuid::now_v7();
    for i in 0..7 {
        let ip: IpAddr = if i < 4 {
            format!("10.0.0.{i}").parse().unwrap()
        } else {
            "192.0.2.1".parse().unwrap()
        };
        let actor = if i % 2 == 0 {
            Actor::user(alice)
        } else {
            Actor::anonymous()
        };
        let action = if i < 3 {
            Action::AuthLoginSucceeded
        } else {
            Action::AuthLoginFailed
        };
        auditor
            .record_standalone(
                &mut conn,
                &RequestMeta {
                    ip: Some(ip),
                    ..meta()
                },
                Event::new(action, Outcome::Success, actor).target("user", i),
            )
            .unwrap();
    }
    let ids = |q: AuditQuery, conn: &mut PgConnection| -> Vec<i64> {
        audit::list(conn, &q)
            .unwrap()
            .items
            .iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(
        ids(
            AuditQuery {
                action: Some(Action::AuthLoginSucceeded),
                ..Default::default()
            },
            &mut conn
        ),
        vec![3, 2, 1]
    );
    assert_eq!(
        ids(
            AuditQuery {
                ip: Some("10.0.0.0/8".parse().unwrap()),
                ..Default::default()
            },
            &mut conn
        ),
        vec![4, 3, 2, 1]
    );
    assert_eq!(
        ids(
            AuditQuery {
                actor_type: Some(audit::ActorType::User),
                actor_id: Some(alice.to_string()),
                ..Default::default()
            },
            &mut conn
        ),
        vec![7, 5, 3, 1]
    );
    assert_eq!(
        ids(
            AuditQuery {
                target: Some(("user".into(), "5".into())),
                ..Default::default()
            },
            &mut conn
        ),
        vec![6]
    );
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = audit::list(
            &mut conn,
            &AuditQuery {
                before_id: before,
                limit: 3,
                ..Default::default()
            },
        )
        .unwrap();
        seen.extend(page.items.iter().map(|e| e.id));
        match page.next_before_id {
            Some(id) => before = Some(id),
            None => break,
        }
    }
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
}

// --- the command line ----------------------------------------------------------------------------

fn rampart(db: &TestDb, args: &[&str], secret: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(args)
        .env_clear()
        .env("ENVIRONMENT", "test")
        .env("DATABASE_URL", &db.url)
        .env("RAMPART_CONFIG_DIR", crate::support::config_dir())
        .env("LOG_LEVEL", "error");
    if let Some(secret) = secret {
        cmd.env("SECRET_KEY", secret);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_audit_verify_prints_ok_with_the_row_count_or_the_first_bad_row() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let auditor = auditor();
    write(&mut conn, &auditor, 5);
    let (code, stdout, stderr) = rampart(&db, &["audit", "verify"], Some(SECRET));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("OK: 5 rows verified\n"), "{stdout}");
    assert!(stdout.contains("head: row 5, hash "), "{stdout}");
    // The run itself is audited.
    let entry = audit::get(&mut conn, 6).unwrap().unwrap();
    assert_eq!(entry.action, "audit.verified");
    assert_eq!(entry.metadata["rows_verified"], 5);

    tamper(
        &mut conn,
        "UPDATE audit_logs SET ip = '192.0.2.66' WHERE id = 3",
    );
    let (code, stdout, stderr) = rampart(&db, &["audit", "verify"], Some(SECRET));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("FAILED: row 3: edited"), "{stderr}");

    // The wrong key verifies nothing; no key is refused outright.
    let (code, _, stderr) = rampart(
        &db,
        &["audit", "verify"],
        Some("a-different-secret-key-9f8e7d6c5b4a39281706"),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("FAILED: row 1"), "{stderr}");
    let (code, _, stderr) = rampart(&db, &["audit", "verify"], None);
    assert_eq!(code, 1);
    assert!(stderr.contains("SECRET_KEY"), "{stderr}");
}

#[test]
fn cli_audit_prune_removes_old_rows_and_verify_still_passes() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let clock = Arc::new(AtomicI64::new(T0));
    ten_days(&mut conn, &clock);
    let (code, stdout, stderr) = rampart(
        &db,
        &["audit", "prune", "--before", "2026-01-04"],
        Some(SECRET),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("pruned 3 rows (ids up to 3"), "{stdout}");
    let (code, stdout, stderr) = rampart(&db, &["audit", "verify"], Some(SECRET));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("OK: 8 rows verified"), "{stdout}");
    assert!(stdout.contains("rows up to 3 were pruned"), "{stdout}");

    let (code, _, stderr) = rampart(
        &db,
        &["audit", "prune", "--before", "last tuesday"],
        Some(SECRET),
    );
    assert_eq!(code, 2, "{stderr}");
    tamper(&mut conn, "DELETE FROM audit_logs WHERE id = 6");
    let (code, _, stderr) = rampart(
        &db,
        &["audit", "prune", "--before", "2026-01-09T00:00:00Z"],
        Some(SECRET),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(stderr.contains("row 7: deleted"), "{stderr}");
}

#[test]
fn scoped_aggregates_count_per_scope_and_take_coalesced_occurrences() {
    let db = TestDb::new();
    let mut conn = db.connect();
    let clock = Arc::new(AtomicI64::new(T0 + 10));
    let auditor = auditor_at(&clock);
    let login = auditor
        .record_aggregated_as(&mut conn, &meta(), rate_limited(), "login", 7)
        .unwrap()
        .unwrap();
    let again = auditor
        .record_aggregated_as(&mut conn, &meta(), rate_limited(), "login", 3)
        .unwrap()
        .unwrap();
    let global = auditor
        .record_aggregated_as(&mut conn, &meta(), rate_limited(), "global", 1)
        .unwrap()
        .unwrap();
    let unscoped = auditor
        .record_aggregated(&mut conn, &meta(), rate_limited())
        .unwrap()
        .unwrap();
    assert_eq!(login, again);
    assert_eq!(audit_rows(&mut conn), 3, "one row per scope");
    assert!(login != global && global != unscoped);
    let entry = audit::get(&mut conn, login).unwrap().unwrap();
    assert_eq!(entry.metadata["count"], 10);
    assert_eq!(entry.metadata["aggregate"]["scope"], "login");
    let entry = audit::get(&mut conn, unscoped).unwrap().unwrap();
    assert!(entry.metadata["aggregate"].get("scope").is_none());
    // The scope is part of the immutable key.
    let error = error_of(
        &mut conn,
        "UPDATE audit_aggregates SET scope = 'other' WHERE scope = 'login'",
    );
    assert!(error.contains("only event_count may grow"), "{error}");
    assert!(verified(&mut conn, &auditor).is_ok());
}

// --- over HTTP: dates, request ids, a user's own export ------------------------------------------

/// An app whose ADMIN_EMAILS makes `root` an admin and that believes X-Forwarded-For from the
/// loopback proxy, so the admin and the user can come from different addresses.
async fn admin_app() -> crate::support::TestApp {
    crate::support::app()
        .env("ADMIN_EMAILS", "root@example.org")
        .env("TRUSTED_PROXIES", "127.0.0.1/32")
        .spawn()
        .await
}

fn rows_of(app: &crate::support::TestApp, action: Action) -> Vec<audit::AuditEntry> {
    let mut conn = app.db.as_ref().unwrap().connect();
    audit::list(
        &mut conn,
        &AuditQuery {
            action: Some(action),
            limit: 500,
            ..Default::default()
        },
    )
    .unwrap()
    .items
}

#[actix_web::test]
async fn audit_api_dates_outside_what_postgres_holds_are_422_and_the_edges_work() {
    let app = admin_app().await;
    let root = app.admin_user("root").await;
    let list = |query: &str| {
        let url = format!("/api/v1/admin/audit-logs?{query}");
        let app = &app;
        let token = root.access.clone();
        async move { app.get_auth(&url, &token).await }
    };
    for (query, field) in [
        ("from=-4800-01-01", "from"),
        ("to=9999-12-31T23:59:59-23:59", "to"),
        ("to=9999-12-31T23%3A59%3A59-00%3A01", "to"),
        ("from=-4713-11-23T23:59:59", "from"),
        ("from=-4713-11-23", "from"),
        ("to=%2B10000-01-01", "to"),
        ("to=10000-01-01", "to"),
        ("from=-9999-01-01&to=2026-01-01", "from"),
    ] {
        let res = list(query).await;
        assert_eq!(res.status(), 422, "{query}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json")
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    // The edges themselves are accepted (and bound without trouble).
    for query in [
        "from=-4713-11-24",
        "from=-4713-11-24T00:00",
        "to=9999-12-31T23:59:59.999999Z",
        "to=9999-12-31T23:59:59%2B23:59",
        "from=-4713-11-24&to=9999-12-31",
    ] {
        let res = list(query).await;
        assert_eq!(res.status(), 200, "{query}");
        let body: Value = res.json().await.unwrap();
        assert!(body["items"].is_array(), "{query}: {body}");
    }
    let body: Value = list("from=-4713-11-24&to=9999-12-31T23:59:59.999999Z")
        .await
        .json()
        .await
        .unwrap();
    assert!(!body["items"].as_array().unwrap().is_empty(), "{body}");
}

#[actix_web::test]
async fn a_client_request_id_is_kept_and_the_servers_own_id_is_stored_beside_it() {
    let app = admin_app().await;
    let root = app.admin_user("root").await;
    // Two requests claiming the same id, and one claiming none.
    for (name, claimed) in [
        ("alice", Some("attacker-chosen")),
        ("bob", Some("attacker-chosen")),
        ("carol", None),
    ] {
        let mut req = app
            .client
            .post(app.url("/api/v1/auth/register"))
            .json(&json!({
                "username": name,
                "email": format!("{name}@example.org"),
                "password": crate::support::PASSWORD,
            }));
        if let Some(id) = claimed {
            req = req.header("X-Request-Id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 201);
        if let Some(id) = claimed {
            assert_eq!(
                res.headers()["x-request-id"],
                id,
                "the client's id is echoed"
            );
        }
    }
    let rows = rows_of(&app, Action::UserRegistered);
    let by_name = |name: &str| {
        let id = app.user_id(name);
        rows.iter()
            .find(|r| r.target_id.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no user.registered row for {name}: {rows:?}"))
            .clone()
    };
    let (alice, bob, carol) = (by_name("alice"), by_name("bob"), by_name("carol"));
    for row in [&alice, &bob] {
        assert_eq!(row.request_id.as_deref(), Some("attacker-chosen"));
        let server = row.server_request_id.as_deref().expect("a server id");
        assert_ne!(server, "attacker-chosen");
        let uuid = uuid::Uuid::parse_str(server).expect("the server id is a UUID");
        assert_eq!(uuid.get_version_num(), 7);
    }
    assert_ne!(
        alice.server_request_id, bob.server_request_id,
        "the server's ids tell the two requests apart"
    );
    // Without a client id both columns hold the server's.
    assert!(carol.server_request_id.is_some());
    assert_eq!(carol.request_id, carol.server_request_id);
    // The admin API shows both, and the chain covers the new column.
    let body: Value = app
        .get_auth(
            "/api/v1/admin/audit-logs?action=user.registered",
            &root.access,
        )
        .await
        .json()
        .await
        .unwrap();
    let items = body["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["request_id"] == "attacker-chosen"
        && i["server_request_id"] == alice.server_request_id.clone().unwrap()));
    let report: Value = app
        .get_auth("/api/v1/admin/audit-logs/verify", &root.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], true, "{report}");
    // Clearing or changing the server id of a row is caught.
    let mut conn = app.db.as_ref().unwrap().connect();
    tamper(
        &mut conn,
        &format!(
            "UPDATE audit_logs SET server_request_id = NULL WHERE id = {}",
            alice.id
        ),
    );
    let report: Value = app
        .get_auth("/api/v1/admin/audit-logs/verify", &root.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["failure"]["row_id"], alice.id, "{report}");
}

async fn admin_post(
    app: &crate::support::TestApp,
    token: &str,
    path: &str,
    body: Value,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("User-Agent", "AdminBrowser/9.9 (admin-ua-marker)")
        .header("X-Request-Id", "admin-request-marker")
        .header("X-Forwarded-For", "198.51.100.77")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn export_of(app: &crate::support::TestApp, credential: &str) -> (String, Value) {
    let res = app
        .client
        .get(app.url("/api/v1/me/export"))
        .bearer_auth(credential)
        .header("X-Forwarded-For", "203.0.113.50")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    (text, doc)
}

#[actix_web::test]
async fn a_users_export_holds_their_own_events_and_nothing_about_the_admins() {
    let app = admin_app().await;
    let root = app.admin_user("root").await;
    let root_id = app.user_id("root");
    app.register("alice").await;
    let alice_id = app.user_id("alice");
    let user = |action: &str| format!("/api/v1/admin/users/{alice_id}/{action}");
    for (action, reason) in [
        (
            "disable",
            "Your account sent spam; write to support@example.org",
        ),
        ("enable", "Reviewed and cleared"),
        ("unlock", "Unlocked on request"),
    ] {
        let res = admin_post(
            &app,
            &root.access,
            &user(action),
            json!({ "reason": reason }),
        )
        .await;
        assert_eq!(res.status(), 200, "{action}");
    }
    let alice = app.login("alice").await;
    // One key exports; the other is revoked by the admin with a reason.
    let key = app
        .api_key(&alice.access, "exporter", &["data:export", "profile:read"])
        .await;
    let key_secret = key["key"].as_str().unwrap().to_string();
    let key_id = key["id"].as_str().unwrap().to_string();
    let doomed = app
        .api_key(&alice.access, "old laptop", &["profile:read"])
        .await;
    let doomed_id = doomed["id"].as_str().unwrap().to_string();
    let res = admin_post(
        &app,
        &root.access,
        &format!("/api/v1/admin/api-keys/{doomed_id}/revoke"),
        json!({ "reason": "Key found in a public repository" }),
    )
    .await;
    assert_eq!(res.status(), 204);
    // An export made with the API key is itself an event alice performed.
    export_of(&app, &key_secret).await;
    let (text, doc) = export_of(&app, &alice.access).await;

    // Nothing identifying the admin or their request, anywhere in the document.
    let admin_rows: Vec<audit::AuditEntry> = [
        Action::UserDisabled,
        Action::UserEnabled,
        Action::UserUnlocked,
        Action::ApiKeyRevoked,
    ]
    .into_iter()
    .flat_map(|a| rows_of(&app, a))
    .filter(|r| r.actor_type == "admin")
    .collect();
    assert_eq!(admin_rows.len(), 4, "{admin_rows:?}");
    let mut secrets = vec![
        root_id.clone(),
        "198.51.100.77".to_string(),
        "AdminBrowser".to_string(),
        "admin-ua-marker".to_string(),
        "admin-request-marker".to_string(),
        "root".to_string(),
    ];
    for row in &admin_rows {
        assert_eq!(row.actor_id.as_deref(), Some(root_id.as_str()));
        assert_eq!(row.ip.unwrap().to_string(), "198.51.100.77");
        secrets.push(row.server_request_id.clone().expect("a server id"));
        secrets.push(row.hash.clone());
    }
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "{secret} leaked: {text}");
    }
    // Internal codes and metadata of those rows stay out too.
    for internal in [
        "sessions_revoked",
        "was_locked_until",
        "failed_logins",
        "\"by\"",
        "user_disabled",
    ] {
        assert!(!text.contains(internal), "{internal} leaked: {text}");
    }

    // What was done to alice: action, time and the reason the admin gave, nothing else.
    let others = doc["audit_events_by_others"].as_array().unwrap();
    let reason_of = |action: &str| {
        others
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {others:?}"))["reason"]
            .clone()
    };
    assert_eq!(
        reason_of("user.disabled"),
        "Your account sent spam; write to support@example.org"
    );
    assert_eq!(reason_of("user.enabled"), "Reviewed and cleared");
    assert_eq!(reason_of("user.unlocked"), "Unlocked on request");
    assert_eq!(
        reason_of("api_key.revoked"),
        "Key found in a public repository"
    );
    for event in others {
        let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["action", "occurred_at", "reason"].contains(&k.as_str())),
            "{event}"
        );
        time::OffsetDateTime::parse(
            event["occurred_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
    }

    // What alice did, in full — as herself and with her key.
    let own = doc["audit_events"].as_array().unwrap();
    assert!(own.iter().all(|e| {
        (e["actor_type"] == "user" && e["actor_id"] == alice_id.as_str())
            || (e["actor_type"] == "api_key" && e["actor_id"] == key_id.as_str())
    }));
    let by_key = own
        .iter()
        .find(|e| e["actor_type"] == "api_key" && e["action"] == "user.exported")
        .unwrap_or_else(|| panic!("the export made with the key is missing: {own:?}"));
    assert_eq!(by_key["actor_id"], key_id.as_str());
    assert_eq!(by_key["ip"], "203.0.113.50");
    assert!(own.iter().any(|e| e["action"] == "api_key.created"));
    assert!(own.iter().any(|e| e["action"] == "auth.login.succeeded"));
    assert!(
        doc.get("audit_events_truncated").is_none(),
        "the export is complete: nothing to truncate"
    );
}
