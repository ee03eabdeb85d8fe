//! Test harness shared by the integration test binaries: a fresh database per test (copied from a
//! migrated template), the real application on a random loopback port, and typed helpers.
#![allow(dead_code)]

pub mod db;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rampart::app::{Application, ExtraRoutes, no_extra_routes};
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
        let settings = settings_from(self.env);
        let app = Application::build_with(settings.clone(), self.extra).expect("build app");
        let port = app.port();
        actix_web::rt::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client,
            db: self.db,
            settings,
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
