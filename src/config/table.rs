//! The declaration of every setting (see `spec` for what a declaration holds and what is derived
//! from this table): name, kind, default, doc line and how `config show` prints it.

use super::settings::{LogFormat, PasswordPolicy, quota_text};
use super::spec::{DefaultValue, Kind, SettingSpec, Show, hidden, secret, setting};

use DefaultValue::{Bool, Computed, Int, List, None as Unset, Str};
use Kind::{Bool as B, Int as I, List as L, Quota as Q, Str as S};

pub(super) fn list(items: &[String]) -> String {
    items.join(",")
}

/// Every setting, in `config show` order.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "ENVIRONMENT",
        kind: S,
        default: Str("development"),
        secret: false,
        doc: "development, test or production; selects config/<ENVIRONMENT>.toml",
        show: Show::Plain(|s| s.environment.as_str().into()),
        env_only: true,
    },
    setting("DEBUG", B, Bool(false), "verbose logging", |s| {
        s.debug.to_string()
    }),
    setting("HOST", S, Str("127.0.0.1"), "listen address", |s| {
        s.host.clone()
    }),
    setting("PORT", I, Int(8080), "listen port", |s| s.port.to_string()),
    SettingSpec {
        name: "DATABASE_URL",
        kind: S,
        default: Computed("built from the parts below"),
        secret: true,
        doc: "Postgres URL",
        show: Show::Url(|s| Some(&s.database.url)),
        env_only: false,
    },
    hidden(
        "DATABASE_HOST",
        S,
        Str("127.0.0.1"),
        false,
        "database host, when DATABASE_URL is unset",
    ),
    hidden(
        "DATABASE_PORT",
        I,
        Int(5432),
        false,
        "database port, when DATABASE_URL is unset",
    ),
    hidden(
        "DATABASE_NAME",
        S,
        Str("rampart"),
        false,
        "database name, when DATABASE_URL is unset",
    ),
    hidden(
        "DATABASE_USER",
        S,
        Str("postgres"),
        false,
        "database user, when DATABASE_URL is unset",
    ),
    hidden(
        "DATABASE_PASSWORD",
        S,
        Unset,
        true,
        "database password, when DATABASE_URL is unset",
    ),
    hidden(
        "DATABASE_SSLMODE",
        S,
        Str("prefer"),
        false,
        "libpq sslmode, when DATABASE_URL is unset",
    ),
    setting("DATABASE_POOL_SIZE", I, Int(10), "r2d2 pool size", |s| {
        s.database.pool_size.to_string()
    }),
    setting(
        "DATABASE_POOL_TIMEOUT_MS",
        I,
        Int(2000),
        "wait for a connection before 503",
        |s| s.database.pool_timeout.as_millis().to_string(),
    ),
    setting(
        "DATABASE_TEST_ON_CHECKOUT",
        B,
        Bool(false),
        "ping per checkout",
        |s| s.database.test_on_checkout.to_string(),
    ),
    setting(
        "DATABASE_MIGRATE_ON_START",
        B,
        Bool(false),
        "migrate at serve",
        |s| s.database.migrate_on_start.to_string(),
    ),
    setting(
        "DATABASE_STARTUP_WAIT_SECONDS",
        I,
        Int(30),
        "wait for the database at start",
        |s| s.database.startup_wait.as_secs().to_string(),
    ),
    secret("SECRET_KEY", "root secret (audit-chain key)", |s| {
        s.secret_key.as_ref()
    }),
    secret("JWT_SECRET", "HS256 signing key", |s| s.jwt_secret.as_ref()),
    secret("ENCRYPTION_KEY", "Fernet key for data at rest", |s| {
        s.encryption_key.as_ref()
    }),
    SettingSpec {
        name: "ENCRYPTION_KEYS_PREVIOUS",
        kind: L,
        default: List(&[]),
        secret: true,
        doc: "former Fernet master keys still unwrapping data keys",
        show: Show::SecretList(|s| s.secrets.encryption_keys_previous.len()),
        env_only: false,
    },
    secret("SESSION_SECRET", "console sessions and CSRF", |s| {
        s.session_secret.as_ref()
    }),
    secret("API_KEY_HASH_SECRET", "HMAC key for API-key hashes", |s| {
        s.api_key_hash_secret.as_ref()
    }),
    secret(
        "STRIPE_WEBHOOK_SECRET",
        "Stripe webhook signing secret",
        |s| s.stripe_webhook_secret.as_ref(),
    ),
    secret(
        "CLERK_WEBHOOK_SECRET",
        "Clerk webhook signing secret",
        |s| s.clerk_webhook_secret.as_ref(),
    ),
    setting(
        "WEBHOOK_TIMESTAMP_TOLERANCE",
        I,
        Int(300),
        "webhook clock skew, seconds",
        |s| s.webhooks.timestamp_tolerance.to_string(),
    ),
    setting(
        "WEBHOOK_RETENTION_DAYS",
        I,
        Int(7),
        "days webhook deliveries are kept",
        |s| s.webhooks.retention_days.to_string(),
    ),
    setting(
        "WEBHOOK_MAX_BODY_BYTES",
        I,
        Int(262144),
        "webhook body limit",
        |s| s.webhooks.max_body_bytes.to_string(),
    ),
    setting(
        "CONVERSATION_MAX_MEMBERS",
        I,
        Int(50),
        "members per conversation",
        |s| s.conversations.max_members.to_string(),
    ),
    setting(
        "MESSAGE_EDIT_WINDOW_MINUTES",
        I,
        Int(15),
        "minutes a message stays editable",
        |s| s.conversations.edit_window.whole_minutes().to_string(),
    ),
    setting(
        "ATTACHMENT_MAX_BYTES",
        I,
        Int(5242880),
        "largest attachment",
        |s| s.conversations.attachment_max_bytes.to_string(),
    ),
    setting(
        "ATTACHMENT_TYPES",
        L,
        List(&["png", "jpeg", "webp", "gif", "pdf", "text"]),
        "attachment types accepted",
        |s| s.conversations.attachment_types.join(","),
    ),
    setting(
        "MESSAGE_RETENTION_DAYS",
        I,
        Int(0),
        "days messages are kept (0: forever)",
        |s| s.conversations.retention_days.unwrap_or(0).to_string(),
    ),
    setting(
        "LIVE_BUS",
        S,
        Str("postgres"),
        "live delivery between instances: postgres (LISTEN/NOTIFY) or redis (pub/sub, REDIS_URL)",
        |s| s.live.bus.as_str().into(),
    ),
    setting(
        "WS_MAX_PER_USER",
        I,
        Int(5),
        "WebSocket connections per user, all instances",
        |s| s.live.max_per_user.to_string(),
    ),
    setting(
        "WS_MAX_PER_IP",
        I,
        Int(20),
        "WebSocket connections per client IP, all instances",
        |s| s.live.max_per_ip.to_string(),
    ),
    setting(
        "WS_MAX_FRAME_BYTES",
        I,
        Int(16384),
        "largest WebSocket frame a client may send",
        |s| s.live.max_frame_bytes.to_string(),
    ),
    setting(
        "WS_ALLOW_NO_ORIGIN",
        B,
        Bool(false),
        "accept WebSocket upgrades without an Origin header (non-browser clients)",
        |s| s.live.allow_no_origin.to_string(),
    ),
    setting(
        "WS_PING_INTERVAL_SECONDS",
        I,
        Int(20),
        "seconds between pings; a socket missing 2 pongs is closed",
        |s| s.live.ping_interval.as_secs().to_string(),
    ),
    setting(
        "PUBLIC_BASE_URL",
        S,
        Computed("http://HOST:PORT"),
        "base of the links in mails (the client app's /verify-email and /reset-password)",
        |s| s.email.public_base_url.clone(),
    ),
    setting(
        "EMAIL_BACKEND",
        S,
        Computed("log, except production: smtp"),
        "smtp (SMTP_URL) or log (the log and EMAIL_LOG_DIR; development)",
        |s| s.email.backend.as_str().into(),
    ),
    SettingSpec {
        name: "SMTP_URL",
        kind: S,
        default: Unset,
        secret: true,
        doc: "smtp://host:587?tls=required (STARTTLS) or smtps://host:465",
        show: Show::Url(|s| s.email.smtp_url.as_ref()),
        env_only: false,
    },
    setting(
        "SMTP_FROM",
        S,
        Str("rampart <no-reply@localhost>"),
        "sender of every mail",
        |s| s.email.from.clone(),
    ),
    setting(
        "EMAIL_PRODUCT_NAME",
        S,
        Str("rampart"),
        "the product name mails use",
        |s| s.email.product_name.clone(),
    ),
    setting(
        "EMAIL_LOG_DIR",
        S,
        Str("target/dev-mail"),
        "where EMAIL_BACKEND=log writes .eml files",
        |s| s.email.log_dir.display().to_string(),
    ),
    setting(
        "EMAIL_VERIFICATION_REQUIRED",
        B,
        Bool(false),
        "unverified users reach only /me, resend and logout",
        |s| s.email.verification_required.to_string(),
    ),
    setting(
        "EMAIL_NOTIFICATIONS_OFF",
        L,
        List(&[]),
        "security notices switched off",
        |s| list(&s.email.notifications_off),
    ),
    setting(
        "EMAIL_MAX_ATTEMPTS",
        I,
        Int(8),
        "deliveries tried before a mail fails",
        |s| s.email.max_attempts.to_string(),
    ),
    setting(
        "EMAIL_RETRY_BASE_SECONDS",
        I,
        Int(30),
        "first retry delay, doubling",
        |s| s.email.retry_base.as_secs().to_string(),
    ),
    setting(
        "EMAIL_POLL_INTERVAL_MS",
        I,
        Int(1000),
        "how often the sender looks for mail",
        |s| s.email.poll_interval.as_millis().to_string(),
    ),
    setting(
        "EMAIL_LINKS_PER_HOUR",
        I,
        Int(3),
        "reset or verification links to one address per hour",
        |s| s.email.links_per_hour.to_string(),
    ),
    setting("ADMIN_EMAILS", L, List(&[]), "admin addresses", |s| {
        list(&s.admin_emails)
    }),
    setting("SUPER_ADMIN_EMAIL", S, Unset, "the super admin", |s| {
        s.super_admin_email.clone().unwrap_or_default()
    }),
    setting(
        "IDENTITY_ADMIN_BY_EMAIL",
        B,
        Bool(false),
        "provider-verified ADMIN_EMAILS become admins",
        |s| s.identity_admin_by_email.to_string(),
    ),
    setting(
        "IDENTITY_AUTO_PROVISION",
        B,
        Bool(true),
        "first sight of a provider identity creates a user",
        |s| s.identity.auto_provision.to_string(),
    ),
    setting(
        "SUPABASE_URL",
        S,
        Unset,
        "Supabase project URL (issuer <url>/auth/v1)",
        |s| s.identity.supabase_url.clone().unwrap_or_default(),
    ),
    SettingSpec {
        name: "SUPABASE_JWT_SECRET",
        kind: Kind::Secret,
        default: Unset,
        secret: true,
        doc: "Supabase legacy HS256 JWT secret (optional)",
        show: Show::OptionalSecret(|s| s.supabase_jwt_secret.as_ref()),
        env_only: false,
    },
    setting(
        "SUPABASE_ALLOW_ANONYMOUS",
        B,
        Bool(false),
        "accept Supabase anonymous sign-ins",
        |s| s.identity.supabase_allow_anonymous.to_string(),
    ),
    setting(
        "CLERK_ISSUER",
        S,
        Unset,
        "Clerk Frontend API URL (token issuer)",
        |s| s.identity.clerk_issuer.clone().unwrap_or_default(),
    ),
    setting(
        "CLERK_JWT_KEY",
        S,
        Unset,
        "Clerk PEM public key (no network)",
        |s| {
            s.identity
                .clerk_jwt_key
                .as_ref()
                .map(|_| "(PEM public key)".to_string())
                .unwrap_or_default()
        },
    ),
    setting(
        "CLERK_AUTHORIZED_PARTIES",
        L,
        List(&[]),
        "accepted azp origins of Clerk tokens",
        |s| list(&s.identity.clerk_authorized_parties),
    ),
    setting(
        "CORS_ORIGINS",
        L,
        List(&[]),
        "allowed browser origins",
        |s| list(&s.cors.origins),
    ),
    hidden(
        "BACKEND_CORS_ORIGINS",
        L,
        List(&[]),
        false,
        "alias of CORS_ORIGINS",
    ),
    setting(
        "CORS_ALLOW_CREDENTIALS",
        B,
        Bool(false),
        "Allow-Credentials",
        |s| s.cors.allow_credentials.to_string(),
    ),
    setting(
        "CORS_MAX_AGE",
        I,
        Int(600),
        "preflight cache seconds",
        |s| s.cors.max_age.to_string(),
    ),
    setting("ALLOW_ALL_ORIGINS", B, Bool(false), "any origin", |s| {
        s.cors.allow_all_origins.to_string()
    }),
    setting(
        "ALLOWED_HOSTS",
        L,
        List(&["localhost", "127.0.0.1", "::1"]),
        "accepted Host values",
        |s| list(&s.allowed_hosts),
    ),
    setting(
        "SECURITY_HEADERS_ENABLED",
        B,
        Bool(true),
        "security headers",
        |s| s.security_headers_enabled.to_string(),
    ),
    setting("MAX_BODY_BYTES", I, Int(65536), "request body limit", |s| {
        s.max_body_bytes.to_string()
    }),
    setting(
        "BODY_READ_TIMEOUT_SECONDS",
        I,
        Int(10),
        "body arrival limit",
        |s| s.http.body_read_timeout.as_secs().to_string(),
    ),
    setting(
        "HTTP_KEEP_ALIVE_SECONDS",
        I,
        Int(75),
        "idle keep-alive",
        |s| s.http.keep_alive.as_secs().to_string(),
    ),
    setting(
        "HTTP_CLIENT_TIMEOUT_SECONDS",
        I,
        Int(5),
        "request head limit",
        |s| s.http.client_timeout.as_secs().to_string(),
    ),
    setting(
        "HTTP_SHUTDOWN_TIMEOUT_SECONDS",
        I,
        Int(30),
        "graceful shutdown",
        |s| s.http.shutdown_timeout.as_secs().to_string(),
    ),
    setting("RATE_LIMIT_ENABLED", B, Bool(true), "per-IP limits", |s| {
        s.rate_limit.enabled.to_string()
    }),
    setting(
        "RATE_LIMIT_PER_MINUTE",
        I,
        Int(60),
        "global per-minute budget",
        |s| s.rate_limit.per_minute.to_string(),
    ),
    setting(
        "RATE_LIMIT_PER_HOUR",
        I,
        Int(1000),
        "global per-hour budget",
        |s| s.rate_limit.per_hour.to_string(),
    ),
    setting(
        "RATE_LIMIT_LOGIN_PER_MINUTE",
        I,
        Int(10),
        "login limit",
        |s| s.rate_limit.login_per_minute.to_string(),
    ),
    setting(
        "RATE_LIMIT_REGISTER_PER_MINUTE",
        I,
        Int(5),
        "register limit",
        |s| s.rate_limit.register_per_minute.to_string(),
    ),
    setting(
        "RATE_LIMIT_REFRESH_PER_MINUTE",
        I,
        Int(30),
        "refresh limit",
        |s| s.rate_limit.refresh_per_minute.to_string(),
    ),
    setting(
        "RATE_LIMIT_PASSWORD_PER_MINUTE",
        I,
        Int(5),
        "password-change limit",
        |s| s.rate_limit.password_per_minute.to_string(),
    ),
    setting(
        "RATE_LIMIT_WEBHOOK_PER_MINUTE",
        I,
        Int(600),
        "webhook limit per sender IP",
        |s| s.rate_limit.webhook_per_minute.to_string(),
    ),
    setting(
        "RATE_LIMIT_MAX_TRACKED_CLIENTS",
        I,
        Int(1_000_000),
        "limiter memory",
        |s| s.rate_limit.max_tracked_clients.to_string(),
    ),
    SettingSpec {
        name: "REDIS_URL",
        kind: S,
        default: Unset,
        secret: true,
        doc: "shared rate limits",
        show: Show::Url(|s| s.rate_limit.redis_url.as_ref()),
        env_only: false,
    },
    setting(
        "REDIS_KEY_PREFIX",
        S,
        Str("rampart:rl:"),
        "Redis key prefix",
        |s| s.rate_limit.redis_key_prefix.clone(),
    ),
    setting(
        "QUOTA_MESSAGES_PER_DAY",
        Q,
        Int(100),
        "daily messages",
        |s| quota_text(s.quotas.messages_sent_per_day),
    ),
    setting(
        "QUOTA_API_KEYS_PER_DAY",
        Q,
        Int(20),
        "daily API keys",
        |s| quota_text(s.quotas.api_keys_created_per_day),
    ),
    setting("QUOTA_EXPORTS_PER_DAY", Q, Int(5), "daily exports", |s| {
        quota_text(s.quotas.data_exports_per_day)
    }),
    setting(
        "QUOTA_ATTACHMENTS_PER_DAY",
        Q,
        Int(20),
        "daily attachments",
        |s| quota_text(s.quotas.attachments_uploaded_per_day),
    ),
    setting(
        "QUOTA_CONVERSATIONS_PER_MONTH",
        Q,
        Int(50),
        "conversations per month",
        |s| quota_text(s.quotas.conversations_created_per_month),
    ),
    setting(
        "QUOTA_OVERRIDES",
        L,
        List(&[]),
        "per-role and per-key quotas",
        |s| {
            s.quotas
                .overrides
                .iter()
                .map(|o| format!("{}:{}={}", o.scope, o.kind, quota_text(o.limit)))
                .collect::<Vec<_>>()
                .join(",")
        },
    ),
    setting(
        "TRUSTED_PROXIES",
        L,
        List(&[]),
        "proxies whose X-Forwarded-For counts",
        |s| {
            s.trusted_proxies
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        },
    ),
    setting(
        "LOG_LEVEL",
        S,
        Str("info"),
        "level or tracing directives",
        |s| s.log_level.clone(),
    ),
    setting("LOG_FORMAT", S, Str("auto"), "auto, json or pretty", |s| {
        match s.log_format {
            LogFormat::Auto => "auto",
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
        .into()
    }),
    setting(
        "ENABLE_AUDIT_LOGGING",
        B,
        Bool(true),
        "tamper-evident audit log",
        |s| s.enable_audit_logging.to_string(),
    ),
    setting(
        "DOCS_ENABLED",
        B,
        Computed("on, except production"),
        "OpenAPI document",
        |s| s.docs_enabled.to_string(),
    ),
    setting(
        "JWT_ALGORITHM",
        S,
        Str("HS256"),
        "HS256, EdDSA or ES256",
        |s| s.auth.jwt_algorithm.clone(),
    ),
    setting(
        "JWT_PRIVATE_KEY_FILE",
        S,
        Unset,
        "EdDSA/ES256 signing key",
        |s| {
            s.auth
                .jwt_private_key_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        },
    ),
    setting(
        "JWT_PUBLIC_KEY_FILES",
        L,
        List(&[]),
        "kid=path public keys",
        |s| {
            s.auth
                .jwt_public_key_files
                .iter()
                .map(|(kid, p)| format!("{kid}={}", p.display()))
                .collect::<Vec<_>>()
                .join(",")
        },
    ),
    SettingSpec {
        name: "JWT_PREVIOUS_SECRETS",
        kind: L,
        default: List(&[]),
        secret: true,
        doc: "former HS256 secrets still verified",
        show: Show::SecretList(|s| s.auth.jwt_previous_secrets.len()),
        env_only: false,
    },
    setting(
        "JWT_ISSUER",
        S,
        Str("rampart"),
        "iss of access tokens",
        |s| s.auth.jwt_issuer.clone(),
    ),
    setting(
        "JWT_AUDIENCE",
        S,
        Str("rampart-api"),
        "aud of access tokens",
        |s| s.auth.jwt_audience.clone(),
    ),
    setting(
        "ACCESS_TOKEN_TTL_SECONDS",
        I,
        Int(900),
        "access-token lifetime",
        |s| s.auth.access_token_ttl.as_secs().to_string(),
    ),
    setting(
        "REFRESH_TOKEN_TTL_DAYS",
        I,
        Int(30),
        "session absolute limit",
        |s| (s.auth.refresh_token_ttl.as_secs() / 86_400).to_string(),
    ),
    setting(
        "REFRESH_TOKEN_IDLE_DAYS",
        I,
        Int(7),
        "session idle limit",
        |s| (s.auth.refresh_token_idle.as_secs() / 86_400).to_string(),
    ),
    setting(
        "PASSWORD_POLICY",
        S,
        Str("modern"),
        "modern or classic",
        |s| {
            match s.auth.password_policy {
                PasswordPolicy::Modern => "modern",
                PasswordPolicy::Classic => "classic",
            }
            .into()
        },
    ),
    setting(
        "ARGON2_MEMORY_KIB",
        I,
        Int(19_456),
        "argon2id memory",
        |s| s.auth.argon2_memory_kib.to_string(),
    ),
    setting("ARGON2_ITERATIONS", I, Int(2), "argon2id iterations", |s| {
        s.auth.argon2_iterations.to_string()
    }),
    setting("ARGON2_PARALLELISM", I, Int(1), "argon2id lanes", |s| {
        s.auth.argon2_parallelism.to_string()
    }),
    setting(
        "PASSWORD_HASH_CONCURRENCY",
        I,
        Computed("cores − 1 (min 1)"),
        "hashes at once",
        |s| s.auth.hash_concurrency.to_string(),
    ),
    setting(
        "PASSWORD_HASH_QUEUE",
        I,
        Int(64),
        "hashes waiting before 503",
        |s| s.auth.hash_queue.to_string(),
    ),
    setting(
        "LOCKOUT_THRESHOLD",
        I,
        Int(5),
        "failures before lockout",
        |s| s.auth.lockout_threshold.to_string(),
    ),
    setting("LOCKOUT_BASE_SECONDS", I, Int(60), "first lockout", |s| {
        s.auth.lockout_base.as_secs().to_string()
    }),
    setting("LOCKOUT_MAX_SECONDS", I, Int(900), "longest lockout", |s| {
        s.auth.lockout_max.as_secs().to_string()
    }),
    setting(
        "STEP_UP_MAX_AGE_MINUTES",
        I,
        Int(10),
        "recent sign-in needed for sensitive actions",
        |s| (s.auth.step_up_max_age.as_secs() / 60).to_string(),
    ),
    setting(
        "MFA_REQUIRED_FOR_ADMINS",
        B,
        Computed("on in production only"),
        "admins need a second factor",
        |s| s.auth.mfa_required_for_admins.to_string(),
    ),
    setting(
        "API_KEY_MAX_PER_USER",
        I,
        Int(25),
        "live API keys per user",
        |s| s.api_keys.max_per_user.to_string(),
    ),
    setting(
        "API_KEY_ROTATION_GRACE_HOURS",
        I,
        Int(24),
        "rotated key overlap",
        |s| (s.api_keys.rotation_grace.as_secs() / 3600).to_string(),
    ),
    setting(
        "ADMIN_SESSION_IDLE_MINUTES",
        I,
        Int(30),
        "console idle limit",
        |s| (s.console.idle.as_secs() / 60).to_string(),
    ),
    setting(
        "ADMIN_SESSION_ABSOLUTE_HOURS",
        I,
        Int(8),
        "console absolute limit",
        |s| (s.console.absolute.as_secs() / 3600).to_string(),
    ),
];
