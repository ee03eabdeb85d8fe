//! Account endpoints: register, login, and the caller's own profile and password.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::admin::AdminUserView;
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::AppError;
use crate::http::path_id::PathId;
use crate::state::AppState;
use crate::users::UserView;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/auth/register",
        Access::Public,
        register,
    )
    .body::<RegisterBody>()
    .created::<UserView>()
    .link(Method::GET, "/api/v1/admin/users/{id}", "id")
    .link(Method::POST, "/api/v1/admin/users/{id}/disable", "id")
    .link(Method::POST, "/api/v1/admin/users/{id}/enable", "id")
    .link(Method::POST, "/api/v1/admin/users/{id}/unlock", "id")
    .link(Method::POST, "/api/v1/admin/users/{id}/sign-out", "id")
    .link(Method::POST, "/api/v1/admin/users/{id}/role", "id");
    r.add(Method::POST, "/api/v1/auth/login", Access::Public, login)
        .body::<LoginBody>()
        .ok::<super::LoginOutcome>()
        .link(Method::DELETE, "/api/v1/auth/sessions/{id}", "session_id")
        .link(
            Method::POST,
            "/api/v1/admin/sessions/{id}/revoke",
            "session_id",
        );
    r.add(
        Method::GET,
        "/api/v1/me",
        Access::Permission(Permission::ProfileRead),
        get_me,
    )
    .ok::<UserView>();
    r.add(
        Method::PATCH,
        "/api/v1/me",
        Access::Permission(Permission::ProfileWrite),
        update_me,
    )
    .body::<UpdateMeBody>()
    .ok::<UserView>();
    r.add_sensitive(
        Method::POST,
        "/api/v1/me/password",
        Access::Permission(Permission::ProfileWrite),
        change_password,
    )
    .body::<PasswordBody>()
    .no_content();
    r.add(
        Method::POST,
        "/api/v1/auth/mfa",
        Access::Public,
        complete_mfa,
    )
    .body::<MfaBody>()
    .ok::<crate::sessions::TokenPair>()
    .link(Method::DELETE, "/api/v1/auth/sessions/{id}", "session_id");
    r.add(
        Method::POST,
        "/api/v1/auth/password-reset",
        Access::Public,
        request_password_reset,
    )
    .body::<ResetRequestBody>()
    .accepted::<crate::email::routes::Accepted>();
    r.add(
        Method::POST,
        "/api/v1/auth/password-reset/complete",
        Access::Public,
        complete_password_reset,
    )
    .body::<ResetCompleteBody>()
    .no_content();
    r.add(
        Method::POST,
        "/api/v1/auth/step-up",
        Access::Authenticated,
        step_up,
    )
    .body::<StepUpBody>()
    .ok::<super::StepUp>();
    r.add_sensitive(
        Method::DELETE,
        "/api/v1/me/mfa/totp",
        Access::Permission(Permission::ProfileWrite),
        disable_mfa,
    )
    .body::<DisableMfaBody>()
    .no_content();
    let manage = Access::Permission(Permission::UsersManage);
    r.add(Method::GET, "/api/v1/admin/users", manage, list_users)
        .query::<UserListParams>()
        .page::<AdminUserView>();
    r.add(Method::GET, "/api/v1/admin/users/{id}", manage, get_user)
        .ok::<AdminUserView>();
    // One handler; the action is the path's last segment.
    for path in [
        "/api/v1/admin/users/{id}/disable",
        "/api/v1/admin/users/{id}/enable",
        "/api/v1/admin/users/{id}/unlock",
        "/api/v1/admin/users/{id}/sign-out",
        "/api/v1/admin/users/{id}/role",
    ] {
        r.add(Method::POST, path, manage, act_on_user)
            .optional_body::<ActionBody>()
            .ok::<AdminUserView>();
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    #[schema(min_length = 3, max_length = 50, pattern = "^[A-Za-z0-9_-]+$")]
    username: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// At least 12 characters (8 under PASSWORD_POLICY=classic), not guessable.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    password: SecretString,
}

async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let user = super::register(
        &state,
        super::Registration {
            username: body.username,
            email: body.email,
            password: body.password,
        },
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Created().json(user))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// Username or email.
    #[schema(max_length = 254)]
    login: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    // Bound the work an anonymous caller can ask for before anything is looked up.
    if body.login.len() > 254 {
        return Err(AppError::Unauthorized);
    }
    let outcome = super::login(&state, body.login, body.password, request_meta(&req)).await?;
    Ok(HttpResponse::Ok().json(outcome))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MfaBody {
    /// From the login answer (`mfa_required: true`).
    #[schema(max_length = 128)]
    mfa_token: String,
    /// The 6-digit code of the authenticator…
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: Option<String>,
    /// …or one of the recovery codes (each works once).
    #[schema(value_type = Option<String>, max_length = 64)]
    recovery_code: Option<SecretString>,
}

async fn complete_mfa(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<MfaBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let factor = crate::mfa::SecondFactor::from_fields(body.code, body.recovery_code)?;
    let pair = super::complete_login(&state, body.mfa_token, factor, request_meta(&req)).await?;
    Ok(HttpResponse::Ok().json(pair))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetRequestBody {
    /// The account's address. The answer is the same whether or not it has one.
    #[schema(max_length = 254)]
    email: String,
}

/// The same answer, at once, whatever the address: the work happens after it is sent.
async fn request_password_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ResetRequestBody>,
) -> Result<HttpResponse, AppError> {
    let email = body.into_inner().email;
    if email.len() > 254 {
        return Err(AppError::Validation(vec![crate::error::FieldError::new(
            "email",
            "must be at most 254 characters",
        )]));
    }
    let meta = request_meta(&req);
    let worker = state.clone();
    actix_web::rt::spawn(async move {
        if let Err(error) = super::request_password_reset(&worker, email, meta).await {
            tracing::warn!(%error, "a password-reset request could not be processed");
        }
    });
    Ok(
        HttpResponse::Accepted().json(crate::email::routes::Accepted {
            status: "accepted",
            detail: "If the address belongs to an account, a reset link is on its way to it.",
        }),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetCompleteBody {
    /// The `token` of the link in the mail.
    #[schema(max_length = 128)]
    token: String,
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: SecretString,
    /// Required when the account has a second factor: the authenticator's current code…
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: Option<String>,
    /// …or a recovery code.
    #[schema(value_type = Option<String>, max_length = 64)]
    recovery_code: Option<SecretString>,
}

async fn complete_password_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ResetCompleteBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let factor = match (body.code, body.recovery_code) {
        (None, None) => None,
        (code, recovery) => Some(crate::mfa::SecondFactor::from_fields(code, recovery)?),
    };
    super::complete_password_reset(
        &state,
        body.token,
        body.new_password,
        factor,
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StepUpBody {
    /// The account's password (accounts without a second factor)…
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    /// …or, when the account has one, a current code of the authenticator…
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: Option<String>,
    /// …or a recovery code.
    #[schema(value_type = Option<String>, max_length = 64)]
    recovery_code: Option<SecretString>,
}

async fn step_up(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<StepUpBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let factor = match (body.code, body.recovery_code) {
        (None, None) => None,
        (code, recovery) => Some(crate::mfa::SecondFactor::from_fields(code, recovery)?),
    };
    let proof = super::Proof {
        password: body.password,
        factor,
    };
    let done = super::step_up(&state, &principal, proof, request_meta(&req)).await?;
    Ok(HttpResponse::Ok().json(done))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DisableMfaBody {
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// A current code of the authenticator…
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: Option<String>,
    /// …or a recovery code.
    #[schema(value_type = Option<String>, max_length = 64)]
    recovery_code: Option<SecretString>,
}

async fn disable_mfa(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<DisableMfaBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let factor = crate::mfa::SecondFactor::from_fields(body.code, body.recovery_code)?;
    super::disable_mfa(
        &state,
        &principal,
        body.password,
        factor,
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_me(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(super::me(&state, &principal).await?))
}

/// Only display fields: anything else (role, active, email …) is refused as an unknown field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMeBody {
    /// Absent: left as it is. `null`: cleared. A string: set.
    #[serde(default, deserialize_with = "present")]
    #[schema(max_length = 100, value_type = Option<String>)]
    display_name: Option<Option<String>>,
}

/// A field that is present (even as `null`) becomes `Some(..)`; an absent one stays `None` through
/// `#[serde(default)]`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

async fn update_me(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<UpdateMeBody>,
) -> Result<HttpResponse, AppError> {
    let user = match body.into_inner().display_name {
        // Nothing to change: the profile as it is, and nothing audited.
        None => super::me(&state, &principal).await?,
        Some(display_name) => {
            super::update_display_name(&state, &principal, display_name, request_meta(&req)).await?
        }
    };
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: SecretString,
}

async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    super::change_password(
        &state,
        &principal,
        body.current_password,
        body.new_password,
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

// --- admin ------------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
struct UserListParams {
    /// Username or email prefix.
    q: Option<String>,
    /// `admin`, `team_member` or `demo`.
    role: Option<String>,
    /// `active`, `disabled` or `locked`.
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// `?q=&role=&status=&cursor=&limit=`: users, newest first (username/email prefix search).
async fn list_users(
    state: web::Data<AppState>,
    params: web::Query<UserListParams>,
) -> Result<HttpResponse, AppError> {
    use super::admin::UserFilter;
    use crate::http::pagination::{PageQuery, uuid_cursor};
    let p = params.into_inner();
    let (mut filter, mut errors) =
        match UserFilter::parse(p.q.as_deref(), p.role.as_deref(), p.status.as_deref()) {
            Ok(filter) => (filter, Vec::new()),
            Err(errors) => (UserFilter::default(), errors),
        };
    let page = PageQuery {
        cursor: p.cursor,
        limit: p.limit,
    };
    match (page.uuid_cursor(), page.limit()) {
        (Ok(before), Ok(limit)) => {
            filter.before = before;
            filter.limit = limit;
        }
        (Err(AppError::Validation(mut e)), _) | (_, Err(AppError::Validation(mut e))) => {
            errors.append(&mut e);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let result = super::admin::list(&state, filter).await?;
    Ok(HttpResponse::Ok().json(crate::http::pagination::Page {
        items: result.items,
        next_cursor: result.older.map(uuid_cursor),
    }))
}

async fn get_user(state: web::Data<AppState>, id: PathId) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(super::admin::get(&state, *id).await?))
}

/// An admin action's optional body: `{"reason": …}` (and `{"role": …}` for role changes).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminUserActionBody)]
struct ActionBody {
    /// Required to disable.
    #[schema(max_length = 500)]
    reason: Option<String>,
    /// For `/role`.
    #[schema(value_type = Option<crate::auth::RoleName>)]
    role: Option<String>,
}

/// `POST /api/v1/admin/users/{id}/disable|enable|unlock|sign-out|role`.
async fn act_on_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    use super::admin::{AdminActor, Change};
    let body: ActionBody = crate::http::limits::optional_json(&body)?;
    let which = req.path().rsplit('/').next().unwrap_or_default();
    let change = Change::parse(which, body.reason.as_deref(), body.role.as_deref())
        .ok_or(AppError::NotFound)??;
    let admin =
        AdminActor::from_principal(&principal, state.settings.super_admin_email.as_deref())?;
    let view = super::admin::apply(&state, &admin, *id, change, request_meta(&req)).await?;
    Ok(HttpResponse::Ok().json(view))
}
