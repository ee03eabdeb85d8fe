//! The real binary: check-config, config show, keygen, --help.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use crate::support::{base_env, config_dir};

/// Runs `rampart args…` with exactly `env` (plus PATH), from an empty directory so no stray .env
/// is picked up.
pub fn rampart(args: &[&str], env: &BTreeMap<String, String>) -> Output {
    let cwd = std::env::temp_dir().join(format!("rampart-cli-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&cwd).unwrap();
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RAMPART_CONFIG_DIR", config_dir())
        .envs(env)
        .current_dir(&cwd)
        .output()
        .unwrap()
}

fn example_env() -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    text.lines()
        .filter(|l| !l.trim().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn check_config_in_production_with_example_values_fails_listing_each_problem() {
    let mut env = example_env();
    env.insert("ENVIRONMENT".into(), "production".into());
    let out = rampart(&["check-config"], &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in rampart::config::settings::SECRET_KEYS {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("error: {key}:"))),
            "{key} not listed:\n{stderr}"
        );
        assert!(
            !stderr.contains(env[*key].as_str()),
            "{key}'s value printed"
        );
    }
    assert!(
        stderr.contains("CORS_ORIGINS"),
        "http CORS origin not flagged:\n{stderr}"
    );
    // One line per problem, each with a fix.
    let problem_lines: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(problem_lines.len() >= 8, "{stderr}");
    assert!(problem_lines.iter().all(|l| l.contains("fix:")), "{stderr}");
}

#[test]
fn serve_in_production_refuses_to_start_with_every_problem() {
    let mut env = example_env();
    env.insert("ENVIRONMENT".into(), "production".into());
    env.insert("PORT".into(), "0".into());
    let out = rampart(&["serve"], &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to start"), "{stderr}");
    for key in rampart::config::settings::SECRET_KEYS {
        assert!(stderr.contains(key), "{key} not listed");
    }
}

#[test]
fn check_config_in_development_warns_but_succeeds_and_strict_fails() {
    let mut env = example_env();
    env.insert("ENVIRONMENT".into(), "development".into());
    let out = rampart(&["check-config"], &env);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: JWT_SECRET"), "{stderr}");
    let out = rampart(&["check-config", "--strict"], &env);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn keygen_output_passes_check_config_in_production() {
    let out = rampart(&["keygen"], &BTreeMap::new());
    assert!(out.status.success());
    let block = String::from_utf8(out.stdout).unwrap();
    let mut env: BTreeMap<String, String> = block
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for key in rampart::config::settings::SECRET_KEYS {
        assert!(env.contains_key(*key), "keygen lacks {key}");
    }
    assert!(fernet::Fernet::new(&env["ENCRYPTION_KEY"]).is_some());
    // Two runs never repeat a value.
    let again = String::from_utf8(rampart(&["keygen"], &BTreeMap::new()).stdout).unwrap();
    for key in rampart::config::settings::SECRET_KEYS {
        assert!(!again.contains(env[*key].as_str()));
    }
    env.insert("ENVIRONMENT".into(), "production".into());
    env.insert("CORS_ORIGINS".into(), "https://app.example.org".into());
    env.insert(
        "DATABASE_URL".into(),
        "postgres://rampart@127.0.0.1/rampart".into(),
    );
    // Mail: an SMTP server reached over TLS, links to an https client.
    env.insert(
        "SMTP_URL".into(),
        "smtp://mailer:pw@smtp.example.org:587?tls=required".into(),
    );
    env.insert("PUBLIC_BASE_URL".into(), "https://app.example.org".into());
    let out = rampart(&["check-config"], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_show_redacts_secrets() {
    let mut env = base_env("postgres://svc:db-pass-Xq81@127.0.0.1:5432/rampart");
    env.insert("ENVIRONMENT".into(), "production".into());
    let out = rampart(&["config", "show"], &env);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    for key in rampart::config::settings::SECRET_KEYS {
        assert!(
            stdout.contains(&format!("{key}=***REDACTED***")),
            "{key}:\n{stdout}"
        );
        assert!(!stdout.contains(env[*key].as_str()));
    }
    assert!(!stdout.contains("db-pass-Xq81"));
    assert!(stdout.contains("ENVIRONMENT=production"));
}

#[test]
fn unknown_key_in_config_file_exits_2() {
    let dir =
        std::env::temp_dir().join(format!("rampart-badcfg-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("default.toml"), "prot = 8080\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["check-config"])
        .env_clear()
        .env("RAMPART_CONFIG_DIR", &dir)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key `prot`"));
}

#[test]
fn help_is_available_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["keygen", "--help"],
        vec!["check-config", "--help"],
        vec!["config", "show", "--help"],
    ] {
        let out = rampart(&args, &BTreeMap::new());
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.len() > 80, "{args:?} help too thin: {text}");
    }
}

#[test]
fn development_serve_waits_for_the_database_then_exits_clearly() {
    let mut env = base_env("postgres://postgres@127.0.0.1:1/nowhere");
    env.insert("ENVIRONMENT".into(), "development".into());
    env.insert("DATABASE_MIGRATE_ON_START".into(), "true".into());
    env.insert("DATABASE_STARTUP_WAIT_SECONDS".into(), "2".into());
    env.insert("PORT".into(), "0".into());
    let out = rampart(&["serve"], &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not answer within 2 s"), "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL"),
        "the message says what to do: {stderr}"
    );
}

#[test]
fn production_serve_refuses_to_start_when_its_shared_rate_limit_store_is_down() {
    let out = rampart(&["keygen"], &BTreeMap::new());
    let mut env: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("ENVIRONMENT".into(), "production".into());
    env.insert("CORS_ORIGINS".into(), "https://app.example.org".into());
    env.insert(
        "DATABASE_URL".into(),
        "postgres://rampart@127.0.0.1:1/rampart".into(),
    );
    env.insert("PORT".into(), "0".into());
    env.insert("SMTP_URL".into(), "smtp://127.0.0.1:25".into());
    env.insert("PUBLIC_BASE_URL".into(), "https://app.example.org".into());
    env.insert("REDIS_URL".into(), "redis://127.0.0.1:1/".into());
    let out = rampart(&["serve"], &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REDIS_URL is set but the shared rate limits are unavailable"),
        "{stderr}"
    );
}

#[test]
fn audit_prune_refuses_dates_postgres_cannot_hold_with_one_clean_line() {
    let db = crate::support::TestDb::new();
    let env = base_env(&db.url);
    for before in [
        "-4800-01-01",
        "-4713-11-23T23:59:59",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59-00:01",
        "+10000-01-01",
        "10000-01-01",
        "last tuesday",
    ] {
        let out = rampart(&["audit", "prune", &format!("--before={before}")], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{before}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{before}: {stderr}");
        assert!(stderr.starts_with("error: --before "), "{before}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = rampart(
        &["audit", "prune", "--before=9999-12-31T23:59:59-23:59"],
        &env,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outside the range"),
        "{out:?}"
    );
    // The edges of the range are accepted and reach the database without trouble.
    for before in [
        "-4713-11-24",
        "9999-12-31T23:59:59.999999Z",
        "9999-12-31T23:59:59+23:59",
    ] {
        let out = rampart(&["audit", "prune", &format!("--before={before}")], &env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{before}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("nothing to prune"), "{before}: {stdout}");
    }
}

/// A real `rampart serve` with JSON logs at info level, on `env` (whose PORT is 0): its port read
/// from the "rampart listening" line. Killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    pub port: u16,
    /// Stdout lines after the "listening" one.
    pub lines: std::sync::mpsc::Receiver<String>,
    /// Stdout lines up to and including the "listening" one.
    pub early: Vec<String>,
}

impl Served {
    pub fn start(env: &BTreeMap<String, String>) -> Served {
        use std::io::{BufRead, BufReader};
        let mut env = env.clone();
        env.insert("LOG_FORMAT".into(), "json".into());
        env.insert("LOG_LEVEL".into(), "info".into());
        let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .arg("serve")
            .env_clear()
            .env("RAMPART_CONFIG_DIR", config_dir())
            .envs(&env)
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut early = Vec::new();
        let port = loop {
            let line = lines
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("server did not start");
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            early.push(line);
            if parsed["message"] == "rampart listening" {
                break parsed["port"].as_u64().unwrap() as u16;
            }
        };
        Served {
            child,
            port,
            lines,
            early,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Logs `username` in (the tests' password): the access token.
    pub async fn login(&self, username: &str) -> String {
        let login: serde_json::Value = reqwest::Client::new()
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"login": username, "password": crate::support::PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["access_token"].as_str().unwrap().to_string()
    }

    /// The server's resident memory (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
