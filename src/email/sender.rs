//! The outbox's background sender. Each round claims up to [`BATCH`] due rows with
//! `FOR UPDATE SKIP LOCKED` inside one transaction, delivers each, and records the result in the
//! same transaction: sent (bodies emptied), due again after exponential back-off, or `failed`
//! after `EMAIL_MAX_ATTEMPTS` or a permanent refusal (5xx). Another instance's sender skips the
//! rows this one holds, so no row is sent twice at once; a crash between the server's answer and
//! the commit sends that row again (at least once).
//!
//! Backends: SMTP through lettre (`SMTP_URL`: `smtp://host:587?tls=required` for STARTTLS,
//! `smtps://host:465` for implicit TLS, plain `smtp://` only to a loopback host in production),
//! or the log (`EMAIL_BACKEND=log`, development): each mail is written to the log and as an
//! `.eml` file into `EMAIL_LOG_DIR`.

use std::sync::Arc;

use diesel::prelude::*;
use lettre::message::{Mailbox, MultiPart};
use lettre::{Message, SmtpTransport, Transport as _};
use time::OffsetDateTime;

use super::model::{OutboxRow, backoff};
use super::store;
use crate::config::settings::{EmailBackend, EmailSettings};
use crate::error::AppError;
use crate::state::AppState;

/// Rows claimed per round.
pub const BATCH: i64 = 20;

/// Where mails go.
#[derive(Clone)]
pub enum Transport {
    Smtp(Box<SmtpTransport>),
    Log(std::path::PathBuf),
}

/// Why a delivery did not happen.
#[derive(Debug)]
pub struct DeliveryError {
    pub message: String,
    /// The server refused for good (5xx): no retry.
    pub permanent: bool,
}

impl Transport {
    pub fn from_settings(settings: &EmailSettings) -> Result<Transport, String> {
        match settings.backend {
            EmailBackend::Log => Ok(Transport::Log(settings.log_dir.clone())),
            EmailBackend::Smtp => {
                use secrecy::ExposeSecret;
                let url = settings
                    .smtp_url
                    .as_ref()
                    .ok_or("EMAIL_BACKEND=smtp needs SMTP_URL")?;
                let transport = SmtpTransport::from_url(url.expose_secret())
                    .map_err(|e| format!("SMTP_URL is not usable: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(15)))
                    .build();
                Ok(Transport::Smtp(Box::new(transport)))
            }
        }
    }

    /// Delivers one row (blocking).
    pub fn deliver(&self, from: &Mailbox, row: &OutboxRow) -> Result<(), DeliveryError> {
        let to: Mailbox = row.recipient.parse().map_err(|e| DeliveryError {
            message: format!("recipient address refused: {e}"),
            permanent: true,
        })?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(row.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                row.text_body.clone(),
                row.html_body.clone(),
            ))
            .map_err(|e| DeliveryError {
                message: format!("message could not be built: {e}"),
                permanent: true,
            })?;
        match self {
            Transport::Smtp(smtp) => smtp.send(&message).map(|_| ()).map_err(|e| DeliveryError {
                permanent: e.is_permanent(),
                message: e.to_string(),
            }),
            Transport::Log(dir) => {
                let file = dir.join(format!(
                    "{}-{}.eml",
                    row.created_at.unix_timestamp(),
                    row.id
                ));
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&file, message.formatted()))
                    .map_err(|e| DeliveryError {
                        message: format!("cannot write {}: {e}", file.display()),
                        permanent: false,
                    })?;
                tracing::info!(
                    to = %row.recipient,
                    subject = %row.subject,
                    file = %file.display(),
                    body = %row.text_body,
                    "mail (EMAIL_BACKEND=log: not sent)"
                );
                Ok(())
            }
        }
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
}

/// One round: claim, deliver, record — in one transaction.
pub fn deliver_due(
    conn: &mut PgConnection,
    transport: &Transport,
    settings: &EmailSettings,
    now: OffsetDateTime,
) -> Result<Round, AppError> {
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|e| AppError::internal(anyhow::anyhow!("SMTP_FROM is not an address: {e}")))?;
    conn.transaction::<_, AppError, _>(|conn| {
        let rows = store::claim_due(conn, now, BATCH)?;
        let mut round = Round::default();
        for row in rows {
            match transport.deliver(&from, &row) {
                Ok(()) => {
                    store::mark_sent(conn, row.id, now)?;
                    round.sent += 1;
                }
                Err(error) => {
                    let attempts = row.attempts.saturating_add(1);
                    let give_up = error.permanent
                        || attempts >= i32::try_from(settings.max_attempts).unwrap_or(i32::MAX);
                    let next = (!give_up)
                        .then(|| crate::clock::after(now, backoff(attempts, settings.retry_base)));
                    let message: String = error.message.chars().take(500).collect();
                    store::mark_attempt_failed(conn, row.id, &message, next)?;
                    if give_up {
                        round.failed += 1;
                        tracing::warn!(mail = %row.id, kind = %row.kind, attempts, error = %message,
                            "mail failed for good");
                    } else {
                        round.retrying += 1;
                        tracing::info!(mail = %row.id, kind = %row.kind, attempts, error = %message,
                            "mail not delivered; will retry");
                    }
                }
            }
        }
        Ok(round)
    })
}

/// Starts this instance's sender: a round every `EMAIL_POLL_INTERVAL_MS`, and at once again
/// while rounds find work. A configuration the sender cannot use is logged (check-config reports
/// it before start in production).
pub fn spawn(state: &AppState) {
    let settings = state.settings.email.clone();
    let transport = match Transport::from_settings(&settings) {
        Ok(transport) => Arc::new(transport),
        Err(error) => {
            tracing::error!(%error, "the mail sender is not running");
            return;
        }
    };
    let pool = state.pool.clone();
    let clock = state.clock.clone();
    tokio::spawn(async move {
        loop {
            let (transport, settings_for_round) = (transport.clone(), settings.clone());
            let now = clock.now();
            let round = pool
                .run(move |conn| deliver_due(conn, &transport, &settings_for_round, now))
                .await;
            let busy = match round {
                Ok(round) => round.sent + round.retrying + round.failed > 0,
                Err(error) => {
                    tracing::warn!(%error, "mail sender round failed");
                    false
                }
            };
            if !busy {
                tokio::time::sleep(settings.poll_interval).await;
            }
        }
    });
}
