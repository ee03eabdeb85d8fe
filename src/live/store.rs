//! Diesel queries on `ws_tickets` and `ws_connections`. `QueryResult` only; no policy.

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::schema::{ws_connections, ws_tickets};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ws_tickets)]
pub struct TicketRow {
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub identity_id: Option<Uuid>,
    pub ip: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

pub fn insert_ticket(conn: &mut PgConnection, row: &TicketRow) -> QueryResult<()> {
    diesel::insert_into(ws_tickets::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Spends the ticket: one conditional UPDATE, so of two upgrades with one ticket exactly one gets
/// the row back.
pub fn spend_ticket(
    conn: &mut PgConnection,
    token_hash: &[u8],
    now: OffsetDateTime,
) -> QueryResult<Option<TicketRow>> {
    diesel::update(
        ws_tickets::table
            .filter(ws_tickets::token_hash.eq(token_hash))
            .filter(ws_tickets::used_at.is_null()),
    )
    .set(ws_tickets::used_at.eq(Some(now)))
    .returning(TicketRow::as_returning())
    .get_result(conn)
    .optional()
}

/// Tickets expired before `before` (spent or not) are deleted; returns how many.
pub fn delete_expired_tickets(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::delete(ws_tickets::table.filter(ws_tickets::expires_at.lt(before))).execute(conn)
}

/// Serialises connection reservations of one user and of one IP (transaction-scoped locks).
pub fn lock_user_and_ip(conn: &mut PgConnection, user_id: Uuid, ip: &str) -> QueryResult<()> {
    use diesel::sql_types::Text;
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtextextended('rampart-ws-user:' || $1, 0)), \
                pg_advisory_xact_lock(hashtextextended('rampart-ws-ip:' || $2, 0))",
    )
    .bind::<Text, _>(user_id.to_string())
    .bind::<Text, _>(ip)
    .execute(conn)
    .map(|_| ())
}

/// Live connections (seen since `since`) of the user and of the IP.
pub fn counts(
    conn: &mut PgConnection,
    user_id: Uuid,
    ip: &str,
    since: OffsetDateTime,
) -> QueryResult<(i64, i64)> {
    let user = ws_connections::table
        .filter(ws_connections::user_id.eq(user_id))
        .filter(ws_connections::seen_at.gt(since))
        .count()
        .get_result(conn)?;
    let by_ip = ws_connections::table
        .filter(ws_connections::ip.eq(ip))
        .filter(ws_connections::seen_at.gt(since))
        .count()
        .get_result(conn)?;
    Ok((user, by_ip))
}

pub fn insert_connection(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    ip: &str,
    instance_id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<()> {
    diesel::insert_into(ws_connections::table)
        .values((
            ws_connections::id.eq(id),
            ws_connections::user_id.eq(user_id),
            ws_connections::ip.eq(ip),
            ws_connections::instance_id.eq(instance_id),
            ws_connections::opened_at.eq(now),
            ws_connections::seen_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn delete_connection(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::delete(ws_connections::table.find(id)).execute(conn)
}

/// Keeps this instance's rows counting; drops rows nobody refreshed for long (a dead instance).
pub fn heartbeat(
    conn: &mut PgConnection,
    instance_id: Uuid,
    now: OffsetDateTime,
    stale_before: OffsetDateTime,
) -> QueryResult<()> {
    diesel::update(ws_connections::table.filter(ws_connections::instance_id.eq(instance_id)))
        .set(ws_connections::seen_at.eq(now))
        .execute(conn)?;
    diesel::delete(ws_connections::table.filter(ws_connections::seen_at.lt(stale_before)))
        .execute(conn)?;
    Ok(())
}

/// Removes every row of this instance (shutdown).
pub fn delete_instance(conn: &mut PgConnection, instance_id: Uuid) -> QueryResult<usize> {
    diesel::delete(ws_connections::table.filter(ws_connections::instance_id.eq(instance_id)))
        .execute(conn)
}
