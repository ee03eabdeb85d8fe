//! The audit log's vocabulary — every action as one enum, actor kinds, outcomes — and its row
//! types. No queries and no hashing here.

use std::fmt;
use std::net::IpAddr;

use diesel::prelude::*;
use ipnet::IpNet;
use serde_json::Value;
use time::OffsetDateTime;

use crate::db::schema::{audit_checkpoints, audit_logs};

macro_rules! actions {
    ($($variant:ident => $name:literal,)+) => {
        /// Everything the audit log can record. Call sites pick a variant; there are no free-form
        /// action strings. The dotted names are stable: the console filters on them and old rows
        /// keep them forever.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($variant,)+
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant,)+];

            /// The dotted name stored in `audit_logs.action`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)+
                }
            }
        }
    };
}

actions! {
    UserRegistered => "user.registered",
    UserImported => "user.imported",
    UserUpdated => "user.updated",
    UserDisabled => "user.disabled",
    UserEnabled => "user.enabled",
    UserUnlocked => "user.unlocked",
    UserSignedOutEverywhere => "user.signed_out_everywhere",
    UserRoleChanged => "user.role_changed",
    AdminEmailUnverified => "user.admin_email_unverified",
    UserDeleted => "user.deleted",
    UserErased => "user.erased",
    UserEmailVerified => "user.email_verified",
    UserEmailChangeRequested => "user.email_change_requested",
    UserEmailChanged => "user.email_changed",
    UserExported => "user.exported",
    AuthLoginSucceeded => "auth.login.succeeded",
    AuthLoginFailed => "auth.login.failed",
    AuthLockout => "auth.lockout",
    AuthLogout => "auth.logout",
    AuthRefreshRotated => "auth.refresh.rotated",
    AuthRefreshReuseDetected => "auth.refresh.reuse_detected",
    AuthPasswordChanged => "auth.password.changed",
    AuthPasswordResetRequested => "auth.password_reset.requested",
    AuthPasswordReset => "auth.password_reset.completed",
    AuthMfaChallenged => "auth.mfa.challenged",
    AuthMfaFailed => "auth.mfa.failed",
    AuthStepUp => "auth.step_up.succeeded",
    AuthStepUpFailed => "auth.step_up.failed",
    MfaEnrolmentStarted => "mfa.enrolment_started",
    MfaEnabled => "mfa.enabled",
    MfaDisabled => "mfa.disabled",
    MfaReset => "mfa.reset",
    MfaRecoveryCodeUsed => "mfa.recovery_code_used",
    MfaRecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
    SessionRevoked => "session.revoked",
    ApiKeyCreated => "api_key.created",
    ApiKeyRotated => "api_key.rotated",
    ApiKeyRevoked => "api_key.revoked",
    ApiKeyAuthFailed => "api_key.auth_failed",
    ApiKeyExpiredUsed => "api_key.expired_used",
    RateLimitExceeded => "rate_limit.exceeded",
    QuotaExceeded => "quota.exceeded",
    WebhookReceived => "webhook.received",
    WebhookRejected => "webhook.rejected",
    WebhookReplayed => "webhook.replayed",
    WebhookPruned => "webhook.pruned",
    SubscriptionUpdated => "subscription.updated",
    IdentityLinked => "identity.linked",
    IdentityProviderOutage => "identity.provider_outage",
    IdentityUnlinked => "identity.unlinked",
    AuthExchangeSucceeded => "auth.exchange.succeeded",
    AdminLoginSucceeded => "admin.login.succeeded",
    AdminLoginFailed => "admin.login.failed",
    AdminLogout => "admin.logout",
    AuditVerified => "audit.verified",
    AuditPruned => "audit.pruned",
    DataExported => "data.exported",
    UserBlocked => "user.blocked",
    UserUnblocked => "user.unblocked",
    MessagePruned => "message.pruned",
    EncryptionRotated => "encryption.rotated",
    EmailRetried => "email.retried",
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorType {
    User,
    ApiKey,
    Admin,
    System,
    Anonymous,
}

impl ActorType {
    pub const ALL: &'static [ActorType] = &[
        ActorType::User,
        ActorType::ApiKey,
        ActorType::Admin,
        ActorType::System,
        ActorType::Anonymous,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::ApiKey => "api_key",
            ActorType::Admin => "admin",
            ActorType::System => "system",
            ActorType::Anonymous => "anonymous",
        }
    }

    pub fn parse(name: &str) -> Option<ActorType> {
        ActorType::ALL.iter().copied().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for ActorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    /// The attempt failed (wrong password, bad signature).
    Failure,
    /// The actor was identified but not allowed (permission, lockout, rate limit).
    Denied,
}

impl Outcome {
    pub const ALL: &'static [Outcome] = &[Outcome::Success, Outcome::Failure, Outcome::Denied];

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.iter().copied().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorType,
    pub id: Option<String>,
}

impl Actor {
    pub fn user(id: impl Into<uuid::Uuid>) -> Actor {
        Actor {
            kind: ActorType::User,
            id: Some(id.into().to_string()),
        }
    }

    pub fn admin(id: impl Into<uuid::Uuid>) -> Actor {
        Actor {
            kind: ActorType::Admin,
            id: Some(id.into().to_string()),
        }
    }

    pub fn api_key(id: impl Into<uuid::Uuid>) -> Actor {
        Actor {
            kind: ActorType::ApiKey,
            id: Some(id.into().to_string()),
        }
    }

    /// The service itself, or an operator at the command line.
    pub fn system() -> Actor {
        Actor {
            kind: ActorType::System,
            id: None,
        }
    }

    /// Nobody identified yet (a failed login, a rejected webhook).
    pub fn anonymous() -> Actor {
        Actor {
            kind: ActorType::Anonymous,
            id: None,
        }
    }
}

/// Where a request came from. Every field is optional: CLI and background events have none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The trusted client IP (`http::client_ip::ClientIp`), never a raw forwarding header.
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The client's `X-Request-Id` when it sent an acceptable one, else the server's id.
    pub request_id: Option<String>,
    /// The id the server generated for the request, whatever the client sent.
    pub server_request_id: Option<String>,
}

impl RequestMeta {
    /// No request: CLI commands and background jobs.
    pub fn none() -> RequestMeta {
        RequestMeta::default()
    }

    /// Builds the metadata from raw parts; the User-Agent may be any bytes (invalid UTF-8 is
    /// replaced) and is bounded when the row is written.
    pub fn new(
        ip: Option<IpAddr>,
        user_agent: Option<&[u8]>,
        request_id: Option<&str>,
    ) -> RequestMeta {
        RequestMeta {
            ip,
            user_agent: user_agent.map(|ua| super::scrub::lossy_text(ua, 4 * 1024)),
            request_id: request_id.map(str::to_string),
            server_request_id: None,
        }
    }
}

/// What happened. `metadata` may hold anything: it is scrubbed (`scrub::scrub_metadata`) before
/// it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub action: Action,
    pub outcome: Outcome,
    pub actor: Actor,
    /// (type, id) of the thing acted upon, e.g. ("user", "0190…").
    pub target: Option<(String, String)>,
    pub metadata: Value,
}

impl Event {
    pub fn new(action: Action, outcome: Outcome, actor: Actor) -> Event {
        Event {
            action,
            outcome,
            actor,
            target: None,
            metadata: Value::Object(serde_json::Map::new()),
        }
    }

    pub fn target(mut self, kind: impl Into<String>, id: impl ToString) -> Event {
        self.target = Some((kind.into(), id.to_string()));
        self
    }

    pub fn metadata(mut self, metadata: Value) -> Event {
        self.metadata = metadata;
        self
    }
}

/// One `audit_logs` row exactly as stored (and as hashed).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_logs, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub id: i64,
    pub occurred_at: OffsetDateTime,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<IpNet>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Added later than the other columns: chained only when present (see `chain`).
    pub server_request_id: Option<String>,
    pub metadata: Value,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// A row for readers (console, API, tests): aggregated rows carry their running `count` in
/// `metadata`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
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
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The client's `X-Request-Id` if it sent an acceptable one, else the server's id.
    pub request_id: Option<String>,
    /// The id the server generated for the request (`None` for rows written before it was kept
    /// and for rows without a request).
    pub server_request_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Hex of the row's chain hash, and of the hash it is chained to.
    pub hash: String,
    pub prev_hash: String,
}

impl AuditEntry {
    pub fn from_row(row: AuditRow, aggregate_count: Option<i64>) -> AuditEntry {
        let mut metadata = row.metadata;
        if let (Some(count), Value::Object(map)) = (aggregate_count, &mut metadata) {
            map.insert("count".into(), Value::from(count));
        }
        AuditEntry {
            id: row.id,
            occurred_at: row.occurred_at,
            actor_type: row.actor_type,
            actor_id: row.actor_id,
            action: row.action,
            outcome: row.outcome,
            target_type: row.target_type,
            target_id: row.target_id,
            ip: row.ip.map(|net| net.addr()),
            user_agent: row.user_agent,
            request_id: row.request_id,
            server_request_id: row.server_request_id,
            metadata,
            hash: hex::encode(&row.hash),
            prev_hash: hex::encode(&row.prev_hash),
        }
    }

    pub fn action(&self) -> Option<Action> {
        Action::parse(&self.action)
    }
}

/// A retention checkpoint: rows up to `last_pruned_id` were removed by `rampart audit prune`, and
/// the retained chain continues from `last_pruned_hash`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = audit_checkpoints, check_for_backend(diesel::pg::Pg))]
pub struct Checkpoint {
    pub id: i64,
    pub created_at: OffsetDateTime,
    pub pruned_before: OffsetDateTime,
    pub last_pruned_id: i64,
    pub last_pruned_hash: Vec<u8>,
    pub pruned_count: i64,
    pub prev_mac: Vec<u8>,
    pub mac: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = audit_checkpoints)]
pub struct NewCheckpoint {
    pub created_at: OffsetDateTime,
    pub pruned_before: OffsetDateTime,
    pub last_pruned_id: i64,
    pub last_pruned_hash: Vec<u8>,
    pub pruned_count: i64,
    pub prev_mac: Vec<u8>,
    pub mac: Vec<u8>,
}

/// Filters for listing the log, newest first, with keyset pagination on `id`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<Action>,
    /// Any of these actions (empty: no restriction); an action prefix expands to this list.
    pub actions: Vec<Action>,
    pub actor_type: Option<ActorType>,
    pub actor_id: Option<String>,
    pub target: Option<(String, String)>,
    /// A target id whatever its type.
    pub target_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// A single address or a network (`10.0.0.0/8`).
    pub ip: Option<IpNet>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Only rows with a smaller id (the previous page's `next_before_id`).
    pub before_id: Option<i64>,
    /// Only rows with a larger id: the page of newer rows just above this id (oldest first in
    /// the query, returned newest first).
    pub after_id: Option<i64>,
    /// 1..=500; 50 when 0.
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `before_id` for the next (older) page; `None` on the last page.
    pub next_before_id: Option<i64>,
    /// Pass as `after_id` for the previous (newer) page; `None` on the first page.
    pub prev_after_id: Option<i64>,
}

/// The audit filters as a client writes them (query string of the admin API and the console).
#[derive(
    Debug, Clone, Default, serde::Deserialize, serde::Serialize, PartialEq, Eq, utoipa::IntoParams,
)]
pub struct AuditFilter {
    /// An action (`auth.login.failed`) or a prefix ending in `.` or `.*` (`auth.`).
    pub action: Option<String>,
    /// An actor id, an actor type (`system`, `anonymous`…), or `type:id`.
    pub actor: Option<String>,
    /// A target id, or `type:id`.
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// An address or a CIDR network.
    pub ip: Option<String>,
    /// RFC 3339, `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM` (UTC).
    pub from: Option<String>,
    pub to: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl AuditFilter {
    /// The query these filters stand for, or one message per bad field.
    pub fn to_query(&self) -> Result<AuditQuery, Vec<crate::error::FieldError>> {
        use crate::error::FieldError;
        let mut errors = Vec::new();
        let mut query = AuditQuery::default();
        if let Some(action) = non_empty(&self.action) {
            let prefix = action.strip_suffix('*').unwrap_or(action);
            if prefix.ends_with('.') {
                query.actions = Action::ALL
                    .iter()
                    .copied()
                    .filter(|a| a.as_str().starts_with(prefix))
                    .collect();
                if query.actions.is_empty() {
                    errors.push(FieldError::new(
                        "action",
                        "no action starts with this prefix",
                    ));
                }
            } else {
                match Action::parse(action) {
                    Some(a) => query.action = Some(a),
                    None => errors.push(FieldError::new(
                        "action",
                        "is not a known action (or a prefix ending in `.`)",
                    )),
                }
            }
        }
        if let Some(actor) = non_empty(&self.actor) {
            match actor.split_once(':') {
                Some((kind, id)) => match ActorType::parse(kind) {
                    Some(kind) => {
                        query.actor_type = Some(kind);
                        query.actor_id = Some(id.to_string());
                    }
                    None => errors.push(FieldError::new("actor", "has an unknown actor type")),
                },
                None => match ActorType::parse(actor) {
                    Some(kind) => query.actor_type = Some(kind),
                    None => query.actor_id = Some(actor.to_string()),
                },
            }
        }
        if let Some(target) = non_empty(&self.target) {
            match target.split_once(':') {
                Some((kind, id)) => query.target = Some((kind.to_string(), id.to_string())),
                None => query.target_id = Some(target.to_string()),
            }
        }
        if let Some(outcome) = non_empty(&self.outcome) {
            match Outcome::parse(outcome) {
                Some(o) => query.outcome = Some(o),
                None => errors.push(FieldError::new(
                    "outcome",
                    "must be success, failure or denied",
                )),
            }
        }
        if let Some(ip) = non_empty(&self.ip) {
            let net = ip
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| ip.parse::<IpAddr>().map(IpNet::from));
            match net {
                Ok(net) => query.ip = Some(net),
                Err(_) => errors.push(FieldError::new(
                    "ip",
                    "is not an IP address or CIDR network",
                )),
            }
        }
        for (field, raw, slot) in [
            ("from", &self.from, &mut query.since),
            ("to", &self.to, &mut query.until),
        ] {
            if let Some(raw) = non_empty(raw) {
                match parse_timestamp(raw) {
                    Ok(at) => *slot = Some(at),
                    Err(message) => errors.push(FieldError::new(field, message)),
                }
            }
        }
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(errors)
        }
    }

    /// The filters as query-string pairs (empty ones left out), for links that keep them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("action", &self.action),
            ("actor", &self.actor),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("ip", &self.ip),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter_map(|(k, v)| non_empty(v).map(|v| (k, v.to_string())))
        .collect()
    }
}

/// Longest reason an admin may give for an action.
pub const MAX_REASON_CHARS: usize = 500;

/// An admin's reason for an action, as the audit log records it: 1–500 characters after
/// trimming, line breaks allowed (a form's CRLF becomes LF), no other control characters.
pub fn parse_reason(raw: &str) -> Result<String, crate::error::FieldError> {
    use crate::error::FieldError;
    let reason = raw.trim().replace("\r\n", "\n");
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(FieldError::new(
            "reason",
            format!("must be 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(
            "reason",
            "must not contain control characters",
        ));
    }
    Ok(reason)
}

/// The earliest instant a Postgres `timestamptz` holds: 4714-11-24 00:00:00 BC, UTC (Julian
/// day 0; astronomical year -4713).
pub const EARLIEST_TIMESTAMP: OffsetDateTime = time::macros::datetime!(-4713-11-24 0:00 UTC);
/// The latest instant both Postgres (294276 AD) and `time` (year 9999 without its `large-dates`
/// feature) hold, to the microsecond Postgres keeps.
pub const LATEST_TIMESTAMP: OffsetDateTime =
    time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC);

/// The one parser of a point in time typed by a client or an operator — the audit API's and the
/// console's `from`/`to` filters and `rampart audit prune --before`: RFC 3339, `YYYY-MM-DD`
/// (midnight UTC), or an HTML `datetime-local` value `YYYY-MM-DDTHH:MM[:SS]` (UTC).
///
/// The result is in UTC, cut to whole microseconds, and within what a `timestamptz` can hold
/// ([`EARLIEST_TIMESTAMP`]..=[`LATEST_TIMESTAMP`], checked *after* applying the offset:
/// `9999-12-31T23:59:59-23:59` is in year 10000). Anything outside is refused here, so no query
/// binds it: Postgres would answer "timestamp out of range" and diesel panics converting an
/// offset time that has no UTC equivalent in `time`.
pub fn parse_timestamp(raw: &str) -> Result<OffsetDateTime, String> {
    let raw = raw.trim();
    let parsed = OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .or_else(|| {
            let date = time::macros::format_description!("[year]-[month]-[day]");
            let local = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
            let with_seconds =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            time::Date::parse(raw, &date)
                .map(|d| d.midnight())
                .or_else(|_| time::PrimitiveDateTime::parse(raw, &local))
                .or_else(|_| time::PrimitiveDateTime::parse(raw, &with_seconds))
                .ok()
                .map(|t| t.assume_utc())
        })
        .ok_or_else(|| {
            "is not a date (YYYY-MM-DD), a date and time (YYYY-MM-DDTHH:MM), or an RFC 3339 \
             timestamp"
                .to_string()
        })?;
    let utc = parsed
        .checked_to_offset(time::UtcOffset::UTC)
        .map(super::chain::truncate_to_micros)
        .filter(|at| (EARLIEST_TIMESTAMP..=LATEST_TIMESTAMP).contains(at));
    utc.ok_or_else(|| {
        "is outside the range of timestamps the audit log can hold (4714-11-24 BC to \
         9999-12-31 UTC)"
            .to_string()
    })
}

/// Whether `at` can be bound as a `timestamptz` (see [`parse_timestamp`]).
pub fn in_timestamp_range(at: OffsetDateTime) -> bool {
    at.checked_to_offset(time::UtcOffset::UTC)
        .is_some_and(|utc| (EARLIEST_TIMESTAMP..=LATEST_TIMESTAMP).contains(&utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_unique_dotted_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for action in Action::ALL {
            let name = action.as_str();
            assert!(seen.insert(name), "duplicate {name}");
            assert!(name.len() <= 64);
            let parts: Vec<&str> = name.split('.').collect();
            assert!(parts.len() >= 2, "{name} is not dotted");
            for part in parts {
                assert!(
                    part.starts_with(|c: char| c.is_ascii_lowercase())
                        && part.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{name}"
                );
            }
            assert_eq!(Action::parse(name), Some(*action));
        }
        assert_eq!(Action::ALL.len(), 62);
        assert_eq!(Action::AuthLoginFailed.as_str(), "auth.login.failed");
        assert_eq!(Action::parse("auth.login"), None);
    }

    #[test]
    fn actor_types_and_outcomes_round_trip() {
        for kind in ActorType::ALL {
            assert_eq!(ActorType::parse(kind.as_str()), Some(*kind));
        }
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(*outcome));
        }
    }

    #[test]
    fn filters_parse_prefixes_actors_targets_networks_and_times() {
        let filter = AuditFilter {
            action: Some("auth.login.*".into()),
            actor: Some("system".into()),
            target: Some("user:0190".into()),
            outcome: Some("denied".into()),
            ip: Some("10.1.2.3/8".into()),
            from: Some("2026-01-02".into()),
            to: Some("2026-01-02T10:30".into()),
        };
        let q = filter.to_query().unwrap();
        assert_eq!(
            q.actions,
            vec![Action::AuthLoginSucceeded, Action::AuthLoginFailed]
        );
        assert_eq!(q.actor_type, Some(ActorType::System));
        assert_eq!(q.target, Some(("user".into(), "0190".into())));
        assert_eq!(q.outcome, Some(Outcome::Denied));
        assert_eq!(q.ip.unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(q.since, Some(time::macros::datetime!(2026-01-02 0:00 UTC)));
        assert_eq!(q.until, Some(time::macros::datetime!(2026-01-02 10:30 UTC)));
        let q = AuditFilter {
            action: Some("api_key.created".into()),
            actor: Some("0190-abc".into()),
            target: Some("0190-def".into()),
            ..Default::default()
        }
        .to_query()
        .unwrap();
        assert_eq!(q.action, Some(Action::ApiKeyCreated));
        assert_eq!(q.actor_id.as_deref(), Some("0190-abc"));
        assert_eq!(q.target_id.as_deref(), Some("0190-def"));
        let errors = AuditFilter {
            action: Some("nope".into()),
            actor: Some("robot:1".into()),
            outcome: Some("maybe".into()),
            ip: Some("300.1.1.1".into()),
            from: Some("yesterday".into()),
            ..Default::default()
        }
        .to_query()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["action", "actor", "outcome", "ip", "from"]);
    }

    #[test]
    fn timestamps_parse_in_every_accepted_form() {
        assert_eq!(
            parse_timestamp("2026-01-02").unwrap(),
            time::macros::datetime!(2026-01-02 0:00 UTC)
        );
        assert_eq!(
            parse_timestamp("2026-01-02T03:04:05+01:00").unwrap(),
            time::macros::datetime!(2026-01-02 2:04:05 UTC)
        );
        assert_eq!(
            parse_timestamp(" 2026-01-02T03:04 ").unwrap(),
            time::macros::datetime!(2026-01-02 3:04 UTC)
        );
        assert_eq!(
            parse_timestamp("2026-01-02T03:04:05").unwrap(),
            time::macros::datetime!(2026-01-02 3:04:05 UTC)
        );
        // Nanoseconds are cut to the microseconds Postgres keeps.
        assert_eq!(
            parse_timestamp("2026-01-02T03:04:05.123456789Z").unwrap(),
            time::macros::datetime!(2026-01-02 3:04:05.123456 UTC)
        );
        for bad in ["yesterday", "", "2026-13-01", "2026-01-02T25:00", "1e9"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_outside_what_postgres_holds_are_refused_at_both_edges() {
        // The earliest timestamptz, and one microsecond (or one day) before it.
        assert_eq!(parse_timestamp("-4713-11-24").unwrap(), EARLIEST_TIMESTAMP);
        assert_eq!(
            parse_timestamp("-4713-11-24T00:00").unwrap(),
            EARLIEST_TIMESTAMP
        );
        assert!(parse_timestamp("-4713-11-23").is_err());
        assert!(parse_timestamp("-4713-11-23T23:59:59").is_err());
        assert!(parse_timestamp("-4800-01-01").is_err());
        assert!(parse_timestamp("-9999-01-01").is_err());
        // The latest `time` holds, in UTC and through an offset.
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59.999999999Z").unwrap(),
            LATEST_TIMESTAMP
        );
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59+00:00").unwrap(),
            time::macros::datetime!(9999-12-31 23:59:59 UTC)
        );
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59+23:59").unwrap(),
            time::macros::datetime!(9999-12-31 0:00:59 UTC)
        );
        // After the offset these are in year 10000, or before the earliest.
        assert!(parse_timestamp("9999-12-31T23:59:59-23:59").is_err());
        assert!(parse_timestamp("9999-12-31T23:59:59-00:01").is_err());
        assert!(parse_timestamp("+10000-01-01").is_err());
        assert!(parse_timestamp("10000-01-01").is_err());
        let message = parse_timestamp("9999-12-31T23:59:59-23:59").unwrap_err();
        assert!(message.contains("outside the range"), "{message}");
        assert!(in_timestamp_range(EARLIEST_TIMESTAMP));
        assert!(!in_timestamp_range(
            EARLIEST_TIMESTAMP - time::Duration::microseconds(1)
        ));
    }

    #[test]
    fn out_of_range_filters_are_field_errors() {
        let errors = AuditFilter {
            from: Some("-4800-01-01".into()),
            to: Some("9999-12-31T23:59:59-23:59".into()),
            ..Default::default()
        }
        .to_query()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["from", "to"]);
    }
}
