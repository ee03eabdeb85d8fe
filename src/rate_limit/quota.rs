//! Daily quotas per principal, counted in Postgres so that they survive restarts and are shared by
//! every instance.
//!
//! A use-case that spends a quota calls [`consume`] inside its own transaction: the count rolls
//! back with the change if the change fails, and a refusal (`AppError::QuotaExceeded`, 429 with
//! the reset time) rolls back whatever the transaction did before it. Days are UTC days of the
//! service's clock. Limits come from QUOTA_* (team members and demo accounts), `admin` is
//! unlimited unless QUOTA_OVERRIDES gives it a limit, and an `api_key:` override gives every API
//! key a daily limit of its own on top of its owner's.

use diesel::PgConnection;
use serde_json::json;
use time::OffsetDateTime;

use super::store::{self, Usage};
use crate::audit::{Action, Event, Outcome, RequestMeta};
use crate::auth::{Credential, Principal, Role};
use crate::config::settings::QuotaSettings;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Messages sent in conversations.
    MessagesSent,
    /// API keys created. Rotations are not counted: replacing a leaked key must always work.
    ApiKeysCreated,
    /// `GET /api/v1/me/export`.
    DataExports,
    /// Files attached to messages (one use per file).
    AttachmentsUploaded,
    /// Conversations started: a monthly quota (UTC calendar months).
    ConversationsCreated,
}

/// The window a quota counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The first day of the window `now` falls in (the key its uses are counted under).
    pub fn start(self, now: OffsetDateTime) -> time::Date {
        let day = now.to_offset(time::UtcOffset::UTC).date();
        match self {
            Period::Day => day,
            Period::Month => day.replace_day(1).unwrap_or(day),
        }
    }

    /// When the window `now` falls in ends.
    pub fn reset_at(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Period::Day => reset_at(now),
            Period::Month => {
                let first = self.start(now);
                let (year, month) = match first.month() {
                    time::Month::December => (first.year() + 1, time::Month::January),
                    m => (first.year(), m.next()),
                };
                time::Date::from_calendar_date(year, month, 1)
                    .map(|d| d.midnight().assume_utc())
                    .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
            }
        }
    }
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 5] = [
        QuotaKind::MessagesSent,
        QuotaKind::ApiKeysCreated,
        QuotaKind::DataExports,
        QuotaKind::AttachmentsUploaded,
        QuotaKind::ConversationsCreated,
    ];

    pub fn period(self) -> Period {
        match self {
            QuotaKind::ConversationsCreated => Period::Month,
            _ => Period::Day,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::MessagesSent => "messages_sent",
            QuotaKind::ApiKeysCreated => "api_keys_created",
            QuotaKind::DataExports => "data_exports",
            QuotaKind::AttachmentsUploaded => "attachments_uploaded",
            QuotaKind::ConversationsCreated => "conversations_created",
        }
    }

    fn default_limit(self, settings: &QuotaSettings) -> Option<u32> {
        match self {
            QuotaKind::MessagesSent => settings.messages_sent_per_day,
            QuotaKind::ApiKeysCreated => settings.api_keys_created_per_day,
            QuotaKind::DataExports => settings.data_exports_per_day,
            QuotaKind::AttachmentsUploaded => settings.attachments_uploaded_per_day,
            QuotaKind::ConversationsCreated => settings.conversations_created_per_month,
        }
    }
}

/// The daily limit of `kind` for a user of `role` (`None`: unlimited).
pub fn user_limit(settings: &QuotaSettings, role: Role, kind: QuotaKind) -> Option<u32> {
    let configured = settings
        .overrides
        .iter()
        .find(|o| o.scope == role.as_str() && o.kind == kind.as_str());
    match configured {
        Some(o) => o.limit,
        None if role == Role::Admin => None,
        None => kind.default_limit(settings),
    }
}

/// The daily limit of `kind` for each API key, if one is configured.
pub fn key_limit(settings: &QuotaSettings, kind: QuotaKind) -> Option<u32> {
    settings
        .overrides
        .iter()
        .find(|o| o.scope == "api_key" && o.kind == kind.as_str())
        .and_then(|o| o.limit)
}

/// The start of the next UTC day: when today's counts stop applying.
pub fn reset_at(now: OffsetDateTime) -> OffsetDateTime {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    today
        .next_day()
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

/// Counts one use of `kind` for the principal (and for its API key, when keys have a limit of
/// their own), inside the caller's transaction.
pub fn consume(
    conn: &mut PgConnection,
    settings: &QuotaSettings,
    principal: &Principal,
    kind: QuotaKind,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let period = kind.period();
    let day = period.start(now);
    let mut subjects = Vec::with_capacity(2);
    if let Some(limit) = user_limit(settings, principal.role, kind) {
        subjects.push(("user", principal.user_id, limit));
    }
    if let Credential::ApiKey { key_id, .. } = principal.credential
        && let Some(limit) = key_limit(settings, kind)
    {
        subjects.push(("api_key", key_id, limit));
    }
    for (subject_type, subject_id, limit) in subjects {
        let usage = Usage {
            subject_type,
            subject_id,
            kind: kind.as_str(),
            day,
        };
        if store::consume(conn, &usage, limit)?.is_none() {
            let reset_at = period.reset_at(now);
            return Err(AppError::QuotaExceeded {
                quota: kind.as_str(),
                period: period.as_str(),
                limit,
                reset_at,
                retry_after: u64::try_from((reset_at - now).whole_seconds())
                    .unwrap_or(0)
                    .max(1),
            });
        }
    }
    Ok(())
}

/// One quota's standing for a user (the console's figures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaStanding {
    pub kind: QuotaKind,
    pub used: u32,
    /// `None`: unlimited.
    pub limit: Option<u32>,
}

/// Every quota's use in its current window by `user_id` of `role`.
pub fn standing(
    conn: &mut PgConnection,
    settings: &QuotaSettings,
    user_id: uuid::Uuid,
    role: Role,
    now: OffsetDateTime,
) -> diesel::QueryResult<Vec<QuotaStanding>> {
    QuotaKind::ALL
        .iter()
        .map(|&kind| {
            let used = store::used(
                conn,
                &Usage {
                    subject_type: "user",
                    subject_id: user_id,
                    kind: kind.as_str(),
                    day: kind.period().start(now),
                },
            )?;
            Ok(QuotaStanding {
                kind,
                used: u32::try_from(used).unwrap_or(0),
                limit: user_limit(settings, role, kind),
            })
        })
        .collect()
}

/// Records `quota.exceeded` when `result` is a quota refusal (aggregated per IP, quota and
/// minute: a client retrying in a loop costs one row a minute), then hands `result` back.
pub async fn audited<T>(
    state: &AppState,
    principal: &Principal,
    meta: RequestMeta,
    result: Result<T, AppError>,
) -> Result<T, AppError> {
    if let Err(AppError::QuotaExceeded {
        quota,
        limit,
        reset_at,
        ..
    }) = &result
    {
        let auditor = state.auditor.clone();
        let event = Event::new(Action::QuotaExceeded, Outcome::Denied, principal.actor())
            .target("user", principal.user_id)
            .metadata(json!({
                "quota": quota,
                "limit": limit,
                "resets_at": crate::clock::rfc3339(*reset_at),
            }));
        let scope = *quota;
        let recorded = state
            .pool
            .run(move |conn| {
                auditor.record_aggregated_as(conn, &meta, event, scope, 1)?;
                Ok(())
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(error = %error, "could not record quota.exceeded");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::QuotaOverride;

    fn settings(overrides: &[(&str, &str, Option<u32>)]) -> QuotaSettings {
        QuotaSettings {
            messages_sent_per_day: Some(100),
            api_keys_created_per_day: Some(20),
            data_exports_per_day: Some(5),
            attachments_uploaded_per_day: Some(20),
            conversations_created_per_month: Some(50),
            overrides: overrides
                .iter()
                .map(|(scope, kind, limit)| QuotaOverride {
                    scope: scope.to_string(),
                    kind: kind.to_string(),
                    limit: *limit,
                })
                .collect(),
        }
    }

    #[test]
    fn defaults_apply_to_members_and_admins_are_unlimited_unless_configured() {
        let s = settings(&[]);
        assert_eq!(
            user_limit(&s, Role::TeamMember, QuotaKind::MessagesSent),
            Some(100)
        );
        assert_eq!(
            user_limit(&s, Role::TeamMember, QuotaKind::ApiKeysCreated),
            Some(20)
        );
        assert_eq!(user_limit(&s, Role::Demo, QuotaKind::DataExports), Some(5));
        assert_eq!(user_limit(&s, Role::Admin, QuotaKind::DataExports), None);
        assert_eq!(key_limit(&s, QuotaKind::MessagesSent), None);

        let s = settings(&[
            ("admin", "data_exports", Some(50)),
            ("demo", "messages_sent", Some(3)),
            ("team_member", "api_keys_created", None),
            ("api_key", "messages_sent", Some(7)),
        ]);
        assert_eq!(
            user_limit(&s, Role::Admin, QuotaKind::DataExports),
            Some(50)
        );
        assert_eq!(user_limit(&s, Role::Admin, QuotaKind::MessagesSent), None);
        assert_eq!(user_limit(&s, Role::Demo, QuotaKind::MessagesSent), Some(3));
        assert_eq!(
            user_limit(&s, Role::TeamMember, QuotaKind::ApiKeysCreated),
            None
        );
        assert_eq!(key_limit(&s, QuotaKind::MessagesSent), Some(7));
    }

    #[test]
    fn monthly_quotas_count_from_the_first_and_reset_at_the_next_month() {
        let at = time::macros::datetime!(2026-12-31 23:59:59 UTC);
        assert_eq!(Period::Month.start(at), time::macros::date!(2026 - 12 - 01));
        assert_eq!(
            Period::Month.reset_at(at),
            time::macros::datetime!(2027-01-01 0:00 UTC)
        );
        let at = time::macros::datetime!(2026-02-10 12:00 UTC);
        assert_eq!(
            Period::Month.reset_at(at),
            time::macros::datetime!(2026-03-01 0:00 UTC)
        );
        assert_eq!(QuotaKind::ConversationsCreated.period(), Period::Month);
        assert_eq!(QuotaKind::MessagesSent.period(), Period::Day);
    }

    #[test]
    fn quotas_reset_at_the_next_utc_midnight() {
        let at = time::macros::datetime!(2026-03-04 23:59:59 -02:00);
        assert_eq!(reset_at(at), time::macros::datetime!(2026-03-06 0:00 UTC));
        let at = time::macros::datetime!(2026-03-04 00:00 UTC);
        assert_eq!(reset_at(at), time::macros::datetime!(2026-03-05 0:00 UTC));
    }
}
