//! Test harness shared by the integration test binaries: a fresh database per test (copied from a
//! migrated template), the real application on a random loopback port, and typed helpers.
#![allow(dead_code)]

pub mod db;
pub mod smtp;
pub mod totp;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rampart::app::{Application, ExtraRoutes, Options, no_extra_routes};
use rampart::clock::Clock;
use rampart::config::{Settings, Sources};

pub use db::TestDb;

/// Environment for a test app: ENVIRONMENT=test, fresh secrets, a random port.
pub fn base_env(database_url: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("ENVIRONMENT".into(), "test".into());
    env.insert("HOST".into(), "127.0.0.1".into());
    env.insert("PORT".into(), "0".into());
    env.insert("DATABASE_URL".into(), database_url.into());
    env.insert("DATABASE_POOL_TIMEOUT_MS".into(), "1000".into());
    // Tests hash many passwords: the OWASP parameters cost ~30 ms each, which adds up without
    // changing what is tested; the benchmarks measure the real ones.
    env.insert("ARGON2_MEMORY_KIB".into(), "8192".into());
    env.insert("ARGON2_ITERATIONS".into(), "1".into());
    // EMAIL_BACKEND=log (the test default) writes mails here, not into the checkout.
    env.insert(
        "EMAIL_LOG_DIR".into(),
        std::env::temp_dir()
            .join("rampart-test-mail")
            .display()
            .to_string(),
    );
    // The limiter stays on in every test (its headers and its middleware are part of what is
    // tested), with budgets no ordinary test reaches; the rate-limit tests set their own.
    for key in [
        "RATE_LIMIT_PER_MINUTE",
        "RATE_LIMIT_PER_HOUR",
        "RATE_LIMIT_LOGIN_PER_MINUTE",
        "RATE_LIMIT_REGISTER_PER_MINUTE",
        "RATE_LIMIT_REFRESH_PER_MINUTE",
        "RATE_LIMIT_PASSWORD_PER_MINUTE",
        "RATE_LIMIT_WEBHOOK_PER_MINUTE",
    ] {
        env.insert(key.into(), "1000000".into());
    }
    for line in rampart::crypto::random::env_block().unwrap().lines() {
        if let Some((k, v)) = line.split_once('=')
            && !k.starts_with('#')
        {
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}

pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
}

pub fn settings_from(env: BTreeMap<String, String>) -> Settings {
    Settings::load_from(&Sources {
        config_dir: config_dir(),
        env,
        dotenv: None,
    })
    .expect("test settings load")
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db: Option<TestDb>,
    pub settings: Settings,
    /// The app's clock: `app.clock.advance(..)` moves time for every time-based rule.
    pub clock: Clock,
    /// The environment the app was built from (for a second instance like it).
    pub settings_env: BTreeMap<String, String>,
}

pub struct AppBuilder {
    env: BTreeMap<String, String>,
    extra: ExtraRoutes,
    db: Option<TestDb>,
}

impl AppBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn extra_routes(
        mut self,
        f: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.extra = Arc::new(f);
        self
    }

    pub async fn spawn(self) -> TestApp {
        if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
            let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
        }
        let settings_env = self.env.clone();
        let settings = settings_from(self.env);
        let clock = Clock::system();
        let options = Options {
            extra: self.extra,
            clock: clock.clone(),
        };
        let app = Application::build_with(settings.clone(), options).expect("build app");
        let port = app.port();
        actix_web::rt::spawn(app.run_until_stopped());
        // Pooled connections are dropped well before the server's keep-alive closes them, so no
        // test ever reuses a connection the server is closing (hyper's IncompleteMessage) —
        // whatever the machine's speed and however long a test pauses between requests.
        let keep_alive = settings.http.keep_alive;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(keep_alive / 2)
            .pool_max_idle_per_host(if keep_alive.is_zero() { 0 } else { usize::MAX })
            .build()
            .unwrap();
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client,
            db: self.db,
            settings,
            clock,
            settings_env,
        }
    }
}

/// An app on a fresh migrated database.
pub fn app() -> AppBuilder {
    let db = TestDb::new();
    AppBuilder {
        env: base_env(&db.url),
        extra: no_extra_routes(),
        db: Some(db),
    }
}

/// An app whose database does not answer (a closed port).
pub fn app_without_database() -> AppBuilder {
    AppBuilder {
        env: base_env("postgres://postgres@127.0.0.1:1/nowhere"),
        extra: no_extra_routes(),
        db: None,
    }
}

/// Another instance on `other`'s database (the database stays `other`'s to drop).
pub fn app_sharing_database(other: &TestApp) -> AppBuilder {
    let url = other.db.as_ref().expect("a database").url.clone();
    let mut env = other.settings_env.clone();
    env.insert("DATABASE_URL".into(), url);
    AppBuilder {
        env,
        extra: no_extra_routes(),
        db: None,
    }
}

/// The Redis the shared-limit tests use (`make test` makes sure one answers).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub async fn spawn_app() -> TestApp {
    app().spawn().await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }
}

pub const PASSWORD: &str = "correct horse battery staple 42";

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, username: &str) -> serde_json::Value {
        let res = self
            .post_json(
                "/api/v1/auth/register",
                &serde_json::json!({
                    "username": username,
                    "email": format!("{}@example.org", username.to_lowercase()),
                    "password": PASSWORD,
                }),
            )
            .await;
        assert_eq!(res.status(), 201, "register {username}");
        res.json().await.unwrap()
    }

    pub async fn login_as(&self, login: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/login",
            &serde_json::json!({ "login": login, "password": password }),
        )
        .await
    }

    /// Registers `username` and logs in: the token pair.
    pub async fn user(&self, username: &str) -> Tokens {
        self.register(username).await;
        self.login(username).await
    }

    pub async fn login(&self, username: &str) -> Tokens {
        let res = self.login_as(username, PASSWORD).await;
        assert_eq!(res.status(), 200, "login {username}");
        let body: serde_json::Value = res.json().await.unwrap();
        Tokens {
            access: body["access_token"].as_str().unwrap().to_string(),
            refresh: body["refresh_token"].as_str().unwrap().to_string(),
            session_id: body["session_id"].as_str().unwrap().to_string(),
        }
    }

    /// Creates an API key for the holder of `access`: the 201 body (`key` appears only here).
    pub async fn api_key(&self, access: &str, name: &str, scopes: &[&str]) -> serde_json::Value {
        let res = self
            .client
            .post(self.url("/api/v1/api-keys"))
            .bearer_auth(access)
            .json(&serde_json::json!({ "name": name, "scopes": scopes }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "create API key {name}");
        res.json().await.unwrap()
    }

    /// `SELECT count(*) FROM {from_where}` on the app's database (e.g.
    /// `"audit_logs WHERE action = 'mfa.reset'"`).
    pub fn count(&self, from_where: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db.as_ref().unwrap().connect();
        diesel::sql_query(format!("SELECT count(*) AS n FROM {from_where}"))
            .get_result::<N>(&mut conn)
            .unwrap()
            .n
    }

    /// Runs SQL (one or more statements) on the app's database, as the superuser the tests
    /// connect with.
    pub fn sql(&self, statements: &str) {
        use diesel::connection::SimpleConnection;
        let mut conn = self.db.as_ref().unwrap().connect();
        conn.batch_execute(statements).unwrap();
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
}

/// Waits (up to 10 s, polling every 20 ms) until `done()` holds; fails the test naming `what`.
/// For what a background task does (the mail sender), never for time-based rules (those move
/// the app's clock).
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Sends a hand-written request head (no body) and returns the raw response. For requests a
/// normal client cannot make, e.g. a declared Content-Length with the body withheld, so an early
/// 413 can be read deterministically (a client still writing its body may see a reset instead).
///
/// The socket work runs on a blocking thread: the test's own thread drives the server.
pub async fn raw_http(port: u16, head: &str) -> (u16, String) {
    let head = head.to_string();
    actix_web::rt::task::spawn_blocking(move || raw_http_blocking(port, &head))
        .await
        .unwrap()
}

fn raw_http_blocking(port: u16, head: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // A server may answer (and close) before a long head is all written: keep what it said.
    let _ = stream.write_all(head.as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

impl TestApp {
    /// The id of a registered user, by username, read straight from the database.
    pub fn user_id(&self, username: &str) -> String {
        use diesel::prelude::*;
        use rampart::db::schema::users;
        let mut conn = self.db.as_ref().unwrap().connect();
        users::table
            .filter(users::username.eq(username))
            .select(users::id)
            .first::<uuid::Uuid>(&mut conn)
            .unwrap()
            .to_string()
    }

    /// Makes `username` an admin the way an operator does (`rampart create-admin --promote`):
    /// self-registration never grants admin, whatever the address.
    pub fn promote(&self, username: &str) {
        let mut conn = self.db.as_ref().unwrap().connect();
        let auditor = rampart::audit::Auditor::for_operator(&self.settings).unwrap();
        rampart::accounts::cli::promote_admin(&mut conn, &auditor, username).unwrap();
    }

    /// Registers `username` and promotes them to admin as an operator would.
    pub async fn register_admin(&self, username: &str) -> serde_json::Value {
        let user = self.register(username).await;
        self.promote(username);
        user
    }

    /// Registers and promotes `username`, then logs in: an admin's token pair.
    pub async fn admin_user(&self, username: &str) -> Tokens {
        self.register_admin(username).await;
        self.login(username).await
    }
}
