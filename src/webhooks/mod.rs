//! The verified webhook inbox: Stripe and Clerk (Svix / Standard Webhooks) deliveries.
//!
//! **Receiving.** `POST /api/v1/webhooks/stripe|clerk` take the body as raw bytes (a route body
//! limit of its own, WEBHOOK_MAX_BODY_BYTES, and no text-input checks: `http::limits::RawBodyRoutes`)
//! and verify the signature on those exact bytes ([`verify`]: pure functions) before anything
//! parses them. Several secrets per provider (newest first) make rotation gapless. A refused
//! delivery gets one generic 400 whatever failed, is never stored, and reaches the audit log as
//! `webhook.rejected`, aggregated per source IP and minute through the audit queue.
//!
//! **Exactly once.** A verified delivery is inserted into `webhook_events` and processed in the
//! same transaction. The unique key (provider, event id) makes a redelivery — also one racing the
//! first — insert nothing: it is answered 2xx as `duplicate` and counted on the stored row.
//!
//! **Processing** ([`process`]) runs in a savepoint: a failure that a retry would not fix (an
//! email already used by a local account, a customer not linked yet) is stored as `failed` with
//! its reason and still answered 2xx; an operator replays it ([`replay`]: CLI or console,
//! audited with the actor) once the cause is fixed. While the database is down the answer is 503
//! with `Retry-After`, and the provider retries.
//!
//! **Retention.** Deliveries are kept WEBHOOK_RETENTION_DAYS (7 by default: longer than the
//! providers' ~3-day retry horizon, so a redelivery always finds its row), pruned at start and
//! by `rampart webhooks prune`.

pub mod cli;
pub mod model;
pub mod process;
pub mod routes;
pub mod store;
pub mod verify;

pub use model::{Outcome, Provider, SubscriptionView, WebhookEvent};
pub use verify::Rejection;

use std::sync::Arc;

use diesel::Connection;
use diesel::PgConnection;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Action, Actor, Aggregated, AuditQueue, Auditor, Event, RequestMeta};
use crate::config::Settings;
use crate::config::settings::WebhookSettings;
use crate::crypto::hmac::HmacKey;
use crate::error::AppError;
use crate::state::AppState;

/// The one answer to every refused delivery: it does not say which check failed.
pub const REFUSED: &str = "The webhook delivery could not be verified.";

/// The webhook routes and the providers they receive from.
pub const ROUTES: [(&str, Provider); 2] = [
    ("/api/v1/webhooks/stripe", Provider::Stripe),
    ("/api/v1/webhooks/clerk", Provider::Clerk),
];

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The delivery failed verification (the reason is audited, never told).
    #[error("webhook delivery refused: {}", .0.as_str())]
    Rejected(Rejection),
    /// Verified, but not an event (not a JSON object with a usable id and type).
    #[error("the delivery is not an event rampart can read")]
    NotAnEvent,
    /// No secret is configured for the provider: its route receives nothing.
    #[error("{0} webhooks are not configured")]
    NotConfigured(&'static str),
    #[error("no such webhook delivery")]
    NotFound,
    /// Only failed deliveries are replayed (a processed one would be applied twice).
    #[error("only failed deliveries can be replayed; this one is {0}")]
    NotReplayable(String),
    #[error("the secrets of {0} are not usable: {1}")]
    BadSecret(&'static str, String),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<WebhookError> for AppError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Rejected(_) => AppError::BadRequest(REFUSED.into()),
            WebhookError::NotAnEvent => AppError::BadRequest(
                "The delivery is not an event rampart can read (a JSON object with an id and a \
                 type)."
                    .into(),
            ),
            WebhookError::NotConfigured(_) | WebhookError::NotFound => AppError::NotFound,
            WebhookError::NotReplayable(outcome) => {
                AppError::Conflict(vec![crate::error::FieldError::new(
                    "outcome",
                    format!("is {outcome}: only failed deliveries can be replayed"),
                )])
            }
            WebhookError::BadSecret(..) => AppError::internal(anyhow::anyhow!("{error}")),
            WebhookError::App(error) => error,
        }
    }
}

impl From<diesel::result::Error> for WebhookError {
    fn from(error: diesel::result::Error) -> Self {
        WebhookError::App(error.into())
    }
}

/// The inbox's keys and settings, built once at start (a bad secret stops the service).
#[derive(Debug, Clone)]
pub struct Inbox {
    stripe: Arc<Vec<HmacKey>>,
    clerk: Arc<Vec<HmacKey>>,
    settings: WebhookSettings,
    queue: Option<AuditQueue>,
}

impl Inbox {
    /// The verifiers' keys from STRIPE_WEBHOOK_SECRET and CLERK_WEBHOOK_SECRET (comma-separated,
    /// newest first). Stripe keys are the `whsec_…` strings' bytes; Clerk keys the decoded base64.
    /// `queue` records refusals (none in tools that never receive).
    pub fn from_settings(
        settings: &Settings,
        queue: Option<AuditQueue>,
    ) -> Result<Inbox, WebhookError> {
        use secrecy::ExposeSecret;
        let keys = |name: &'static str,
                    secret: Option<&secrecy::SecretString>|
         -> Result<Vec<HmacKey>, WebhookError> {
            let Some(secret) = secret else {
                return Ok(Vec::new());
            };
            let list = crate::config::validate::webhook_secret_list(name, secret.expose_secret())
                .map_err(|e| WebhookError::BadSecret(name, e))?;
            Ok(list
                .into_iter()
                .map(|s| match name {
                    "CLERK_WEBHOOK_SECRET" => crate::config::validate::standard_webhooks_key(s)
                        .map(|k| HmacKey::new(&k))
                        .unwrap_or_else(|| HmacKey::new(s.as_bytes())),
                    _ => HmacKey::new(s.as_bytes()),
                })
                .collect())
        };
        let stripe = keys(
            "STRIPE_WEBHOOK_SECRET",
            settings.secrets.stripe_webhook_secret.as_ref(),
        )?;
        let clerk = keys(
            "CLERK_WEBHOOK_SECRET",
            settings.secrets.clerk_webhook_secret.as_ref(),
        )?;
        Ok(Inbox {
            stripe: Arc::new(stripe),
            clerk: Arc::new(clerk),
            settings: settings.webhooks,
            queue,
        })
    }

    /// The raw-body routes and their limit, for the edge (`http::EdgeConfig`).
    pub fn raw_body_routes(settings: &Settings) -> Vec<(String, usize)> {
        ROUTES
            .iter()
            .map(|(path, _)| (path.to_string(), settings.webhooks.max_body_bytes))
            .collect()
    }

    /// Verifies a delivery; a refusal is reported to the audit queue.
    pub fn verify(
        &self,
        delivery: &Delivery,
        now: i64,
        meta: &RequestMeta,
    ) -> Result<Verified, WebhookError> {
        let tolerance = self.settings.timestamp_tolerance;
        let result = match delivery.provider {
            Provider::Stripe => {
                if self.stripe.is_empty() {
                    return Err(WebhookError::NotConfigured("Stripe"));
                }
                verify::verify_stripe(
                    delivery.header("stripe-signature"),
                    &delivery.body,
                    &self.stripe,
                    now,
                    tolerance,
                )
                .map(|v| (None, v))
            }
            Provider::Clerk => {
                if self.clerk.is_empty() {
                    return Err(WebhookError::NotConfigured("Clerk"));
                }
                let headers = verify::StandardHeaders {
                    id: delivery.standard_header("id"),
                    timestamp: delivery.standard_header("timestamp"),
                    signature: delivery.standard_header("signature"),
                };
                verify::verify_standard(&headers, &delivery.body, &self.clerk, now, tolerance)
                    .map(|(id, v)| (Some(id), v))
            }
        };
        match result {
            Ok((header_id, verified)) => Ok(Verified {
                header_id,
                timestamp: verified.timestamp,
                secret_index: verified.secret_index,
            }),
            Err(rejection) => {
                self.reject(delivery.provider, rejection.as_str(), meta);
                Err(WebhookError::Rejected(rejection))
            }
        }
    }

    fn reject(&self, provider: Provider, reason: &str, meta: &RequestMeta) {
        tracing::info!(
            provider = provider.as_str(),
            reason,
            "webhook delivery refused"
        );
        if let Some(queue) = &self.queue {
            queue.report(Aggregated {
                meta: meta.clone(),
                event: Event::new(
                    Action::WebhookRejected,
                    crate::audit::Outcome::Denied,
                    Actor::anonymous(),
                )
                .metadata(json!({ "provider": provider.as_str(), "reason": reason })),
                scope: provider.as_str().to_string(),
            });
        }
    }
}

/// A delivery as received: the provider, the headers that matter (lower-case names, raw bytes)
/// and the exact body.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub provider: Provider,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub body: bytes::Bytes,
}

impl Delivery {
    /// The headers each provider's deliveries are read from (and stored with).
    pub const HEADERS: [&'static str; 9] = [
        "stripe-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "user-agent",
    ];

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// `svix-<part>`, else its Standard Webhooks alias `webhook-<part>`.
    fn standard_header(&self, part: &str) -> Option<&[u8]> {
        self.header(&format!("svix-{part}"))
            .or_else(|| self.header(&format!("webhook-{part}")))
    }

    /// The stored copy of the headers (visible text, bounded; signatures kept as evidence).
    fn headers_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let text: String = String::from_utf8_lossy(value)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(1024)
                    .collect();
                ((*name).to_string(), Value::String(text))
            })
            .collect();
        Value::Object(map)
    }
}

/// A delivery that passed verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The id from the Standard Webhooks headers (Stripe's is in the body).
    pub header_id: Option<String>,
    pub timestamp: i64,
    pub secret_index: usize,
}

/// What the sender is told about an accepted delivery.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Receipt {
    pub id: Uuid,
    pub event_id: String,
    /// `processed`, `ignored`, `failed` (stored; an operator can replay it) or `duplicate`.
    pub outcome: String,
}

/// Receives a delivery: verify, store, process, all or nothing (see the module documentation).
pub async fn receive(
    state: &AppState,
    inbox: &Inbox,
    delivery: Delivery,
    meta: RequestMeta,
) -> Result<Receipt, WebhookError> {
    let now = state.clock.now();
    let verified = inbox.verify(&delivery, now.unix_timestamp(), &meta)?;
    let Some(envelope) = model::envelope(&delivery.body, verified.header_id.as_deref()) else {
        inbox.reject(delivery.provider, "not_an_event", &meta);
        return Err(WebhookError::NotAnEvent);
    };
    let handled = process::handles(delivery.provider, &envelope.event_type);
    // The whole document is read only for the events rampart acts on.
    let body = if handled {
        serde_json::from_slice::<Value>(&delivery.body).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let signed_at = OffsetDateTime::from_unix_timestamp(verified.timestamp).unwrap_or(now);
    let auditor = state.auditor.clone();
    let admin_emails = state.settings.admin_emails.clone();
    let admin_by_email = state.settings.identity_admin_by_email;
    let receipt = state
        .pool
        .run(move |conn| {
            let headers = delivery.headers_json();
            let provider = delivery.provider;
            let signature = format!("verified:secret{}", verified.secret_index);
            let new = model::NewWebhookEvent {
                id: Uuid::now_v7(),
                provider: provider.as_str(),
                event_id: &envelope.event_id,
                event_type: &envelope.event_type,
                received_at: now,
                signature: &signature,
                signed_at,
                outcome: Outcome::Ignored.as_str(),
                last_delivery_at: now,
                // An event rampart does not act on is done once stored.
                processed_at: (!handled).then_some(now),
                raw_body: &delivery.body,
                headers: &headers,
                request_id: meta.request_id.as_deref(),
                source_ip: meta.ip.map(|ip| ipnet::IpNet::from(ip.to_canonical())),
            };
            let receipt = |id: Uuid, outcome: Outcome| Receipt {
                id,
                event_id: envelope.event_id.clone(),
                outcome: outcome.as_str().into(),
            };
            let duplicate = |conn: &mut PgConnection| -> Result<Receipt, AppError> {
                let id = store::count_redelivery(conn, provider.as_str(), &envelope.event_id, now)?
                    .map_or(new.id, |(id, _)| id);
                Ok(receipt(id, Outcome::Duplicate))
            };
            if !handled {
                // Nothing to apply: the one INSERT is the whole, atomic, job.
                return match store::insert_alone(conn, &new)? {
                    Some(id) => Ok(receipt(id, Outcome::Ignored)),
                    None => duplicate(conn),
                };
            }
            conn.transaction::<_, AppError, _>(|conn| {
                let Some(row_id) = store::insert_new(conn, &new)? else {
                    return duplicate(conn);
                };
                let ctx = process::Context {
                    auditor: &auditor,
                    meta: &meta,
                    admin_emails: &admin_emails,
                    identity_admin_by_email: admin_by_email,
                    now,
                };
                let outcome = run_processing(conn, &ctx, provider, &envelope, &body, row_id, None)?;
                Ok(receipt(row_id, outcome))
            })
        })
        .await?;
    Ok(receipt)
}

/// Processes in a savepoint, stores the outcome, and audits processed and failed deliveries
/// (`replayed_by`: the actor of a replay).
fn run_processing(
    conn: &mut PgConnection,
    ctx: &process::Context<'_>,
    provider: Provider,
    envelope: &model::Envelope,
    body: &Value,
    row_id: Uuid,
    replayed_by: Option<&Actor>,
) -> Result<Outcome, AppError> {
    let applied = conn.transaction::<_, process::Failure, _>(|conn| {
        process::apply(conn, ctx, provider, envelope, body)
    });
    let (outcome, error) = match applied {
        Ok(outcome) => (outcome, None),
        Err(process::Failure::Conflict(sentence)) => (Outcome::Failed, Some(sentence)),
        Err(process::Failure::App(error)) => return Err(error),
    };
    store::set_outcome(conn, row_id, outcome.as_str(), error.as_deref(), ctx.now)?;
    let metadata = json!({
        "provider": provider.as_str(),
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "outcome": outcome.as_str(),
        "error": error,
    });
    let audit_outcome = if outcome == Outcome::Failed {
        crate::audit::Outcome::Failure
    } else {
        crate::audit::Outcome::Success
    };
    match replayed_by {
        Some(actor) => {
            ctx.auditor.record(
                conn,
                ctx.meta,
                Event::new(Action::WebhookReplayed, audit_outcome, actor.clone())
                    .target("webhook_event", row_id)
                    .metadata(metadata),
            )?;
        }
        None if outcome != Outcome::Ignored => {
            ctx.auditor.record(
                conn,
                ctx.meta,
                Event::new(Action::WebhookReceived, audit_outcome, Actor::system())
                    .target("webhook_event", row_id)
                    .metadata(metadata),
            )?;
        }
        None => {}
    }
    Ok(outcome)
}

/// Re-runs the processing of a failed delivery (the stored, verified body), audited with `actor`.
/// Only `failed` deliveries are replayed; two replays at once are serialised by the row lock.
pub async fn replay(
    state: &AppState,
    id: Uuid,
    actor: Actor,
    meta: RequestMeta,
) -> Result<WebhookEvent, WebhookError> {
    let now = state.clock.now();
    let auditor = state.auditor.clone();
    let admin_emails = state.settings.admin_emails.clone();
    let admin_by_email = state.settings.identity_admin_by_email;
    state
        .pool
        .run(move |conn| {
            let result = conn.transaction::<_, WebhookError, _>(|conn| {
                let ctx = process::Context {
                    auditor: &auditor,
                    meta: &meta,
                    admin_emails: &admin_emails,
                    identity_admin_by_email: admin_by_email,
                    now,
                };
                replay_in_tx(conn, &ctx, id, &actor)
            });
            match result {
                Err(WebhookError::App(error)) => Err(error),
                other => Ok(other),
            }
        })
        .await?
}

/// The replay itself, inside the caller's transaction (also used by the CLI).
pub fn replay_in_tx(
    conn: &mut PgConnection,
    ctx: &process::Context<'_>,
    id: Uuid,
    actor: &Actor,
) -> Result<WebhookEvent, WebhookError> {
    let Some(row) = store::lock(conn, id)? else {
        return Err(WebhookError::NotFound);
    };
    if row.outcome != Outcome::Failed.as_str() {
        return Err(WebhookError::NotReplayable(row.outcome));
    }
    let provider = Provider::parse(&row.provider).ok_or(WebhookError::NotFound)?;
    let body: Value = serde_json::from_slice(&row.raw_body).unwrap_or(Value::Null);
    let envelope = model::Envelope {
        event_id: row.event_id.clone(),
        event_type: row.event_type.clone(),
    };
    store::count_replay(conn, id)?;
    run_processing(conn, ctx, provider, &envelope, &body, id, Some(actor))?;
    store::get(conn, id)?.ok_or(WebhookError::NotFound)
}

/// Deletes deliveries older than WEBHOOK_RETENTION_DAYS (audited when any were deleted).
pub fn prune(
    conn: &mut PgConnection,
    auditor: &Auditor,
    settings: &WebhookSettings,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let before = now - time::Duration::days(i64::from(settings.retention_days));
    conn.transaction::<_, AppError, _>(|conn| {
        let deleted = store::prune(conn, before)?;
        if deleted > 0 {
            auditor.record(
                conn,
                &RequestMeta::default(),
                Event::new(
                    Action::WebhookPruned,
                    crate::audit::Outcome::Success,
                    Actor::system(),
                )
                .metadata(json!({
                    "deleted": deleted,
                    "before": crate::clock::rfc3339(before),
                    "retention_days": settings.retention_days,
                })),
            )?;
        }
        Ok(deleted)
    })
}

/// How often a running service prunes the inbox (besides once at start).
pub const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Prunes the inbox now (at start) and every [`PRUNE_INTERVAL`]; a failure (the database is not
/// up yet) is logged and retried at the next round.
pub fn spawn_pruner(pool: crate::db::Pool, auditor: Auditor, settings: WebhookSettings) {
    actix_web::rt::spawn(async move {
        let mut interval = actix_web::rt::time::interval(PRUNE_INTERVAL);
        loop {
            interval.tick().await;
            let auditor = auditor.clone();
            let result = pool
                .run(move |conn| prune(conn, &auditor, &settings, OffsetDateTime::now_utc()))
                .await;
            match result {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "webhook deliveries pruned"),
                Err(error) => tracing::warn!(error = %error, "webhook inbox not pruned"),
            }
        }
    });
}

/// What account erasure removed from the webhook tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub subscription_scrubbed: bool,
    pub events_redacted: usize,
}

/// Account erasure, inside the caller's transaction: the subscription keeps its status and dates
/// but loses the Stripe customer, subscription and price ids, and every stored delivery whose
/// body mentions one of `needles` (the user's email addresses, provider subjects, Stripe ids) has
/// its body emptied (it can no longer be replayed; its row, outcome and signature stay). Needles
/// shorter than 6 bytes are skipped (they would match unrelated deliveries).
pub fn forget_user_in_tx(
    conn: &mut PgConnection,
    user_id: Uuid,
    needles: &[String],
    now: OffsetDateTime,
) -> Result<Forgotten, AppError> {
    let mut needles: Vec<String> = needles.to_vec();
    if let Some(row) = store::subscription_of_user(conn, user_id)? {
        needles.extend(row.customer_id);
        needles.extend(row.subscription_id);
    }
    let subscription_scrubbed = store::scrub_subscription(conn, user_id, now)? > 0;
    needles.sort();
    needles.dedup();
    let mut events_redacted = 0;
    for needle in needles.iter().filter(|n| n.len() >= 6) {
        events_redacted += store::redact_bodies_containing(conn, needle.as_bytes())?;
    }
    Ok(Forgotten {
        subscription_scrubbed,
        events_redacted,
    })
}

/// The user's subscription, if any, inside the caller's connection (their data export).
pub fn subscription_in(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<SubscriptionView>, AppError> {
    Ok(store::subscription_of_user(conn, user_id)?
        .as_ref()
        .map(SubscriptionView::from))
}

/// The caller's subscription (`GET /api/v1/me/subscription`).
pub async fn subscription_of(
    state: &AppState,
    user_id: Uuid,
) -> Result<SubscriptionView, WebhookError> {
    let row = state
        .pool
        .run(move |conn| Ok(store::subscription_of_user(conn, user_id)?))
        .await?;
    row.as_ref()
        .map(SubscriptionView::from)
        .ok_or(WebhookError::NotFound)
}

/// Filters of the console's inbox list.
pub use store::EventQuery;

/// One page of the inbox, newest first.
pub struct EventPage {
    pub items: Vec<WebhookEvent>,
    pub next: Option<Uuid>,
}

pub async fn list(state: &AppState, query: EventQuery, limit: i64) -> Result<EventPage, AppError> {
    state
        .pool
        .run(move |conn| {
            let mut items = store::list(conn, &query, limit + 1)?;
            let next = if items.len() as i64 > limit {
                items.truncate(usize::try_from(limit).unwrap_or(0));
                items.last().map(|e| e.id)
            } else {
                None
            };
            Ok(EventPage { items, next })
        })
        .await
}

pub async fn get(state: &AppState, id: Uuid) -> Result<WebhookEvent, WebhookError> {
    state
        .pool
        .run(move |conn| Ok(store::get(conn, id)?))
        .await?
        .ok_or(WebhookError::NotFound)
}

/// Deliveries whose processing failed since `since` (the dashboard's card).
pub fn failed_since(conn: &mut PgConnection, since: OffsetDateTime) -> Result<i64, AppError> {
    Ok(store::count_failed_since(conn, since)?)
}
