//! Diesel queries on `webhook_events` and `subscriptions`. `QueryResult` only; no policy.

use diesel::prelude::*;
use diesel::upsert::excluded;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{NewWebhookEvent, Subscription, WebhookEvent};
use crate::db::schema::{subscriptions, webhook_events};

/// Inserts the delivery unless (provider, event id) is already in the inbox. `None` for a
/// redelivery: the unique key decides, so of two identical deliveries racing, the second waits
/// for the first's transaction and then inserts nothing.
/// Returns the new row's id.
pub fn insert_new(conn: &mut PgConnection, row: &NewWebhookEvent<'_>) -> QueryResult<Option<Uuid>> {
    diesel::insert_into(webhook_events::table)
        .values(row)
        .on_conflict((webhook_events::provider, webhook_events::event_id))
        .do_nothing()
        .returning(webhook_events::id)
        .get_result(conn)
        .optional()
}

/// `insert_new` outside a transaction, as a plain INSERT: the unique key refuses a redelivery
/// (`None`) without the speculative-insertion cost of `ON CONFLICT` (~15 % of the statement), which
/// only pays off where a failed statement would abort a surrounding transaction.
pub fn insert_alone(
    conn: &mut PgConnection,
    row: &NewWebhookEvent<'_>,
) -> QueryResult<Option<Uuid>> {
    use diesel::result::{DatabaseErrorKind, Error};
    match diesel::insert_into(webhook_events::table)
        .values(row)
        .returning(webhook_events::id)
        .get_result(conn)
    {
        Ok(id) => Ok(Some(id)),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.constraint_name() == Some("webhook_events_provider_event_id_key") =>
        {
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// Counts a redelivery on the stored event; returns its id and outcome.
pub fn count_redelivery(
    conn: &mut PgConnection,
    provider: &str,
    event_id: &str,
    now: OffsetDateTime,
) -> QueryResult<Option<(Uuid, String)>> {
    diesel::update(
        webhook_events::table
            .filter(webhook_events::provider.eq(provider))
            .filter(webhook_events::event_id.eq(event_id)),
    )
    .set((
        webhook_events::deliveries.eq(webhook_events::deliveries + 1),
        webhook_events::last_delivery_at.eq(now),
    ))
    .returning((webhook_events::id, webhook_events::outcome))
    .get_result(conn)
    .optional()
}

pub fn set_outcome(
    conn: &mut PgConnection,
    id: Uuid,
    outcome: &str,
    error: Option<&str>,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(webhook_events::table.find(id))
        .set((
            webhook_events::outcome.eq(outcome),
            webhook_events::error.eq(error),
            webhook_events::processed_at.eq(Some(now)),
        ))
        .execute(conn)
}

/// The event, locked for a replay (a second replay of the same event waits, then sees the first's
/// outcome).
pub fn lock(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<WebhookEvent>> {
    webhook_events::table
        .find(id)
        .for_update()
        .select(WebhookEvent::as_select())
        .first(conn)
        .optional()
}

pub fn count_replay(conn: &mut PgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::update(webhook_events::table.find(id))
        .set(webhook_events::replays.eq(webhook_events::replays + 1))
        .execute(conn)
}

pub fn get(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<WebhookEvent>> {
    webhook_events::table
        .find(id)
        .select(WebhookEvent::as_select())
        .first(conn)
        .optional()
}

/// Filters of the inbox list (all optional); keyset on the time-ordered id. Newest first, or —
/// with `after_id`, the console's "newer" link — the rows just newer than `after_id`, read oldest
/// first (the caller turns the page around).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub provider: Option<String>,
    pub event_type: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub before_id: Option<Uuid>,
    pub after_id: Option<Uuid>,
}

/// A page of the inbox. The rows carry no body (`raw_body` is empty): a list shows none, and
/// bodies are up to WEBHOOK_MAX_BODY_BYTES each (`get` loads one with its body).
pub fn list(conn: &mut PgConnection, q: &EventQuery, limit: i64) -> QueryResult<Vec<WebhookEvent>> {
    use webhook_events as w;
    let mut query = webhook_events::table
        .select((
            w::id,
            w::provider,
            w::event_id,
            w::event_type,
            w::received_at,
            w::signature,
            w::signed_at,
            w::outcome,
            w::error,
            w::deliveries,
            w::last_delivery_at,
            w::processed_at,
            w::replays,
            diesel::dsl::sql::<diesel::sql_types::Bytea>("''::bytea"),
            w::headers,
            w::request_id,
            w::source_ip,
        ))
        .limit(limit)
        .into_boxed();
    if let Some(provider) = &q.provider {
        query = query.filter(webhook_events::provider.eq(provider.clone()));
    }
    if let Some(event_type) = &q.event_type {
        query = query.filter(webhook_events::event_type.eq(event_type.clone()));
    }
    if let Some(outcome) = &q.outcome {
        query = query.filter(webhook_events::outcome.eq(outcome.clone()));
    }
    if let Some(from) = q.from {
        query = query.filter(webhook_events::received_at.ge(from));
    }
    if let Some(to) = q.to {
        query = query.filter(webhook_events::received_at.lt(to));
    }
    if let Some(before) = q.before_id {
        query = query.filter(webhook_events::id.lt(before));
    }
    match q.after_id {
        Some(after) => query
            .filter(webhook_events::id.gt(after))
            .order(webhook_events::id.asc())
            .load(conn),
        None => query.order(webhook_events::id.desc()).load(conn),
    }
}

pub fn count_failed_since(conn: &mut PgConnection, since: OffsetDateTime) -> QueryResult<i64> {
    webhook_events::table
        .filter(webhook_events::outcome.eq("failed"))
        .filter(webhook_events::received_at.ge(since))
        .count()
        .get_result(conn)
}

/// Deletes deliveries received before `before`; returns how many.
pub fn prune(conn: &mut PgConnection, before: OffsetDateTime) -> QueryResult<usize> {
    diesel::delete(webhook_events::table.filter(webhook_events::received_at.lt(before)))
        .execute(conn)
}

pub fn subscription_of_user(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> QueryResult<Option<Subscription>> {
    subscriptions::table
        .find(user_id)
        .select(Subscription::as_select())
        .first(conn)
        .optional()
}

/// The subscription row of a Stripe customer, locked for the update that follows.
pub fn lock_subscription_of_customer(
    conn: &mut PgConnection,
    customer_id: &str,
) -> QueryResult<Option<Subscription>> {
    subscriptions::table
        .filter(subscriptions::customer_id.eq(customer_id))
        .for_update()
        .select(Subscription::as_select())
        .first(conn)
        .optional()
}

/// Records the customer (and subscription) a user's checkout created: a user has one row; a new
/// checkout replaces its customer and subscription.
pub fn upsert_checkout(conn: &mut PgConnection, row: &Subscription) -> QueryResult<Subscription> {
    diesel::insert_into(subscriptions::table)
        .values(row)
        .on_conflict(subscriptions::user_id)
        .do_update()
        .set((
            subscriptions::customer_id.eq(excluded(subscriptions::customer_id)),
            subscriptions::subscription_id.eq(excluded(subscriptions::subscription_id)),
            subscriptions::updated_at.eq(excluded(subscriptions::updated_at)),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
}

/// Drops a subscription's personal fields (account erasure); returns the rows changed.
pub fn scrub_subscription(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::update(subscriptions::table.find(user_id))
        .set((
            subscriptions::customer_id.eq(None::<String>),
            subscriptions::subscription_id.eq(None::<String>),
            subscriptions::price_id.eq(None::<String>),
            subscriptions::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Empties the stored bodies that contain `needle` (account erasure); returns the rows changed.
pub fn redact_bodies_containing(conn: &mut PgConnection, needle: &[u8]) -> QueryResult<usize> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Bytea};
    diesel::update(
        webhook_events::table.filter(
            sql::<Bool>("position(")
                .bind::<Bytea, _>(needle.to_vec())
                .sql(" in raw_body) > 0"),
        ),
    )
    .set((
        webhook_events::raw_body.eq(Vec::<u8>::new()),
        webhook_events::error.eq(Some("body redacted: the account it named was erased")),
    ))
    .execute(conn)
}

pub fn save_subscription(conn: &mut PgConnection, row: &Subscription) -> QueryResult<usize> {
    diesel::update(subscriptions::table.find(row.user_id))
        .set(row)
        .execute(conn)
}
