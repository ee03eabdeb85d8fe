//! Applying a verified event: Clerk's user lifecycle and Stripe's subscription lifecycle.
//!
//! Runs inside the delivery's transaction, in a savepoint of its own: a [`Failure`] (the event
//! cannot be applied — an email conflict, an unknown customer) rolls back only what processing did,
//! and the delivery is stored as `failed` with the failure's sentence, to be replayed once the
//! cause is fixed. Infrastructure errors end the whole transaction (the provider retries).
//!
//! Every change is audited in the same transaction, with the system actor and the event's
//! provider, id and type in the metadata.

use diesel::PgConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{Envelope, Outcome, Provider, Subscription, text_at, time_at};
use super::store;
use crate::audit::{Action, Actor, Auditor, Event, Outcome as AuditOutcome, RequestMeta};
use crate::auth::Role;
use crate::error::AppError;
use crate::identity;
use crate::users::{AdminGrant, Email, Username};

/// Why an event could not be applied (stored as the delivery's `error`).
#[derive(Debug)]
pub enum Failure {
    /// The event conflicts with local data; a sentence for the operator.
    Conflict(String),
    /// Anything else: the database failed (the whole delivery fails).
    App(AppError),
}

impl From<DieselError> for Failure {
    fn from(error: DieselError) -> Self {
        Failure::App(error.into())
    }
}

impl From<AppError> for Failure {
    fn from(error: AppError) -> Self {
        Failure::App(error)
    }
}

/// What processing needs besides the connection.
pub struct Context<'a> {
    pub auditor: &'a Auditor,
    pub meta: &'a RequestMeta,
    pub admin_emails: &'a [String],
    pub identity_admin_by_email: bool,
    pub now: OffsetDateTime,
}

/// The event types rampart acts on; every other type is stored and acknowledged as `ignored`.
pub const HANDLED: [(Provider, &str); 8] = [
    (Provider::Clerk, "user.created"),
    (Provider::Clerk, "user.updated"),
    (Provider::Clerk, "user.deleted"),
    (Provider::Stripe, "checkout.session.completed"),
    (Provider::Stripe, "customer.subscription.created"),
    (Provider::Stripe, "customer.subscription.updated"),
    (Provider::Stripe, "customer.subscription.deleted"),
    (Provider::Stripe, "invoice.payment_failed"),
];

/// Whether rampart acts on events of `event_type` from `provider`.
pub fn handles(provider: Provider, event_type: &str) -> bool {
    HANDLED
        .iter()
        .any(|(p, t)| *p == provider && *t == event_type)
}

/// Applies the event; `Ok(Processed | Ignored)` or the failure.
pub fn apply(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    provider: Provider,
    envelope: &Envelope,
    body: &Value,
) -> Result<Outcome, Failure> {
    // Stripe wraps the object in `data.object`; Clerk sends it as `data`.
    let data = match provider {
        Provider::Stripe => body.pointer("/data/object"),
        Provider::Clerk => body.get("data"),
    };
    let data = data.unwrap_or(&Value::Null);
    let audit = |conn: &mut PgConnection, action: Action, user: Option<Uuid>, extra: Value| {
        let mut metadata = json!({
            "via": format!("{}_webhook", provider.as_str()),
            "event_id": envelope.event_id,
            "event_type": envelope.event_type,
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut metadata, extra) {
            m.extend(e);
        }
        let mut event =
            Event::new(action, AuditOutcome::Success, Actor::system()).metadata(metadata);
        if let Some(user) = user {
            event = event.target("user", user);
        }
        ctx.auditor.record(conn, ctx.meta, event).map(|_| ())
    };
    match (provider, envelope.event_type.as_str()) {
        (Provider::Clerk, "user.created" | "user.updated") => {
            let clerk = ClerkUser::from_data(data)?;
            let (user, change) = sync_clerk_user(conn, ctx, &clerk)?;
            let action = match change {
                SyncChange::Created => Action::UserRegistered,
                SyncChange::Updated | SyncChange::Unchanged => Action::UserUpdated,
            };
            if change != SyncChange::Unchanged {
                // Provider ids of a person only as pseudonyms under the user's audit salt.
                let clerk_user = ctx.auditor.pseudonym(conn, Some(user), &clerk.id)?;
                audit(
                    conn,
                    action,
                    Some(user),
                    json!({ "clerk_user_pseudonym": clerk_user, "change": change.as_str() }),
                )?;
            }
            Ok(Outcome::Processed)
        }
        (Provider::Clerk, "user.deleted") => {
            let id = text_at(data, "/id").ok_or_else(|| conflict("the event has no user id"))?;
            let Some(link) = identity::find(conn, identity::CLERK, id)? else {
                // Never seen: there is nothing to switch off.
                return Ok(Outcome::Ignored);
            };
            let ended = crate::accounts::disable_in_tx(
                conn,
                ctx.auditor,
                ctx.meta,
                crate::accounts::Disable {
                    user_id: link.user_id,
                    actor: Actor::system(),
                    by: None,
                    reason: "deleted at the identity provider (Clerk)",
                    sessions_reason: "deleted_at_provider",
                },
                ctx.now,
            )?;
            identity::seen(conn, link.id, link.email.as_deref(), ctx.now)?;
            let clerk_user = ctx.auditor.pseudonym(conn, Some(link.user_id), id)?;
            audit(
                conn,
                Action::UserDisabled,
                Some(link.user_id),
                json!({
                    "clerk_user_pseudonym": clerk_user,
                    "reason": "deleted at the identity provider (Clerk)",
                    "api_keys_revoked": ended.api_keys,
                    "sessions_revoked": ended.sessions,
                }),
            )?;
            Ok(Outcome::Processed)
        }
        (Provider::Stripe, "checkout.session.completed") => {
            let user_id = text_at(data, "/client_reference_id")
                .and_then(|r| Uuid::parse_str(r).ok())
                .ok_or_else(|| {
                    conflict("the checkout has no client_reference_id naming a rampart user")
                })?;
            let customer = text_at(data, "/customer")
                .filter(|c| super::model::plain_token(c))
                .ok_or_else(|| conflict("the checkout has no customer id"))?;
            if crate::users::store::find(conn, user_id)?.is_none_or(|u| u.erased_at.is_some()) {
                return Err(conflict(&format!(
                    "client_reference_id {user_id} is not a rampart user"
                )));
            }
            let row = Subscription {
                user_id,
                customer_id: Some(customer.to_string()),
                subscription_id: text_at(data, "/subscription").map(str::to_string),
                price_id: None,
                status: "incomplete".into(),
                current_period_end: None,
                cancel_at_period_end: false,
                last_payment_failed_at: None,
                event_created_at: event_time(body, ctx.now),
                created_at: ctx.now,
                updated_at: ctx.now,
            };
            let saved = store::upsert_checkout(conn, &row).map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => conflict(
                    &format!("customer {customer} already belongs to another rampart user"),
                ),
                other => other.into(),
            })?;
            let customer = pseudonym_of(conn, ctx, user_id, saved.customer_id.as_deref())?;
            audit(
                conn,
                Action::SubscriptionUpdated,
                Some(user_id),
                json!({ "customer_pseudonym": customer, "status": saved.status }),
            )?;
            Ok(Outcome::Processed)
        }
        (
            Provider::Stripe,
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "invoice.payment_failed",
        ) => {
            let customer = text_at(data, "/customer")
                .ok_or_else(|| conflict("the event has no customer id"))?;
            let Some(mut row) = store::lock_subscription_of_customer(conn, customer)? else {
                return Err(conflict(&format!(
                    "customer {customer} is not linked to a rampart user (no completed checkout \
                     with a client_reference_id yet); replay this event once it is"
                )));
            };
            let created = event_time(body, ctx.now);
            if created < row.event_created_at {
                // Stripe does not promise order: an older event arriving late changes nothing.
                return Ok(Outcome::Ignored);
            }
            if envelope.event_type == "invoice.payment_failed" {
                row.last_payment_failed_at = Some(created);
            } else {
                row.subscription_id = text_at(data, "/id").map(str::to_string);
                row.status = text_at(data, "/status")
                    .filter(|s| super::model::plain_token(s))
                    .unwrap_or(if envelope.event_type.ends_with(".deleted") {
                        "canceled"
                    } else {
                        "unknown"
                    })
                    .to_string();
                row.price_id = text_at(data, "/items/data/0/price/id")
                    .or_else(|| text_at(data, "/plan/id"))
                    .map(str::to_string)
                    .or(row.price_id);
                // Newer API versions moved the period to the subscription item.
                row.current_period_end = time_at(data, "/current_period_end")
                    .or_else(|| time_at(data, "/items/data/0/current_period_end"));
                row.cancel_at_period_end = data
                    .get("cancel_at_period_end")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            }
            row.event_created_at = created;
            row.updated_at = ctx.now;
            store::save_subscription(conn, &row)?;
            let customer = pseudonym_of(conn, ctx, row.user_id, row.customer_id.as_deref())?;
            audit(
                conn,
                Action::SubscriptionUpdated,
                Some(row.user_id),
                json!({
                    "customer_pseudonym": customer,
                    "status": row.status,
                    "price_id": row.price_id,
                    "cancel_at_period_end": row.cancel_at_period_end,
                }),
            )?;
            Ok(Outcome::Processed)
        }
        _ => Ok(Outcome::Ignored),
    }
}

/// A Stripe customer id as a pseudonym under the user's audit salt (`None` once erased).
fn pseudonym_of(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    user_id: Uuid,
    customer: Option<&str>,
) -> diesel::QueryResult<Option<String>> {
    customer
        .map(|c| ctx.auditor.pseudonym(conn, Some(user_id), c))
        .transpose()
}

fn conflict(sentence: &str) -> Failure {
    Failure::Conflict(sentence.to_string())
}

/// Stripe's `created` (Unix seconds) of the event, else now.
fn event_time(body: &Value, now: OffsetDateTime) -> OffsetDateTime {
    time_at(body, "/created").unwrap_or(now)
}

/// The fields of a Clerk user object rampart keeps.
#[derive(Debug)]
struct ClerkUser {
    id: String,
    email: Option<String>,
    email_verified: bool,
    username: Option<String>,
}

impl ClerkUser {
    fn from_data(data: &Value) -> Result<ClerkUser, Failure> {
        let id = text_at(data, "/id")
            .filter(|id| super::model::plain_token(id))
            .ok_or_else(|| conflict("the event has no usable user id"))?;
        let primary = text_at(data, "/primary_email_address_id");
        let addresses = data
            .get("email_addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let chosen = addresses
            .iter()
            .find(|a| primary.is_some() && text_at(a, "/id") == primary)
            .or_else(|| addresses.first());
        Ok(ClerkUser {
            id: id.to_string(),
            email: chosen.and_then(|a| text_at(a, "/email_address").map(str::to_string)),
            email_verified: chosen
                .and_then(|a| text_at(a, "/verification/status"))
                .is_some_and(|s| s == "verified"),
            username: text_at(data, "/username").map(str::to_string),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncChange {
    Created,
    Updated,
    Unchanged,
}

impl SyncChange {
    fn as_str(self) -> &'static str {
        match self {
            SyncChange::Created => "created",
            SyncChange::Updated => "updated",
            SyncChange::Unchanged => "unchanged",
        }
    }
}

/// Creates or updates the local user of a Clerk user, keyed on the Clerk user id (never on the
/// email): an email already used by another local account is a conflict, never a merge.
fn sync_clerk_user(
    conn: &mut PgConnection,
    ctx: &Context<'_>,
    clerk: &ClerkUser,
) -> Result<(Uuid, SyncChange), Failure> {
    let email = match &clerk.email {
        Some(raw) => Some(Email::parse(raw).map_err(|e| {
            conflict(&format!(
                "the user's email address is not usable: {}",
                e.message
            ))
        })?),
        None => None,
    };
    let email_owner = |conn: &mut PgConnection, email: &Email| -> Result<Option<Uuid>, Failure> {
        Ok(crate::users::store::find_by_login(conn, email.as_str())?.map(|u| u.id))
    };
    if let Some(link) = identity::find(conn, identity::CLERK, &clerk.id)? {
        let Some(user) = crate::users::store::find(conn, link.user_id)? else {
            return Err(conflict("the linked local user no longer exists"));
        };
        let mut changed = false;
        if let Some(email) = &email
            && email.as_str() != user.email
        {
            if email_owner(conn, email)?.is_some_and(|owner| owner != user.id) {
                return Err(conflict(&format!(
                    "the new email address of Clerk user {} is already used by another local \
                     account; not merged",
                    clerk.id
                )));
            }
            crate::users::store::set_email(conn, user.id, email.as_str(), ctx.now)?;
            changed = true;
        }
        if let Some(username) = clerk
            .username
            .as_deref()
            .and_then(|u| Username::parse(u).ok())
            && !username.as_str().eq_ignore_ascii_case(&user.username)
            && !crate::users::store::username_taken(conn, username.as_str())?
        {
            crate::users::store::set_username(conn, user.id, username.as_str(), ctx.now)?;
            changed = true;
        }
        identity::seen(conn, link.id, email.as_ref().map(Email::as_str), ctx.now)?;
        let change = if changed {
            SyncChange::Updated
        } else {
            SyncChange::Unchanged
        };
        return Ok((user.id, change));
    }
    let Some(email) = email else {
        return Err(conflict(&format!(
            "Clerk user {} has no email address; rampart accounts need one",
            clerk.id
        )));
    };
    if email_owner(conn, &email)?.is_some() {
        return Err(conflict(&format!(
            "the email address of Clerk user {} is already used by a local account; not merged \
             (the account's owner can link it, or an admin can)",
            clerk.id
        )));
    }
    let listed = ctx.admin_emails.iter().any(|a| a == email.as_str());
    let admin = listed && ctx.identity_admin_by_email && clerk.email_verified;
    let (role, grant) = if admin {
        (Role::Admin, Some(AdminGrant::VerifiedEmail))
    } else {
        (Role::DEFAULT, None)
    };
    let username = crate::users::free_username(conn, clerk.username.as_deref(), &email)?;
    let user = crate::accounts::create_user(conn, &username, &email, None, role, grant, ctx.now)
        .map_err(|e| match e {
            AppError::Conflict(fields) => conflict(&format!(
                "the account could not be created: {}",
                fields
                    .iter()
                    .map(|f| format!("{} {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            other => Failure::App(other),
        })?;
    // Clerk vouches for the address.
    if clerk.email_verified {
        crate::users::store::set_email_verified(conn, user.id, ctx.now).map_err(AppError::from)?;
    }
    identity::link(
        conn,
        identity::Provider::Clerk,
        identity::CLERK,
        &clerk.id,
        user.id,
        Some(email.as_str()),
        ctx.now,
    )
    .map_err(|e| match e {
        AppError::Conflict(_) => conflict("this Clerk user was linked by a concurrent delivery"),
        other => Failure::App(other),
    })?;
    if listed && !admin {
        ctx.auditor.record(
            conn,
            ctx.meta,
            Event::new(
                Action::AdminEmailUnverified,
                AuditOutcome::Denied,
                Actor::system(),
            )
            .target("user", user.id)
            .metadata(json!({
                "severity": "high",
                "role_granted": user.role,
                "reason": "an account synced from Clerk has an address listed in ADMIN_EMAILS; \
                           admin is granted only with IDENTITY_ADMIN_BY_EMAIL=true and a \
                           verified address",
            })),
        )?;
    }
    Ok((user.id, SyncChange::Created))
}
