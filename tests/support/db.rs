//! Throwaway databases. The first test of a run migrates a template database (named after the
//! migrations' fingerprint, guarded by an advisory lock so parallel test processes agree); every
//! test then gets `CREATE DATABASE … TEMPLATE …`, which takes milliseconds, and drops it at the end.

use diesel::prelude::*;
use diesel::sql_query;

use rampart::db::migrations;

pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

/// Base server URL without a database name, e.g. `postgres://postgres@127.0.0.1:5432`.
///
/// Unless the URL says otherwise, tests talk to Postgres without TLS (`sslmode=disable`): a
/// Debian cluster has `ssl = on`, and libpq's OpenSSL state torn down by `exit()` while pool
/// threads still hold TLS connections aborted a test process after its test had passed ("double
/// free or corruption", once in four CI runs). The connections are loopback test traffic.
pub fn server_url() -> String {
    let url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    if url.contains("sslmode=") {
        url
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

/// `server` with `/name` inserted before any query string.
pub fn database_url(server: &str, name: &str) -> String {
    match server.split_once('?') {
        Some((base, query)) => format!("{}/{name}?{query}", base.trim_end_matches('/')),
        None => format!("{}/{name}", server.trim_end_matches('/')),
    }
}

pub fn admin_connection() -> PgConnection {
    let url = database_url(&server_url(), "postgres");
    PgConnection::establish(&url).unwrap_or_else(|e| {
        panic!(
            "cannot reach the test Postgres ({url}): {e}; run `make test` or set TEST_DATABASE_URL"
        )
    })
}

fn template_name() -> String {
    format!("rampart_tpl_{}", migrations::FINGERPRINT)
}

fn ensure_template(conn: &mut PgConnection) {
    // Serialise template creation across parallel test processes.
    sql_query("SELECT pg_advisory_lock(727274)")
        .execute(conn)
        .unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let exists = sql_query(format!(
        "SELECT count(*) AS n FROM pg_database WHERE datname = '{}'",
        template_name()
    ))
    .get_result::<Count>(conn)
    .unwrap()
    .n > 0;
    if !exists {
        let building = format!("{}_building", template_name());
        sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .execute(conn)
            .unwrap();
        sql_query(format!("CREATE DATABASE {building}"))
            .execute(conn)
            .unwrap();
        {
            let mut tpl = PgConnection::establish(&database_url(&server_url(), &building)).unwrap();
            migrations::run_pending(&mut tpl).unwrap();
        }
        sql_query(format!(
            "ALTER DATABASE {building} RENAME TO {}",
            template_name()
        ))
        .execute(conn)
        .unwrap();
    }
    sql_query("SELECT pg_advisory_unlock(727274)")
        .execute(conn)
        .unwrap();
}

impl TestDb {
    /// A fresh, fully migrated database.
    pub fn new() -> TestDb {
        let mut conn = admin_connection();
        ensure_template(&mut conn);
        Self::create(&mut conn, Some(&template_name()))
    }

    /// A fresh database with no migrations applied.
    pub fn empty() -> TestDb {
        let mut conn = admin_connection();
        Self::create(&mut conn, None)
    }

    fn create(conn: &mut PgConnection, template: Option<&str>) -> TestDb {
        let name = format!("rampart_test_{}", uuid::Uuid::now_v7().simple());
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        sql_query(sql).execute(conn).unwrap();
        let server = server_url();
        TestDb {
            url: database_url(&server, &name),
            admin_url: database_url(&server, "postgres"),
            name,
        }
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}
