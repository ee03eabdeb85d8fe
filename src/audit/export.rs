//! A user's part of the audit log, for their data export: their own events in full, and what
//! others did to their account reduced to what they are entitled to read.

use diesel::PgConnection;
use diesel::result::QueryResult;
use serde_json::Value;
use time::OffsetDateTime;

use super::store;
use super::{Action, ActorType, AuditEntry};

// A user's part of the audit log, for their data export (`GET /api/v1/me/export`), read a page at
// a time with [`own_events_page`] and [`events_done_to_page`]. It holds the caller's own data only:
// - what the user did — as themselves or with one of their API keys — in full (these rows
//   describe their own requests: their IP, user agent, request ids), less the chain hashes
//   ([`OwnEvent`]): a row's `prev_hash` is the hash of whatever row came before it, often
//   somebody else's;
// - what others (admins, the system, anonymous clients) did to their account or to one of their
//   API keys, reduced to [`AccountEvent`]: the action, when, and the public reason. Never the
//   actor, IP, user agent, request id or metadata of the person who did it.

/// Something the user did, as their export shows it: the row without its chain hashes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OwnEvent {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    #[schema(value_type = Option<String>)]
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub server_request_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
}

impl From<AuditEntry> for OwnEvent {
    fn from(e: AuditEntry) -> OwnEvent {
        OwnEvent {
            id: e.id,
            occurred_at: e.occurred_at,
            actor_type: e.actor_type,
            actor_id: e.actor_id,
            action: e.action,
            outcome: e.outcome,
            target_type: e.target_type,
            target_id: e.target_id,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            server_request_id: e.server_request_id,
            metadata: e.metadata,
        }
    }
}

/// Something done to a user's account by someone else, as that user may see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AccountEvent {
    pub action: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The public part of the reason: see [`public_reason`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Actions whose `metadata.reason` is text an admin typed about the account (console and admin
/// API forms, `parse_reason`), which the account's owner is entitled to read.
const PUBLIC_REASON_ACTIONS: [Action; 5] = [
    Action::UserDisabled,
    Action::UserEnabled,
    Action::UserUnlocked,
    Action::UserSignedOutEverywhere,
    Action::ApiKeyRevoked,
];

/// The public part of a row's reason: the free text an admin gave for one of
/// [`PUBLIC_REASON_ACTIONS`] — and nothing else. Internal reason codes (`bad_password`,
/// `revoked_by_admin`, `user_disabled`…), notes and every other metadata field stay internal.
pub fn public_reason(entry: &AuditEntry) -> Option<String> {
    if entry.actor_type != ActorType::Admin.as_str() {
        return None;
    }
    let action = entry.action()?;
    if !PUBLIC_REASON_ACTIONS.contains(&action) {
        return None;
    }
    entry
        .metadata
        .get("reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

impl AccountEvent {
    pub fn from_entry(entry: &AuditEntry) -> AccountEvent {
        AccountEvent {
            action: entry.action.clone(),
            occurred_at: entry.occurred_at,
            reason: public_reason(entry),
        }
    }
}

/// Up to `limit` of the user's own events after audit id `after`, oldest first. `api_key_ids` are
/// the user's API keys (the caller looks them up: audit imports no feature).
pub fn own_events_page(
    conn: &mut PgConnection,
    user_id: uuid::Uuid,
    api_key_ids: &[uuid::Uuid],
    after: i64,
    limit: i64,
) -> QueryResult<Vec<OwnEvent>> {
    let keys: Vec<String> = api_key_ids.iter().map(uuid::Uuid::to_string).collect();
    let rows = store::subject_rows(
        conn,
        &user_id.to_string(),
        &keys,
        store::SubjectSide::Own,
        after,
        limit.clamp(1, 10_000),
    )?;
    Ok(rows
        .into_iter()
        .map(|(row, count)| OwnEvent::from(AuditEntry::from_row(row, count)))
        .collect())
}

/// Up to `limit` events others did to the user's account or keys after audit id `after`, oldest
/// first, each with its id (the next page's `after`) and reduced to [`AccountEvent`].
pub fn events_done_to_page(
    conn: &mut PgConnection,
    user_id: uuid::Uuid,
    api_key_ids: &[uuid::Uuid],
    after: i64,
    limit: i64,
) -> QueryResult<Vec<(i64, AccountEvent)>> {
    let keys: Vec<String> = api_key_ids.iter().map(uuid::Uuid::to_string).collect();
    let rows = store::subject_rows(
        conn,
        &user_id.to_string(),
        &keys,
        store::SubjectSide::DoneTo,
        after,
        limit.clamp(1, 10_000),
    )?;
    Ok(rows
        .into_iter()
        .map(|(row, count)| {
            let entry = AuditEntry::from_row(row, count);
            (entry.id, AccountEvent::from_entry(&entry))
        })
        .collect())
}
