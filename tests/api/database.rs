//! Pool behaviour against a real Postgres: broken connections are discarded and the service
//! recovers by itself; migrations revert cleanly.

use diesel::prelude::*;
use diesel::sql_query;

use rampart::db::migrations;

use crate::support::{TestDb, app, db::admin_connection};

fn terminate_backends(db_name: &str) -> usize {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        #[allow(dead_code)]
        t: bool,
    }
    let mut admin = admin_connection();
    sql_query(format!(
        "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
    ))
    .load::<Row>(&mut admin)
    .unwrap()
    .len()
}

#[actix_web::test]
async fn service_recovers_after_backends_are_terminated() {
    let app = app().env("DATABASE_POOL_SIZE", "4").spawn().await;
    // Fill the pool with several live connections.
    let warm: Vec<_> = (0..8).map(|_| app.get("/ready")).collect();
    for res in futures_util::future::join_all(warm).await {
        assert_eq!(res.status(), 200);
    }
    let db_name = app.db.as_ref().unwrap().name.clone();
    let killed = terminate_backends(&db_name);
    assert!(killed >= 1, "expected pooled connections to kill");

    // At most one request may see the dead connection (as a clean 503); the pool then re-checks
    // every older idle connection, so the rest succeed without a per-checkout ping.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.get("/ready").await.status().as_u16());
    }
    let failures = statuses.iter().filter(|s| **s != 200).count();
    assert!(failures <= 1, "statuses after termination: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(*statuses.last().unwrap(), 200);
}

#[test]
fn migrations_go_up_down_and_up_again() {
    let db = TestDb::empty();
    let mut conn = db.connect();
    let applied = migrations::run_pending(&mut conn).unwrap();
    assert!(!applied.is_empty());
    assert!(!migrations::has_pending(&mut conn).unwrap());
    let reverted = migrations::revert_all(&mut conn).unwrap();
    assert_eq!(reverted.len(), applied.len());
    assert!(migrations::has_pending(&mut conn).unwrap());
    let again = migrations::run_pending(&mut conn).unwrap();
    assert_eq!(again, applied);
}
