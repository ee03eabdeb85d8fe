//! Who is calling, and may they? The access vocabulary — `Principal`, `Credential`, `Access`,
//! `Permission`, the role → permission table — and the route registrar that forces every API
//! route to declare its access rule. Imports no feature: how a credential becomes a `Principal`
//! is the web edge's [`Authenticator`] (`crate::web`), and the list of routes is `web::api_routes`.
//!
//! Routes are registered only through `ApiRoutes::add(method, path, Access, handler)`: the rule is
//! enforced by a per-route guard *before* the handler runs (fail closed), and the registrar keeps a
//! table that the route-permission matrix test enumerates. A handler cannot be mounted without an
//! access rule, and a protected handler reads its caller from the `Principal` the guard stored.
//! `add` returns the route's [`RouteDoc`], on which the route declares its request body, query
//! parameters and success response for the OpenAPI document (`crate::web::openapi`).

pub mod permissions;

use std::collections::BTreeMap;
use std::future::{Ready, ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{FromRequest, Handler, HttpMessage, HttpRequest, Responder, web};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

pub use permissions::{Permission, Role, RoleName, ScopeName};

use crate::error::AppError;
pub use crate::http::openapi::RouteDoc;

/// A user row's role, read where roles mean something (here), so `users` needs no `auth`.
impl crate::users::User {
    /// Unknown role strings cannot be stored (CHECK constraint); fall back to the least privilege.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Demo)
    }

    /// The super admin: the SUPER_ADMIN_EMAIL account, but only while it is an admin made one by
    /// an operator or a verified address. Registering that address proves nothing, so an account
    /// that merely holds it gets no protection and no extra rights.
    pub fn is_super_admin(&self, super_admin_email: Option<&str>) -> bool {
        super_admin_email == Some(self.email.as_str())
            && self.role() == Role::Admin
            && self.admin_granted_by.is_some()
    }
}

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (register, login, refresh, health of the API).
    Public,
    /// Any authenticated principal (e.g. logout), whatever its permissions.
    Authenticated,
    /// An authenticated principal holding this permission.
    Permission(Permission),
}

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token of this session.
    Session { session_id: Uuid },
    /// An API key, restricted to its scopes.
    ApiKey {
        key_id: Uuid,
        scopes: Vec<Permission>,
    },
    /// An identity provider's token (Supabase, Clerk) of this linked identity: the user's role,
    /// like a session, but no rampart session to end.
    Provider { identity_id: Uuid },
}

/// The authenticated caller, as established by the guard for this request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    /// The role as stored now (not as it was when the token was issued).
    pub role: Role,
    pub credential: Credential,
    /// The user row loaded by the same query that authenticated the request (so handlers such as
    /// `GET /me` need no second round trip). `None` only where a principal is built by hand.
    pub user: Option<std::sync::Arc<crate::users::User>>,
    /// How strongly, and how recently, the person behind the credential authenticated.
    pub authentication: Authentication,
}

/// The assurance of a credential: its level (1: one factor, 2: two — NIST 800-63B AAL) and when
/// the person last proved who they are (sign-in or step-up). An API key is no authentication
/// event: level 1, never recent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authentication {
    pub aal: u8,
    pub at: Option<time::OffsetDateTime>,
}

impl Authentication {
    /// An API key, or a principal built by hand.
    pub const NONE: Authentication = Authentication { aal: 1, at: None };

    /// Whether the last authentication is at most `max_age` old at `now`.
    pub fn is_recent(&self, now: time::OffsetDateTime, max_age: std::time::Duration) -> bool {
        self.at
            .is_some_and(|at| crate::clock::after(at, max_age) > now && at <= now + LEEWAY)
    }
}

/// Clock skew tolerated on an authentication time that lies in the future (provider tokens).
const LEEWAY: time::Duration = time::Duration::seconds(30);

/// The assurance rules the route guard applies, mounted as app data by the web edge (so `auth`
/// reads no `AppState`): how recent a sensitive operation's authentication must be, and whether
/// admin-only permissions need a second factor.
#[derive(Debug, Clone)]
pub struct AssurancePolicy {
    pub step_up_max_age: std::time::Duration,
    pub mfa_required_for_admins: bool,
    /// EMAIL_VERIFICATION_REQUIRED: an unverified account reaches only [`UNVERIFIED_ROUTES`].
    pub email_verification_required: bool,
    pub clock: crate::clock::Clock,
}

/// What an account whose address is not verified may reach when verification is required: its
/// profile, the resend endpoint, and logout.
pub const UNVERIFIED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/me"),
    ("POST", "/api/v1/me/email/verification"),
    ("POST", "/api/v1/auth/logout"),
];

impl AssurancePolicy {
    /// `StepUpRequired` unless `principal` authenticated within the step-up window. API keys never
    /// qualify: a key is not an authentication event and cannot re-authenticate.
    pub fn require_recent(&self, principal: &Principal) -> Result<(), AppError> {
        if principal
            .authentication
            .is_recent(self.clock.now(), self.step_up_max_age)
        {
            Ok(())
        } else {
            Err(AppError::StepUpRequired)
        }
    }

    /// `EmailUnverified` when verification is required, the principal's address is not verified,
    /// and the route (`method`, matched `pattern`) is not one an unverified account may reach.
    pub fn require_verified(
        &self,
        principal: &Principal,
        method: &Method,
        pattern: Option<&str>,
    ) -> Result<(), AppError> {
        if !self.email_verification_required {
            return Ok(());
        }
        let verified = principal
            .user
            .as_ref()
            .is_some_and(|u| u.email_verified_at.is_some());
        let allowed = UNVERIFIED_ROUTES
            .iter()
            .any(|(m, p)| method.as_str() == *m && pattern == Some(*p));
        if verified || allowed {
            Ok(())
        } else {
            Err(AppError::EmailUnverified)
        }
    }

    /// `MfaRequired` when an admin-only permission is used with one factor while admins must
    /// have two.
    pub fn require_admin_assurance(
        &self,
        principal: &Principal,
        permission: Permission,
    ) -> Result<(), AppError> {
        if self.mfa_required_for_admins
            && permission.is_admin_only()
            && principal.authentication.aal < 2
        {
            return Err(AppError::MfaRequired);
        }
        Ok(())
    }
}

impl Principal {
    /// A session may do what its role allows. An API key needs the permission in the owner's
    /// current role AND in its scopes, and never reaches an admin-only permission.
    pub fn can(&self, permission: Permission) -> bool {
        match &self.credential {
            Credential::Session { .. } | Credential::Provider { .. } => self.role.has(permission),
            Credential::ApiKey { scopes, .. } => {
                !permission.is_admin_only()
                    && self.role.has(permission)
                    && scopes.contains(&permission)
            }
        }
    }

    /// Who the audit log names for this caller: the key itself when the caller used one.
    pub fn actor(&self) -> crate::audit::Actor {
        match self.credential {
            Credential::ApiKey { key_id, .. } => crate::audit::Actor::api_key(key_id),
            Credential::Session { .. } | Credential::Provider { .. } => {
                crate::audit::Actor::user(self.user_id)
            }
        }
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Session { session_id } => Some(session_id),
            Credential::ApiKey { .. } | Credential::Provider { .. } => None,
        }
    }
}

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Only the guard inserts a Principal; a handler asking for one on a route without an
        // authenticated access rule is a programming error, and it fails closed.
        let principal = req.extensions().get::<Principal>().cloned();
        ready(principal.ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "Principal requested on a route without an authenticated access rule"
            ))
            .into()
        }))
    }
}

/// One registered API route (for the route table test and docs).
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// Whether the route needs a recent authentication (step-up) on top of `access`.
    pub step_up: bool,
    /// Body, query and response schemas for the OpenAPI document.
    pub doc: RouteDoc,
    /// The type name of the handler's extractor tuple, so a test can check that a route taking a
    /// `Json`/`Bytes` body or a `Query` documents it.
    pub extractors: &'static str,
}

/// Collects routes grouped by path (actix matches resources by path first, so two methods on one
/// path must share a resource to get 405s right).
#[derive(Default)]
pub struct ApiRoutes {
    resources: BTreeMap<&'static str, Vec<actix_web::Route>>,
    table: Vec<RouteInfo>,
}

impl ApiRoutes {
    /// Mounts `handler` behind `access`; returns the route's documentation to fill in
    /// (`.body::<B>()`, `.query::<Q>()`, `.ok::<R>()` …).
    pub fn add<F, Args>(
        &mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: F,
    ) -> &mut RouteDoc
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add_route(method, path, access, false, handler)
    }

    /// [`ApiRoutes::add`] for a sensitive operation: the guard also requires a recent
    /// authentication (step-up, STEP_UP_MAX_AGE_MINUTES) and answers 401 `step-up-required`
    /// otherwise, before the handler runs.
    pub fn add_sensitive<F, Args>(
        &mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: F,
    ) -> &mut RouteDoc
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add_route(method, path, access, true, handler)
    }

    fn add_route<F, Args>(
        &mut self,
        method: Method,
        path: &'static str,
        access: Access,
        step_up: bool,
        handler: F,
    ) -> &mut RouteDoc
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::method(method.clone()).to(handler);
        // Public routes need no guard: no middleware layer at all rather than one that passes.
        let route = if access == Access::Public {
            route
        } else {
            route.wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
                guard(access, step_up, req, next)
            }))
        };
        self.resources.entry(path).or_default().push(route);
        self.table.push(RouteInfo {
            method,
            path,
            access,
            step_up,
            doc: RouteDoc::default(),
            extractors: std::any::type_name::<Args>(),
        });
        let index = self.table.len() - 1;
        &mut self.table[index].doc
    }

    pub fn table(&self) -> &[RouteInfo] {
        &self.table
    }

    pub fn register(self, cfg: &mut web::ServiceConfig) {
        for (path, routes) in self.resources {
            let mut resource = web::resource(path);
            for route in routes {
                resource = resource.route(route);
            }
            cfg.service(resource);
        }
    }
}

/// How a request's credential becomes a [`Principal`]: supplied by the web edge, which knows every
/// kind of credential (session tokens, API keys) and the features behind them, and mounted as app
/// data. The registrar's guard finds it there — so `auth` stays vocabulary and imports no feature.
#[derive(Clone, Copy)]
pub struct Authenticator(
    pub for<'a> fn(&'a HttpRequest) -> LocalBoxFuture<'a, Result<Principal, AppError>>,
);

async fn guard(
    access: Access,
    step_up: bool,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let required = match access {
        Access::Public => return next.call(req).await,
        Access::Authenticated => None,
        Access::Permission(p) => Some(p),
    };
    let Some(authenticator) = req.app_data::<Authenticator>().copied() else {
        return Err(AppError::internal(anyhow::anyhow!("no authenticator mounted")).into());
    };
    let principal = match (authenticator.0)(req.request()).await {
        Ok(p) => p,
        Err(error) => return Ok(req.error_response(error).map_into_boxed_body()),
    };
    if let Some(permission) = required
        && !principal.can(permission)
    {
        return Ok(req
            .error_response(AppError::Forbidden)
            .map_into_boxed_body());
    }
    let Some(policy) = req.app_data::<AssurancePolicy>().cloned() else {
        return Err(AppError::internal(anyhow::anyhow!("no assurance policy mounted")).into());
    };
    let pattern = req.match_pattern();
    let assured = policy
        .require_verified(&principal, req.method(), pattern.as_deref())
        .and_then(|()| required.map_or(Ok(()), |p| policy.require_admin_assurance(&principal, p)))
        .and_then(|()| {
            if step_up {
                policy.require_recent(&principal)
            } else {
                Ok(())
            }
        });
    if let Err(error) = assured {
        return Ok(req.error_response(error).map_into_boxed_body());
    }
    req.extensions_mut().insert(principal);
    next.call(req).await
}

/// For a route that is sensitive only for some inputs (an API key with admin scopes): the same
/// step-up check the guard applies to [`ApiRoutes::add_sensitive`] routes.
pub fn require_step_up(req: &HttpRequest, principal: &Principal) -> Result<(), AppError> {
    req.app_data::<AssurancePolicy>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("no assurance policy mounted")))?
        .require_recent(principal)
}

/// Request details recorded with audit events: the trusted client IP, user agent, request id (the
/// client's, if acceptable) and the server's own request id.
pub fn request_meta(req: &HttpRequest) -> crate::audit::RequestMeta {
    let ip = req
        .extensions()
        .get::<crate::http::client_ip::ClientIp>()
        .map(|ip| ip.0);
    let request_id = req
        .extensions()
        .get::<crate::http::request_id::RequestId>()
        .map(|id| id.0.clone());
    let server_request_id = req
        .extensions()
        .get::<crate::http::request_id::ServerRequestId>()
        .map(|id| id.0.clone());
    let user_agent = req.headers().get(header::USER_AGENT).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .chars()
            .take(512)
            .collect()
    });
    crate::audit::RequestMeta {
        ip,
        user_agent,
        request_id,
        server_request_id,
    }
}
