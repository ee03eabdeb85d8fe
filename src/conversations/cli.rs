//! The operator's conversation command: `rampart conversations prune` (message retention). One
//! line of output, an exit status scripts can use.

use std::process::ExitCode;

use diesel::PgConnection;

use crate::audit::{Actor, Auditor};
use crate::config::Settings;

/// `rampart conversations prune`: deletes messages (and their attachments) older than
/// MESSAGE_RETENTION_DAYS, in batches, each audited with its count.
pub fn cli_prune(settings: &Settings, auditor: &Auditor, conn: &mut PgConnection) -> ExitCode {
    let Some(days) = settings.conversations.retention_days else {
        println!("message retention is off (MESSAGE_RETENTION_DAYS=0): nothing to prune");
        return ExitCode::SUCCESS;
    };
    let now = time::OffsetDateTime::now_utc();
    match super::prune(conn, auditor, &settings.conversations, now, Actor::system()) {
        Ok(deleted) => {
            println!("deleted {deleted} messages older than {days} days");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "error: prune stopped: {error} (batches already deleted stay deleted, and are audited)"
            );
            ExitCode::FAILURE
        }
    }
}
