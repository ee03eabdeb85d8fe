//! The address routes: use a verification or address-change link, resend the verification
//! link, and ask for an address change (sensitive: step-up). Password reset is `accounts`'.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::AppError;
use crate::state::AppState;
use crate::users::UserView;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/auth/verify-email",
        Access::Public,
        verify_email,
    )
    .body::<TokenBody>()
    .ok::<UserView>();
    r.add(
        Method::POST,
        "/api/v1/me/email/verification",
        Access::Authenticated,
        resend_verification,
    )
    .accepted::<Accepted>();
    r.add_sensitive(
        Method::POST,
        "/api/v1/me/email",
        Access::Permission(Permission::ProfileWrite),
        change_email,
    )
    .body::<ChangeBody>()
    .accepted::<Accepted>();
}

/// The answer of a request whose mail is on its way.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    pub status: &'static str,
    pub detail: &'static str,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// The `token` of the link in the mail.
    #[schema(max_length = 128)]
    token: String,
}

async fn verify_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TokenBody>,
) -> Result<HttpResponse, AppError> {
    let user = super::verify(&state, body.into_inner().token, request_meta(&req)).await?;
    Ok(HttpResponse::Ok().json(user))
}

async fn resend_verification(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    super::resend_verification(&state, principal.user_id).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        status: "accepted",
        detail: "A new verification link is on its way to the account's address.",
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    /// The new address: it becomes the account's when the link sent to it is used.
    #[schema(format = Email, max_length = 254)]
    email: String,
}

async fn change_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, AppError> {
    super::change_address(
        &state,
        principal.user_id,
        &body.into_inner().email,
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        status: "accepted",
        detail: "A confirmation link is on its way to the new address; the change applies when \
                 it is used.",
    }))
}
