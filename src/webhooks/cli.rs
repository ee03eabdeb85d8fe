//! The operator's webhook commands: `rampart webhooks prune` and `rampart webhooks replay ID`.
//! One line of output each, an exit status scripts can use.

use std::process::ExitCode;

use diesel::{Connection, PgConnection};
use uuid::Uuid;

use super::{WebhookError, process};
use crate::audit::{Actor, Auditor, RequestMeta};
use crate::config::Settings;
use crate::error::AppError;

/// `rampart webhooks prune`: deletes deliveries older than WEBHOOK_RETENTION_DAYS.
pub fn cli_prune(settings: &Settings, auditor: &Auditor, conn: &mut PgConnection) -> ExitCode {
    let now = time::OffsetDateTime::now_utc();
    match super::prune(conn, auditor, &settings.webhooks, now) {
        Ok(deleted) => {
            println!(
                "deleted {deleted} webhook deliveries older than {} days",
                settings.webhooks.retention_days
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: prune failed, nothing was deleted: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `rampart webhooks replay ID`: re-runs a failed delivery's processing, audited as the system
/// (the operator at the command line).
pub fn cli_replay(
    settings: &Settings,
    auditor: &Auditor,
    conn: &mut PgConnection,
    raw_id: &str,
) -> ExitCode {
    let Ok(id) = Uuid::parse_str(raw_id.trim()) else {
        eprintln!("error: {:?} is not a delivery id (a UUID)", raw_id.trim());
        return ExitCode::from(2);
    };
    let meta = RequestMeta::default();
    let ctx = process::Context {
        auditor,
        meta: &meta,
        admin_emails: &settings.admin_emails,
        identity_admin_by_email: settings.identity_admin_by_email,
        now: time::OffsetDateTime::now_utc(),
    };
    let result = conn.transaction::<_, WebhookError, _>(|conn| {
        super::replay_in_tx(conn, &ctx, id, &Actor::system())
    });
    match result {
        Ok(event) => {
            match &event.error {
                Some(error) => println!(
                    "replayed {id} ({} {}): {} — {error}",
                    event.provider, event.event_type, event.outcome
                ),
                None => println!(
                    "replayed {id} ({} {}): {}",
                    event.provider, event.event_type, event.outcome
                ),
            }
            if event.outcome == super::Outcome::Failed.as_str() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(WebhookError::NotFound) => {
            eprintln!("error: no webhook delivery {id}");
            ExitCode::FAILURE
        }
        Err(WebhookError::App(AppError::Unavailable { .. })) => {
            eprintln!("error: the database is unavailable; nothing was replayed");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
