//! The erasure report's queries: which columns refer to users (from the catalog, so a table
//! added later is counted without anyone remembering to list it) and how many rows in each still
//! name the user. Owns no table; reads every table by the user's id only. `QueryResult` only.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use uuid::Uuid;

/// Every `(table, column)` of the current schema with a foreign key to `users(id)`.
pub fn user_references(conn: &mut PgConnection) -> QueryResult<Vec<(String, String)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT c.conrelid::regclass::text AS table_name, a.attname::text AS column_name \
         FROM pg_constraint c \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
         WHERE c.contype = 'f' AND c.confrelid = 'users'::regclass \
           AND c.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
         ORDER BY 1, 2",
    )
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.table_name, r.column_name))
        .collect())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Rows of `table` whose uuid `column` is `user_id`.
pub fn count_uuid(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    user_id: Uuid,
) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sql = format!(
        "SELECT count(*) AS n FROM {} WHERE {} = $1",
        quote_ident(table),
        quote_ident(column)
    );
    let row: Row = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(user_id)
        .get_result(conn)?;
    Ok(row.n)
}

/// Audit rows that name the user by id, as actor and as target.
pub fn audit_rows(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<(i64, i64)> {
    use crate::db::schema::audit_logs;
    let id = user_id.to_string();
    let actor = audit_logs::table
        .filter(audit_logs::actor_type.eq_any(["user", "admin"]))
        .filter(audit_logs::actor_id.eq(&id))
        .count()
        .get_result(conn)?;
    let target = audit_logs::table
        .filter(audit_logs::target_type.eq("user"))
        .filter(audit_logs::target_id.eq(&id))
        .count()
        .get_result(conn)?;
    Ok((actor, target))
}

/// Quota rows kept for the user (counters by day).
pub fn quota_rows(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<i64> {
    use crate::db::schema::quota_usage;
    quota_usage::table
        .filter(quota_usage::subject_id.eq(user_id))
        .count()
        .get_result(conn)
}
