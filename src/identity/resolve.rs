//! From a verified provider token to the local user: found by (issuer, subject) — never by email
//! (ASVS 6.8.1) — or, at first sight and with IDENTITY_AUTO_PROVISION, provisioned as a
//! `team_member` without a password and linked, in one transaction. Twenty first requests at once
//! create one account: the unique keys on the identity and on the email decide, and the losers
//! find the winner's link.

use diesel::Connection;
use diesel::PgConnection;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ProviderClaims, store};
use crate::audit::{Action, Actor, Auditor, Event, Outcome, RequestMeta};
use crate::auth::Role;
use crate::error::AppError;
use crate::users::{AdminGrant, Email, User};

/// What provisioning may do, from the settings.
#[derive(Debug, Clone)]
pub struct Policy {
    pub auto_provision: bool,
    pub admin_emails: Vec<String>,
    pub admin_by_email: bool,
}

/// The local user (and identity id) of `claims`; `IdentityUnknown` when there is none and none may
/// be made; `Unauthorized` for a disabled account.
pub fn resolve(
    conn: &mut PgConnection,
    auditor: &Auditor,
    policy: &Policy,
    claims: &ProviderClaims,
    meta: &RequestMeta,
    now: OffsetDateTime,
) -> Result<(User, Uuid), AppError> {
    if let Some(found) = linked(conn, claims, now)? {
        return Ok(found);
    }
    if !policy.auto_provision {
        return Err(unknown("this identity is not linked to an account here"));
    }
    let Some(raw_email) = claims.email.as_deref() else {
        return Err(unknown(
            "this identity is not linked to an account here and its token carries no email to \
             create one with (add an `email` claim to the provider's session token)",
        ));
    };
    let email =
        Email::parse(raw_email).map_err(|_| unknown("the token's email address is not usable"))?;
    let created = conn.transaction::<_, AppError, _>(|conn| {
        provision(conn, auditor, policy, claims, &email, meta, now)
    });
    match created {
        Ok(found) => Ok(found),
        // A concurrent first request won: use its link.
        Err(AppError::Conflict(_)) => match linked(conn, claims, now)? {
            Some(found) => Ok(found),
            None => Err(unknown(
                "an account with this email address already exists here and is not linked to \
                 this identity; sign in to it and link the identity (POST /api/v1/me/identities)",
            )),
        },
        Err(other) => Err(other),
    }
}

fn unknown(detail: &str) -> AppError {
    AppError::IdentityUnknown(detail.to_string())
}

fn linked(
    conn: &mut PgConnection,
    claims: &ProviderClaims,
    now: OffsetDateTime,
) -> Result<Option<(User, Uuid)>, AppError> {
    let Some((identity, user)) = store::find_with_user(conn, &claims.issuer_key, &claims.subject)?
    else {
        return Ok(None);
    };
    if !user.active {
        return Err(AppError::Unauthorized);
    }
    // At most one write a minute per identity, decided on the row just read.
    if now - identity.last_seen_at >= time::Duration::minutes(1) {
        store::touch_if_stale(conn, identity.id, now)?;
    }
    Ok(Some((user, identity.id)))
}

fn provision(
    conn: &mut PgConnection,
    auditor: &Auditor,
    policy: &Policy,
    claims: &ProviderClaims,
    email: &Email,
    meta: &RequestMeta,
    now: OffsetDateTime,
) -> Result<(User, Uuid), AppError> {
    if crate::users::store::email_taken(conn, email.as_str())? {
        return Err(AppError::Conflict(vec![crate::error::FieldError::new(
            "email",
            "is already registered",
        )]));
    }
    let listed = policy.admin_emails.iter().any(|a| a == email.as_str());
    let admin = listed && policy.admin_by_email && claims.email_verified;
    let (role, grant) = if admin {
        (Role::Admin, Some(AdminGrant::VerifiedEmail))
    } else {
        (Role::DEFAULT, None)
    };
    let preferred = claims.username.as_deref();
    let username = crate::users::free_username(conn, preferred, email)?;
    let user = crate::accounts::create_user(conn, &username, email, None, role, grant, now)?;
    // The provider vouches for the address.
    if claims.email_verified {
        crate::users::store::set_email_verified(conn, user.id, now)?;
    }
    let identity = super::link(
        conn,
        claims.provider,
        &claims.issuer_key,
        &claims.subject,
        user.id,
        Some(email.as_str()),
        now,
    )?;
    // The provider's id of the person, only as a pseudonym under the user's audit salt.
    let subject = auditor.pseudonym(conn, Some(user.id), &claims.subject)?;
    auditor.record(
        conn,
        meta,
        Event::new(Action::UserRegistered, Outcome::Success, Actor::system())
            .target("user", user.id)
            .metadata(json!({
                "via": format!("{}_token", claims.provider.as_str()),
                "role": user.role,
                "subject_pseudonym": subject,
            })),
    )?;
    if listed && !admin {
        auditor.record(
            conn,
            meta,
            Event::new(
                Action::AdminEmailUnverified,
                Outcome::Denied,
                Actor::system(),
            )
            .target("user", user.id)
            .metadata(json!({
                "severity": "high",
                "role_granted": user.role,
                "reason": "an account provisioned from an identity provider has an address \
                           listed in ADMIN_EMAILS; admin is granted only with \
                           IDENTITY_ADMIN_BY_EMAIL=true and a provider-verified address",
            })),
        )?;
    }
    Ok((user, identity.id))
}
