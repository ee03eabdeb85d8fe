//! What admins do to accounts — list and search, disable and enable (with a reason), unlock, sign
//! out everywhere, change a role — for the admin API and the console alike (one copy of every
//! rule). Each change is one transaction with its audit record, the admin as actor.
//!
//! Rules: the SUPER_ADMIN_EMAIL account can be neither disabled nor demoted here; only the super
//! admin changes roles; nobody disables or demotes themselves (the last way back in).

use diesel::Connection;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Action, Actor, Event, Outcome, RequestMeta};
use crate::auth::{Principal, Role};
use crate::error::{AppError, FieldError};
use crate::http::pagination::keyset_page;
use crate::sessions;
use crate::state::AppState;
use crate::users::User;
use crate::users::store::{self, UserQuery};

/// What an admin sees of an account (more than the user's own view: lockout state, super admin).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub display_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub failed_logins: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
    pub locked: bool,
    pub super_admin: bool,
    /// When the account was erased (its name and email are tombstones since).
    #[serde(with = "time::serde::rfc3339::option")]
    pub erased_at: Option<OffsetDateTime>,
    /// Whether the user has a second factor (TOTP).
    pub mfa: bool,
}

impl AdminUserView {
    pub fn new(
        user: &User,
        super_admin_email: Option<&str>,
        now: OffsetDateTime,
        mfa: bool,
    ) -> Self {
        AdminUserView {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            role: user.role.clone(),
            active: user.active,
            display_name: user.display_name.clone(),
            created_at: user.created_at,
            failed_logins: user.failed_logins,
            locked_until: user.locked_until,
            locked: user.locked_until.is_some_and(|until| until > now),
            super_admin: user.is_super_admin(super_admin_email),
            erased_at: user.erased_at,
            mfa,
        }
    }
}

/// The admin doing something: who (for the audit log) and whether they are the super admin.
#[derive(Debug, Clone)]
pub struct AdminActor {
    pub user_id: Uuid,
    /// The super admin (see `User::is_super_admin`), who alone changes roles.
    pub super_admin: bool,
}

impl AdminActor {
    pub fn from_user(user: &User, super_admin_email: Option<&str>) -> AdminActor {
        AdminActor {
            user_id: user.id,
            super_admin: user.is_super_admin(super_admin_email),
        }
    }

    /// The admin behind an API request (its authentication loaded the user row).
    pub fn from_principal(
        principal: &Principal,
        super_admin_email: Option<&str>,
    ) -> Result<AdminActor, AppError> {
        principal
            .user
            .as_deref()
            .map(|user| AdminActor::from_user(user, super_admin_email))
            .ok_or(AppError::Unauthorized)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
    Locked,
}

impl UserStatus {
    pub fn parse(raw: &str) -> Option<UserStatus> {
        match raw {
            "active" => Some(UserStatus::Active),
            "disabled" => Some(UserStatus::Disabled),
            "locked" => Some(UserStatus::Locked),
            _ => None,
        }
    }
}

/// Filters of the user list, as validated from a query string.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub prefix: Option<String>,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
    pub before: Option<Uuid>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

impl UserFilter {
    /// The filters of the user list as typed in a query string (the JSON API's and the
    /// console's): `q` a username/email prefix, `role` and `status` by name; empty means "any".
    /// One message per bad field. Cursors and the page size are the caller's (its pager).
    pub fn parse(
        q: Option<&str>,
        role: Option<&str>,
        status: Option<&str>,
    ) -> Result<UserFilter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let role = match role.filter(|r| !r.is_empty()) {
            None => None,
            Some(raw) => raw
                .parse::<Role>()
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "role",
                        "must be admin, team_member or demo",
                    ))
                })
                .ok(),
        };
        let status = match status.filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => {
                let parsed = UserStatus::parse(raw);
                if parsed.is_none() {
                    errors.push(FieldError::new(
                        "status",
                        "must be active, disabled or locked",
                    ));
                }
                parsed
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(UserFilter {
            prefix: q
                .map(|q| q.trim().chars().take(254).collect::<String>())
                .filter(|q| !q.is_empty()),
            role,
            status,
            ..Default::default()
        })
    }
}

/// One page of users: newest first; `older`/`newer` are the cursors of the neighbouring pages.
#[derive(Debug, Clone, Serialize)]
pub struct UserPage {
    pub items: Vec<AdminUserView>,
    pub older: Option<Uuid>,
    pub newer: Option<Uuid>,
}

pub async fn list(state: &AppState, filter: UserFilter) -> Result<UserPage, AppError> {
    let now = state.clock.now();
    let limit = filter.limit.clamp(1, 100);
    let query = UserQuery {
        prefix: filter.prefix.clone().filter(|p| !p.is_empty()),
        role: filter.role.map(|r| r.as_str().to_string()),
        active: match filter.status {
            Some(UserStatus::Active) => Some(true),
            Some(UserStatus::Disabled) => Some(false),
            _ => None,
        },
        locked_at: match filter.status {
            Some(UserStatus::Locked) => Some((true, now)),
            Some(UserStatus::Active) => Some((false, now)),
            _ => None,
        },
        before: filter.before,
        after: filter.after,
    };
    let (rows, with_mfa) = state
        .pool
        .run(move |conn| {
            let rows = store::list(conn, &query, limit + 1)?;
            let ids: Vec<Uuid> = rows.iter().map(|u| u.id).collect();
            Ok((rows, crate::mfa::with_factor_among(conn, &ids)?))
        })
        .await?;
    let (rows, older, newer) =
        keyset_page(rows, limit, filter.after.is_some(), filter.before, |u| u.id);
    let super_admin = state.settings.super_admin_email.as_deref();
    let items = rows
        .iter()
        .map(|u| AdminUserView::new(u, super_admin, now, with_mfa.contains(&u.id)))
        .collect();
    Ok(UserPage {
        items,
        older,
        newer,
    })
}

pub async fn get(state: &AppState, id: Uuid) -> Result<AdminUserView, AppError> {
    let now = state.clock.now();
    let (user, mfa) = state
        .pool
        .run(move |conn| {
            let user = store::find(conn, id)?;
            Ok((user, crate::mfa::has_factor(conn, id)?))
        })
        .await?;
    let user = user.ok_or(AppError::NotFound)?;
    Ok(AdminUserView::new(
        &user,
        state.settings.super_admin_email.as_deref(),
        now,
        mfa,
    ))
}

/// Usernames of the given user ids, for readable tables.
pub fn usernames(
    conn: &mut diesel::PgConnection,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, AppError> {
    Ok(store::usernames(conn, ids)?.into_iter().collect())
}

/// A user id from a username or an id (the console's and API's "owner" filters).
pub fn resolve_user(conn: &mut diesel::PgConnection, raw: &str) -> Result<Option<Uuid>, AppError> {
    if let Ok(id) = Uuid::parse_str(raw.trim()) {
        return Ok(Some(id));
    }
    Ok(store::find_by_username(conn, raw.trim())?.map(|u| u.id))
}

/// (all, active, disabled, locked) user counts, for the dashboard.
pub fn counts(
    conn: &mut diesel::PgConnection,
    now: OffsetDateTime,
) -> Result<(i64, i64, i64, i64), AppError> {
    Ok(store::counts(conn, now)?)
}

pub use crate::audit::admin_reason as parse_reason;

/// The admin changes that exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Disable { reason: String },
    Enable { reason: Option<String> },
    Unlock { reason: Option<String> },
    SignOutEverywhere { reason: Option<String> },
    SetRole { role: Role },
}

impl Change {
    /// The change named `which` (`disable`, `enable`, `unlock`, `sign-out`, `role`) from what a
    /// request gave: a reason (required to disable) and, for `role`, the new role. `None` for an
    /// unknown name.
    pub fn parse(
        which: &str,
        reason: Option<&str>,
        role: Option<&str>,
    ) -> Option<Result<Change, AdminError>> {
        let invalid = |error: AppError| match error {
            AppError::Validation(errors) => AdminError::Invalid(errors),
            other => AdminError::App(other),
        };
        let optional = || parse_reason(reason, false).map_err(invalid);
        Some(match which {
            "disable" => parse_reason(reason, true)
                .map_err(invalid)
                .map(|r| Change::Disable {
                    reason: r.unwrap_or_default(),
                }),
            "enable" => optional().map(|reason| Change::Enable { reason }),
            "unlock" => optional().map(|reason| Change::Unlock { reason }),
            "sign-out" => optional().map(|reason| Change::SignOutEverywhere { reason }),
            "role" => role
                .and_then(|r| r.parse::<Role>().ok())
                .map(|role| Change::SetRole { role })
                .ok_or_else(|| {
                    AdminError::Invalid(vec![FieldError::new(
                        "role",
                        "must be admin, team_member or demo",
                    )])
                }),
            _ => return None,
        })
    }

    fn action(&self) -> Action {
        match self {
            Change::Disable { .. } => Action::UserDisabled,
            Change::Enable { .. } => Action::UserEnabled,
            Change::Unlock { .. } => Action::UserUnlocked,
            Change::SignOutEverywhere { .. } => Action::UserSignedOutEverywhere,
            Change::SetRole { .. } => Action::UserRoleChanged,
        }
    }
}

/// Why an admin change was refused. The admin API and the console each render it their own way
/// (a 4xx problem with field errors; a sentence on the confirmation page) — neither decodes text.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no such user")]
    NotFound,
    /// Only the super admin changes roles.
    #[error("only the super admin changes roles")]
    NotSuperAdmin,
    /// The super admin can be neither disabled nor demoted.
    #[error("the super admin cannot be {0}")]
    SuperAdmin(&'static str),
    /// Nobody disables or demotes themselves (the last way back in).
    #[error("an admin cannot {0} their own account")]
    SelfAction(&'static str),
    /// A bad reason or role in the request.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for AdminError {
    fn from(error: diesel::result::Error) -> AdminError {
        AdminError::App(error.into())
    }
}

impl AdminError {
    /// The sentence a person reads about the refusal (the console, and the API's field message).
    pub fn sentence(&self) -> String {
        match self {
            AdminError::NotFound => "There is no such account.".into(),
            AdminError::NotSuperAdmin => {
                "Only the super admin (SUPER_ADMIN_EMAIL) changes roles. Nothing was changed."
                    .into()
            }
            AdminError::SuperAdmin(what) => {
                format!(
                    "This account is the super admin, who cannot be {what}. Nothing was changed."
                )
            }
            AdminError::SelfAction(what) => {
                format!("This is your own account; you cannot {what} it. Nothing was changed.")
            }
            AdminError::Invalid(errors) => errors
                .first()
                .map(|f| format!("The {} {}.", f.field, f.message))
                .unwrap_or_default(),
            AdminError::App(e) => e.to_string(),
        }
    }
}

/// The admin JSON API's rendering (unchanged statuses: 404, 403, 409 with an `id` field error,
/// 422 with the field errors).
impl From<AdminError> for AppError {
    fn from(error: AdminError) -> AppError {
        match error {
            AdminError::NotFound => AppError::NotFound,
            AdminError::NotSuperAdmin => AppError::Forbidden,
            AdminError::SuperAdmin(what) => AppError::Conflict(vec![FieldError::new(
                "id",
                format!("is the super admin, who cannot be {what}"),
            )]),
            AdminError::SelfAction(what) => AppError::Conflict(vec![FieldError::new(
                "id",
                format!("is your own account; you cannot {what} it"),
            )]),
            AdminError::Invalid(errors) => AppError::Validation(errors),
            AdminError::App(e) => e,
        }
    }
}

/// Applies `change` to user `id` for `admin`: checks the rules, changes the row, ends sessions
/// where the change calls for it, and audits — all in one transaction.
pub async fn apply(
    state: &AppState,
    admin: &AdminActor,
    id: Uuid,
    change: Change,
    meta: RequestMeta,
) -> Result<AdminUserView, AdminError> {
    let super_admin_email = state.settings.super_admin_email.clone();
    if matches!(change, Change::SetRole { .. }) && !admin.super_admin {
        return Err(AdminError::NotSuperAdmin);
    }
    let now = state.clock.now();
    let auditor = state.auditor.clone();
    let admin_id = admin.user_id;
    // The pool sees infrastructure errors as such (a lost connection is marked broken); the
    // refusals travel inside.
    let outcome = state
        .pool
        .run(move |conn| {
            let outcome = conn.transaction::<_, AdminError, _>(|conn| {
                let Some(user) = store::lock(conn, id)? else {
                    return Err(AdminError::NotFound);
                };
                if user.erased_at.is_some() {
                    return Err(AdminError::Invalid(vec![FieldError::new(
                        "id",
                        "the account was erased: nothing about it can be changed",
                    )]));
                }
                let target_is_super = user.is_super_admin(super_admin_email.as_deref());
                // By id only (the target): names are looked up when the row is shown.
                let mut metadata = json!({});
                match &change {
                    Change::Disable { reason } => {
                        if target_is_super {
                            return Err(AdminError::SuperAdmin("disabled"));
                        }
                        if user.id == admin_id {
                            return Err(AdminError::SelfAction("disable"));
                        }
                        metadata["reason"] = json!(reason);
                        let ended = super::disable_in_tx(
                            conn,
                            &auditor,
                            &meta,
                            super::Disable {
                                user_id: id,
                                actor: Actor::admin(admin_id),
                                by: Some(admin_id),
                                reason,
                                sessions_reason: "user_disabled",
                            },
                            now,
                        )?;
                        metadata["api_keys_revoked"] = json!(ended.api_keys);
                        metadata["sessions_revoked"] = json!(ended.sessions);
                    }
                    Change::Enable { reason } => {
                        store::set_active(conn, id, true, now)?;
                        metadata["reason"] = json!(reason);
                    }
                    Change::Unlock { reason } => {
                        metadata["was_locked_until"] =
                            json!(user.locked_until.map(crate::clock::rfc3339));
                        metadata["failed_logins"] = json!(user.failed_logins);
                        store::unlock(conn, id, now)?;
                        metadata["reason"] = json!(reason);
                    }
                    Change::SignOutEverywhere { reason } => {
                        metadata["reason"] = json!(reason);
                        metadata["sessions_revoked"] = json!(end_sessions(
                            conn,
                            &auditor,
                            &meta,
                            id,
                            admin_id,
                            "signed_out_by_admin",
                            now
                        )?);
                    }
                    Change::SetRole { role } => {
                        if target_is_super && *role != Role::Admin {
                            return Err(AdminError::SuperAdmin("demoted"));
                        }
                        if user.id == admin_id && *role != Role::Admin {
                            return Err(AdminError::SelfAction("demote"));
                        }
                        store::set_role(conn, id, role.as_str(), now)?;
                        metadata["from"] = json!(user.role);
                        metadata["to"] = json!(role.as_str());
                    }
                }
                auditor.record(
                    conn,
                    &meta,
                    Event::new(change.action(), Outcome::Success, Actor::admin(admin_id))
                        .target("user", id)
                        .metadata(metadata),
                )?;
                let user = store::find(conn, id)?.ok_or(AdminError::NotFound)?;
                Ok((user, crate::mfa::has_factor(conn, id)?))
            });
            match outcome {
                Err(AdminError::App(error)) => Err(error),
                other => Ok(other),
            }
        })
        .await?;
    let (user, mfa) = outcome?;
    Ok(AdminUserView::new(
        &user,
        state.settings.super_admin_email.as_deref(),
        now,
        mfa,
    ))
}

/// Ends every API session (each audited) and console session of the user; returns how many API
/// sessions were revoked.
fn end_sessions(
    conn: &mut diesel::PgConnection,
    auditor: &crate::audit::Auditor,
    meta: &RequestMeta,
    user_id: Uuid,
    admin_id: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    sessions::revoke_all_in_tx(
        conn,
        auditor,
        meta,
        sessions::RevokeAll {
            user_id,
            keep: None,
            reason,
            actor: Actor::admin(admin_id),
        },
        now,
    )
}
