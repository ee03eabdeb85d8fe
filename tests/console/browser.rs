//! The console in a real browser: Debian's Chromium, driven through Debian's ChromeDriver with
//! fantoccini (WebDriver). An admin signs in, filters the audit log, opens a row, disables a user
//! (whose token the API then refuses), revokes a key, looks at the pages on a phone-sized screen
//! and signs out. Every page is kept as a 1280×800 screenshot in
//! target/test-artifacts/console/ (not committed).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::client::{admin_app, user_id};
use crate::support::{PASSWORD, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A ChromeDriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: `make test` installs Debian's chromium and chromium-driver \
                 (scripts/ensure-tools)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(format!(
            "rampart-chromium-{}",
            uuid::Uuid::now_v7().simple()
        ));
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", self.profile.display()),
                ]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(artefacts().join(format!("{name}.png")), png).unwrap();
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The page's `h1` (empty while a navigation replaces the page under us).
async fn heading(browser: &Client) -> String {
    match browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("h1"))
        .await
    {
        Ok(h1) => h1.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn wait_for_heading(browser: &Client, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if heading(browser).await.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "heading {text:?} never came; page: {}",
            browser.source().await.unwrap_or_default()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No horizontal scrolling of the page itself (wide tables scroll inside their own box).
async fn fits_width(browser: &Client) -> bool {
    browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap_or(false)
}

/// What sticks out past the viewport (for the failure message).
async fn widest(browser: &Client) -> String {
    browser
        .execute(
            "const w = window.innerWidth; \
             const out = [...document.querySelectorAll('body *')] \
               .filter(e => e.getBoundingClientRect().right > w + 1) \
               .slice(0, 8) \
               .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)); \
             return 'scrollWidth ' + document.documentElement.scrollWidth + ' > ' + w + ': ' + out.join(', ');",
            vec![],
        )
        .await
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[actix_web::test]
async fn an_admin_works_through_the_console_in_chromium() {
    // Trusts the loopback proxy, so the sessions below can come from their own addresses.
    let app: TestApp = admin_app()
        .env("TRUSTED_PROXIES", "127.0.0.1/32")
        .spawn()
        .await;
    app.register_admin("root").await;
    let mallory = app.user("mallory").await;
    let alice = app.user("alice").await;
    let key: Value = app
        .api_key(&alice.access, "alice laptop", &["profile:read"])
        .await;
    let alice_key = key["key"].as_str().unwrap().to_string();
    let key_id = key["id"].as_str().unwrap().to_string();
    let mallory_id = user_id(&app, "mallory");

    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.set_window_size(1280, 800).await.unwrap();

    // Signed out: any console page leads to the sign-in form.
    browser.goto(&app.url("/admin/users")).await.unwrap();
    wait_for_heading(&browser, "Sign in").await;
    shot(&browser, "01-sign-in").await;
    type_into(&browser, "#login", "root").await;
    type_into(&browser, "#password", PASSWORD).await;
    click(&browser, "form.stack button[type=submit]").await;
    wait_for_heading(&browser, "Dashboard").await;
    assert!(fits_width(&browser).await);
    shot(&browser, "02-dashboard").await;

    // Audit log: filter by action, open a row.
    click(&browser, "nav.mainnav a[href='/admin/audit']").await;
    wait_for_heading(&browser, "Audit log").await;
    shot(&browser, "03-audit").await;
    type_into(&browser, "#f-action", "auth.login.succeeded").await;
    click(&browser, "form.filters button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("action=auth.login.succeeded")
    {
        assert!(Instant::now() < deadline, "the filter did not apply");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let actions = browser
        .find_all(Locator::Css("table.data tbody td code"))
        .await
        .unwrap();
    assert_eq!(actions.len(), 2, "mallory's and alice's logins");
    for cell in &actions {
        assert_eq!(cell.text().await.unwrap(), "auth.login.succeeded");
    }
    shot(&browser, "04-audit-filtered").await;
    click(&browser, "table.data tbody tr:first-child a").await;
    wait_for_heading(&browser, "auth.login.succeeded").await;
    assert!(browser.source().await.unwrap().contains("hash_upgraded"));
    shot(&browser, "05-audit-row").await;

    // Users: find mallory, disable with a reason (a confirmation page first).
    browser.goto(&app.url("/admin/users")).await.unwrap();
    wait_for_heading(&browser, "Users").await;
    type_into(&browser, "#q", "mall").await;
    click(&browser, "form.filters button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("q=mall")
    {
        assert!(Instant::now() < deadline, "the search did not run");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        browser
            .find_all(Locator::Css("table.data tbody tr"))
            .await
            .unwrap()
            .len(),
        1,
        "only mallory matches"
    );
    browser
        .wait()
        .for_element(Locator::LinkText("mallory"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_heading(&browser, "mallory").await;
    shot(&browser, "06-user").await;
    click(
        &browser,
        &format!("a[href='/admin/users/{mallory_id}/disable']"),
    )
    .await;
    wait_for_heading(&browser, "Disable this account?").await;
    type_into(&browser, "#reason", "credential stuffing from the test").await;
    shot(&browser, "07-confirm-disable").await;
    click(&browser, "form.stack button[type=submit]").await;
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".flash-ok"))
        .await
        .unwrap();
    shot(&browser, "08-user-disabled").await;
    assert_eq!(
        app.get_auth("/api/v1/me", &mallory.access).await.status(),
        401,
        "the disabled user's token is refused"
    );

    // API keys: revoke alice's key with a reason.
    browser.goto(&app.url("/admin/keys")).await.unwrap();
    wait_for_heading(&browser, "API keys").await;
    shot(&browser, "09-keys").await;
    click(&browser, &format!("a[href='/admin/keys/{key_id}/revoke']")).await;
    wait_for_heading(&browser, "Revoke this API key?").await;
    type_into(&browser, "#reason", "laptop stolen").await;
    click(&browser, "form.stack button[type=submit]").await;
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".flash-ok"))
        .await
        .unwrap();
    assert_eq!(app.get_auth("/api/v1/me", &alice_key).await.status(), 401);
    shot(&browser, "10-key-revoked").await;

    // Sessions as real browsers and phones leave them: long user agents, IPv6 addresses.
    for (ua, ip) in [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "2001:db8:85a3:1234:5678:8a2e:370:7334",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "203.0.113.250",
        ),
    ] {
        let res = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("user-agent", ua)
            .header("x-forwarded-for", ip)
            .json(&json!({ "login": "alice", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    browser.goto(&app.url("/admin/sessions")).await.unwrap();
    wait_for_heading(&browser, "Live sessions").await;
    assert!(
        browser
            .find_all(Locator::Css("table.data tbody tr"))
            .await
            .unwrap()
            .len()
            >= 3,
        "sessions are listed"
    );
    shot(&browser, "11-sessions").await;

    // A phone-sized screen: the pages still fit (tables scroll inside their box).
    browser.set_window_size(390, 844).await.unwrap();
    for (path, name) in [
        ("/admin", "12-dashboard-390"),
        ("/admin/audit", "13-audit-390"),
        (&format!("/admin/users/{mallory_id}") as &str, "14-user-390"),
        ("/admin/sessions", "14b-sessions-390"),
        ("/admin/keys", "14c-keys-390"),
        ("/admin/webhooks", "14d-webhooks-390"),
    ] {
        browser.goto(&app.url(path)).await.unwrap();
        heading(&browser).await;
        assert!(
            fits_width(&browser).await,
            "{path} fits 390 px: {}",
            widest(&browser).await
        );
        shot(&browser, name).await;
    }
    browser.set_window_size(1280, 800).await.unwrap();

    // Keyboard: Tab from the top reaches the skip link first, and focus is visible.
    browser.goto(&app.url("/admin")).await.unwrap();
    heading(&browser).await;
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let focused: Value = browser
        .execute(
            "const e = document.activeElement; \
             return [e.className, getComputedStyle(e).outlineStyle];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(focused[0], "skip-link", "{focused}");
    assert_ne!(focused[1], "none", "focus is visible");

    // Sign out: back to the sign-in page, and the console is closed again.
    click(&browser, "form.signout button").await;
    wait_for_heading(&browser, "Sign in").await;
    assert!(
        browser
            .source()
            .await
            .unwrap()
            .contains("You are signed out.")
    );
    shot(&browser, "15-signed-out").await;
    browser.goto(&app.url("/admin")).await.unwrap();
    wait_for_heading(&browser, "Sign in").await;
    browser.close().await.unwrap();
}

/// Two factors in a real browser: with MFA_REQUIRED_FOR_ADMINS an admin's first sign-in lands on
/// the enrolment page; the test reads the secret off the page (as a person would type it into an
/// app), computes the code, enables TOTP, sees the recovery codes once, signs out, signs in again
/// with password then code, and — eleven minutes later — confirms a state change with a fresh
/// code on the re-authentication page, after which the pending action completes.
#[actix_web::test]
async fn an_admin_enrols_totp_signs_in_with_a_code_and_steps_up_in_chromium() {
    use crate::support::totp::{code_now, next_step, secret_from_base32};

    let app: TestApp = admin_app()
        .env("MFA_REQUIRED_FOR_ADMINS", "true")
        .spawn()
        .await;
    app.register_admin("root").await;
    app.user("mallory").await;
    let mallory_id = user_id(&app, "mallory");

    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.set_window_size(1280, 800).await.unwrap();
    browser.goto(&app.url("/admin/login")).await.unwrap();
    wait_for_heading(&browser, "Sign in").await;
    type_into(&browser, "#login", "root").await;
    type_into(&browser, "#password", PASSWORD).await;
    click(&browser, "form.stack button[type=submit]").await;
    // No second factor yet: only the enrolment page opens.
    wait_for_heading(&browser, "Two-factor sign-in").await;
    shot(&browser, "mfa-01-must-enrol").await;
    browser.goto(&app.url("/admin/users")).await.unwrap();
    wait_for_heading(&browser, "Two-factor sign-in").await;
    click(&browser, "form[action='/admin/mfa/start'] button").await;
    let secret = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#totp-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let qr = browser.find(Locator::Css("figure.qr svg")).await.unwrap();
    let size = qr.rectangle().await.unwrap();
    assert!(
        size.2 >= 150.0 && size.3 >= 150.0,
        "a scannable QR code: {size:?}"
    );
    shot(&browser, "mfa-02-scan").await;
    let secret = secret_from_base32(&secret);
    type_into(&browser, "#code", &code_now(&app, &secret)).await;
    click(&browser, "form[action='/admin/mfa/confirm'] button").await;
    wait_for_heading(&browser, "Two-factor sign-in").await;
    let codes = browser
        .find_all(Locator::Css("#recovery-codes li"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    shot(&browser, "mfa-03-recovery-codes").await;
    click(&browser, "a.button.primary[href='/admin']").await;
    wait_for_heading(&browser, "Dashboard").await;

    // Sign out and in again: password, then the code.
    click(&browser, "form.signout button").await;
    wait_for_heading(&browser, "Sign in").await;
    type_into(&browser, "#login", "root").await;
    type_into(&browser, "#password", PASSWORD).await;
    click(&browser, "form.stack button[type=submit]").await;
    wait_for_heading(&browser, "Enter your code").await;
    shot(&browser, "mfa-04-code").await;
    next_step(&app);
    type_into(&browser, "#code", &code_now(&app, &secret)).await;
    click(&browser, "form.stack button[type=submit]").await;
    wait_for_heading(&browser, "Dashboard").await;

    // Eleven minutes on, disabling a user asks who you are first, then completes.
    app.clock.advance(Duration::from_secs(11 * 60));
    browser
        .goto(&app.url(&format!("/admin/users/{mallory_id}/disable")))
        .await
        .unwrap();
    wait_for_heading(&browser, "Disable this account?").await;
    type_into(&browser, "#reason", "browser step-up test").await;
    click(&browser, "form.stack button[type=submit]").await;
    wait_for_heading(&browser, "Confirm it is you").await;
    shot(&browser, "mfa-05-step-up").await;
    assert!(crate::client::user_state(&app, "mallory").0, "not yet");
    type_into(&browser, "#reauth_code", &code_now(&app, &secret)).await;
    click(&browser, "form.stack button[type=submit]").await;
    wait_for_heading(&browser, "mallory").await;
    assert!(browser.source().await.unwrap().contains("Account disabled"));
    assert!(!crate::client::user_state(&app, "mallory").0);
    shot(&browser, "mfa-06-done").await;
    browser.close().await.unwrap();
}
