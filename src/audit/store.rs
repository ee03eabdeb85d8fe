//! Diesel queries for the audit tables. Every function returns `QueryResult` and runs on the
//! connection (and transaction) it is given; none decides policy or computes a hash.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ipnet::IpNet;
use time::OffsetDateTime;

use super::model::{AuditQuery, AuditRow, Checkpoint, NewCheckpoint};
use crate::db::schema::{audit_aggregates, audit_checkpoints, audit_logs};

/// The advisory lock that serialises appends and prunes ("rampaudi"). Transaction-scoped: held
/// until the surrounding transaction commits or rolls back.
pub const CHAIN_LOCK: i64 = 0x7261_6d70_6175_6469;

/// Waits for the chain lock (until the end of the current transaction).
pub fn lock_chain(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(CHAIN_LOCK)
        .execute(conn)
        .map(|_| ())
}

/// The newest row's (id, hash), if any.
pub fn last_row(conn: &mut PgConnection) -> QueryResult<Option<(i64, Vec<u8>)>> {
    audit_logs::table
        .select((audit_logs::id, audit_logs::hash))
        .order(audit_logs::id.desc())
        .first(conn)
        .optional()
}

pub fn latest_checkpoint(conn: &mut PgConnection) -> QueryResult<Option<Checkpoint>> {
    audit_checkpoints::table
        .select(Checkpoint::as_select())
        .order(audit_checkpoints::id.desc())
        .first(conn)
        .optional()
}

pub fn checkpoints(conn: &mut PgConnection) -> QueryResult<Vec<Checkpoint>> {
    audit_checkpoints::table
        .select(Checkpoint::as_select())
        .order(audit_checkpoints::id.asc())
        .load(conn)
}

pub fn insert_row(conn: &mut PgConnection, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(audit_logs::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Up to `limit` rows with an id above `after`, in id order.
pub fn rows_after(conn: &mut PgConnection, after: i64, limit: i64) -> QueryResult<Vec<AuditRow>> {
    audit_logs::table
        .select(AuditRow::as_select())
        .filter(audit_logs::id.gt(after))
        .order(audit_logs::id.asc())
        .limit(limit)
        .load(conn)
}

pub fn row_hash(conn: &mut PgConnection, id: i64) -> QueryResult<Option<Vec<u8>>> {
    audit_logs::table
        .select(audit_logs::hash)
        .filter(audit_logs::id.eq(id))
        .first(conn)
        .optional()
}

/// The last id of the longest prefix of the log (by id) whose rows all occurred before `before`.
pub fn prune_boundary(conn: &mut PgConnection, before: OffsetDateTime) -> QueryResult<Option<i64>> {
    let first_kept: Option<i64> = audit_logs::table
        .select(diesel::dsl::min(audit_logs::id))
        .filter(audit_logs::occurred_at.ge(before))
        .first(conn)?;
    match first_kept {
        Some(id) => Ok(audit_logs::table
            .select(audit_logs::id)
            .filter(audit_logs::id.lt(id))
            .order(audit_logs::id.desc())
            .first(conn)
            .optional()?),
        None => last_row(conn).map(|row| row.map(|(id, _)| id)),
    }
}

/// Lets this transaction's DELETEs through the append-only triggers, for ids up to `through`
/// (`None` closes the door again).
pub fn allow_prune_through(conn: &mut PgConnection, through: Option<i64>) -> QueryResult<()> {
    diesel::sql_query("SELECT set_config('rampart.audit_prune_through', $1, true)")
        .bind::<Text, _>(through.map(|id| id.to_string()).unwrap_or_default())
        .execute(conn)
        .map(|_| ())
}

/// Deletes rows (and their aggregates) with id ≤ `through`; returns the rows deleted.
pub fn delete_through(conn: &mut PgConnection, through: i64) -> QueryResult<usize> {
    diesel::delete(audit_aggregates::table.filter(audit_aggregates::log_id.le(through)))
        .execute(conn)?;
    diesel::delete(audit_logs::table.filter(audit_logs::id.le(through))).execute(conn)
}

pub fn insert_checkpoint(
    conn: &mut PgConnection,
    checkpoint: &NewCheckpoint,
) -> QueryResult<Checkpoint> {
    diesel::insert_into(audit_checkpoints::table)
        .values(checkpoint)
        .returning(Checkpoint::as_returning())
        .get_result(conn)
}

/// The key of one aggregation window.
pub struct AggregateKey<'a> {
    pub action: &'a str,
    pub ip: IpNet,
    pub scope: &'a str,
    pub window_start: OffsetDateTime,
}

/// Counts `occurrences` more of the key's event; returns the new count and the chained row
/// standing for the window (`None` for the first occurrence, whose row the caller writes and then
/// links with `link_aggregate`).
pub fn bump_aggregate(
    conn: &mut PgConnection,
    key: &AggregateKey<'_>,
    occurrences: i64,
    now: OffsetDateTime,
) -> QueryResult<(i64, Option<i64>)> {
    diesel::insert_into(audit_aggregates::table)
        .values((
            audit_aggregates::action.eq(key.action),
            audit_aggregates::ip.eq(key.ip),
            audit_aggregates::scope.eq(key.scope),
            audit_aggregates::window_start.eq(key.window_start),
            audit_aggregates::event_count.eq(occurrences),
            audit_aggregates::last_seen_at.eq(now),
        ))
        .on_conflict((
            audit_aggregates::action,
            audit_aggregates::ip,
            audit_aggregates::scope,
            audit_aggregates::window_start,
        ))
        .do_update()
        .set((
            audit_aggregates::event_count.eq(audit_aggregates::event_count + occurrences),
            audit_aggregates::last_seen_at.eq(now),
        ))
        .returning((audit_aggregates::event_count, audit_aggregates::log_id))
        .get_result(conn)
}

pub fn link_aggregate(
    conn: &mut PgConnection,
    key: &AggregateKey<'_>,
    log_id: i64,
) -> QueryResult<()> {
    diesel::update(audit_aggregates::table.find((
        key.action.to_string(),
        key.ip,
        key.scope.to_string(),
        key.window_start,
    )))
    .set(audit_aggregates::log_id.eq(log_id))
    .execute(conn)
    .map(|_| ())
}

type EntryRow = (AuditRow, Option<i64>);

/// Rows matching `query`, newest first, each with its aggregate count when it stands for a
/// window of repeated events. Returns at most `limit` rows.
pub fn list(conn: &mut PgConnection, query: &AuditQuery, limit: i64) -> QueryResult<Vec<EntryRow>> {
    let mut q = audit_logs::table
        .left_join(audit_aggregates::table)
        .select((
            AuditRow::as_select(),
            audit_aggregates::event_count.nullable(),
        ))
        .into_boxed::<Pg>();
    if let Some(action) = query.action {
        q = q.filter(audit_logs::action.eq(action.as_str()));
    }
    if !query.actions.is_empty() {
        let names: Vec<&str> = query.actions.iter().map(|a| a.as_str()).collect();
        q = q.filter(audit_logs::action.eq_any(names));
    }
    if let Some(kind) = query.actor_type {
        q = q.filter(audit_logs::actor_type.eq(kind.as_str()));
    }
    if let Some(id) = &query.actor_id {
        q = q.filter(audit_logs::actor_id.eq(id.clone()));
    }
    if let Some((kind, id)) = &query.target {
        q = q
            .filter(audit_logs::target_type.eq(kind.clone()))
            .filter(audit_logs::target_id.eq(id.clone()));
    }
    if let Some(id) = &query.target_id {
        q = q.filter(audit_logs::target_id.eq(id.clone()));
    }
    if let Some(outcome) = query.outcome {
        q = q.filter(audit_logs::outcome.eq(outcome.as_str()));
    }
    if let Some(net) = query.ip {
        // `<<=`: in the network (or equal to it); Postgres turns it into a range on the btree.
        q = q.filter(audit_logs::ip.is_contained_by_or_eq(net));
    }
    if let Some(since) = query.since {
        q = q.filter(audit_logs::occurred_at.ge(since));
    }
    if let Some(until) = query.until {
        q = q.filter(audit_logs::occurred_at.lt(until));
    }
    if let Some(before) = query.before_id {
        q = q.filter(audit_logs::id.lt(before));
    }
    if let Some(after) = query.after_id {
        return q
            .filter(audit_logs::id.gt(after))
            .order(audit_logs::id.asc())
            .limit(limit)
            .load(conn);
    }
    q.order(audit_logs::id.desc()).limit(limit).load(conn)
}

pub fn get(conn: &mut PgConnection, id: i64) -> QueryResult<Option<EntryRow>> {
    audit_logs::table
        .left_join(audit_aggregates::table)
        .select((
            AuditRow::as_select(),
            audit_aggregates::event_count.nullable(),
        ))
        .filter(audit_logs::id.eq(id))
        .first(conn)
        .optional()
}

/// How many times each of `actions` happened since `since`, counting every occurrence an
/// aggregated row stands for.
pub fn occurrences_since(
    conn: &mut PgConnection,
    actions: &[&str],
    since: OffsetDateTime,
) -> QueryResult<Vec<(String, i64)>> {
    use diesel::sql_types::{Array, Timestamptz};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        action: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT l.action, COALESCE(sum(COALESCE(a.event_count, 1)), 0)::bigint AS n \
         FROM audit_logs l LEFT JOIN audit_aggregates a ON a.log_id = l.id \
         WHERE l.occurred_at >= $1 AND l.action = ANY($2) GROUP BY l.action",
    )
    .bind::<Timestamptz, _>(since)
    .bind::<Array<Text>, _>(actions)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.action, r.n)).collect())
}

/// Per hour since `since` (hours start on the hour, UTC): how many times each of `actions`
/// happened.
pub fn hourly_since(
    conn: &mut PgConnection,
    actions: &[&str],
    since: OffsetDateTime,
) -> QueryResult<Vec<(OffsetDateTime, String, i64)>> {
    use diesel::sql_types::{Array, Timestamptz};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Timestamptz)]
        hour: OffsetDateTime,
        #[diesel(sql_type = Text)]
        action: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT date_trunc('hour', l.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, \
                l.action, COALESCE(sum(COALESCE(a.event_count, 1)), 0)::bigint AS n \
         FROM audit_logs l LEFT JOIN audit_aggregates a ON a.log_id = l.id \
         WHERE l.occurred_at >= $1 AND l.action = ANY($2) GROUP BY 1, 2",
    )
    .bind::<Timestamptz, _>(since)
    .bind::<Array<Text>, _>(actions)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.hour, r.action, r.n)).collect())
}

/// The newest row of `action`, if any.
pub fn latest_of(conn: &mut PgConnection, action: &str) -> QueryResult<Option<EntryRow>> {
    audit_logs::table
        .left_join(audit_aggregates::table)
        .select((
            AuditRow::as_select(),
            audit_aggregates::event_count.nullable(),
        ))
        .filter(audit_logs::action.eq(action))
        .order(audit_logs::id.desc())
        .first(conn)
        .optional()
}

/// Which side of a user's data export a query selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSide {
    /// Rows the user performed: as the user, or with one of `key_ids`.
    Own,
    /// Rows about the user's account or one of `key_ids`, performed by anyone else.
    DoneTo,
}

/// Up to `limit` rows of one side of a user's export (see [`SubjectSide`]) after id `after`,
/// oldest first (keyset pages: a streamed export reads its whole history a page at a time).
pub fn subject_rows(
    conn: &mut PgConnection,
    user_id: &str,
    key_ids: &[String],
    side: SubjectSide,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<EntryRow>> {
    let by_user = audit_logs::actor_type
        .eq("user")
        .and(audit_logs::actor_id.eq(user_id.to_string()))
        .or(audit_logs::actor_type
            .eq("api_key")
            .and(audit_logs::actor_id.eq_any(key_ids.to_vec())));
    let q = audit_logs::table
        .left_join(audit_aggregates::table)
        .select((
            AuditRow::as_select(),
            audit_aggregates::event_count.nullable(),
        ))
        .into_boxed::<Pg>();
    let q = match side {
        SubjectSide::Own => q.filter(by_user),
        SubjectSide::DoneTo => q
            .filter(
                audit_logs::target_type
                    .eq("user")
                    .and(audit_logs::target_id.eq(user_id.to_string()))
                    .or(audit_logs::target_type
                        .eq("api_key")
                        .and(audit_logs::target_id.eq_any(key_ids.to_vec()))),
            )
            // Only rows known not to be the user's own (`IS NOT DISTINCT FROM false`).
            .filter(by_user.is_not_distinct_from(false)),
    };
    q.filter(audit_logs::id.gt(after))
        .order(audit_logs::id.asc())
        .limit(limit)
        .load(conn)
}
