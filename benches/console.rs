//! Issue 7's benchmark: the console's audit page with 1 000 000 audit rows — the first page and a
//! page deep in the past must cost the same (keyset pagination) — and the CSV export's rate.
//!
//! `cargo bench --bench console` (needs a Postgres superuser URL in TEST_DATABASE_URL, as
//! `make test` writes to target/rampart-db.env; a throwaway database is created and dropped).
//! Prints a table; not a criterion bench (each figure is a full HTTP round trip on loopback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

const ROWS: i64 = 1_000_000;
const SAMPLES: usize = 40;

/// 1 000 000 rows over the last 1 000 000 seconds: five actions, 256 networks, 1000 actors.
/// Hashes are placeholders (rendering never verifies; the chain is not under test here).
fn seed(db: &support::TestDb) -> Duration {
    let start = Instant::now();
    let mut conn = db.connect();
    conn.batch_execute(&format!(
        "INSERT INTO audit_logs (id, occurred_at, actor_type, actor_id, action, outcome, \
            target_type, target_id, ip, user_agent, request_id, metadata, prev_hash, hash) \
         SELECT g, now() - make_interval(secs => {ROWS} - g), 'user', \
            '00000000-0000-7000-8000-' || lpad((g % 1000)::text, 12, '0'), \
            (ARRAY['auth.login.failed','auth.login.succeeded','api_key.created', \
                   'session.revoked','rate_limit.exceeded'])[1 + g % 5], \
            (ARRAY['failure','success','success','success','denied'])[1 + g % 5], \
            'user', '00000000-0000-7000-8000-' || lpad(((g + 7) % 1000)::text, 12, '0'), \
            ('10.' || (g % 256) || '.' || ((g / 256) % 256) || '.1')::inet, \
            'Mozilla/5.0 (bench)', 'req-' || g, jsonb_build_object('i', g, 'note', 'seeded'), \
            decode(repeat('00', 32), 'hex'), sha256(g::text::bytea) \
         FROM generate_series(1, {ROWS}) g; \
         ANALYZE audit_logs;"
    ))
    .unwrap();
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, p95) in ms of `SAMPLES` sequential GETs of `path`, each a 200.
async fn timed(console: &mut support_console::Console<'_>, path: &str) -> (f64, f64) {
    for _ in 0..3 {
        console.get(path).await; // warm
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let res = console.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        res.bytes().await.unwrap();
        samples.push(ms(start.elapsed()));
    }
    samples.sort_by(f64::total_cmp);
    (samples[SAMPLES / 2], samples[SAMPLES * 95 / 100])
}

#[path = "../tests/console/client.rs"]
#[allow(dead_code)]
mod support_console;

fn main() {
    actix_web::rt::System::new().block_on(async {
        let app = support::app()
            .env("ADMIN_EMAILS", "root@example.org")
            .env("LOG_LEVEL", "error")
            .spawn()
            .await;
        let seeded = seed(app.db.as_ref().unwrap());
        app.register("root").await;
        let mut console = support_console::Console::new(&app);
        console.sign_in("root").await;

        println!(
            "## console: audit log with {ROWS} rows (seeded in {:.1} s)\n",
            seeded.as_secs_f64()
        );
        println!("| page | median ms | p95 ms |");
        println!("| --- | --- | --- |");
        let deep = rampart::http::pagination::id_cursor(1_000);
        let middle = rampart::http::pagination::id_cursor(ROWS / 2);
        for (label, path) in [
            ("first page (newest 50)", "/admin/audit".to_string()),
            (
                "middle (before row 500 000)",
                format!("/admin/audit?before={middle}"),
            ),
            (
                "deep (before row 1 000)",
                format!("/admin/audit?before={deep}"),
            ),
            (
                "filtered first page (action=auth.login.failed)",
                "/admin/audit?action=auth.login.failed".to_string(),
            ),
            (
                "filtered deep page (action=auth.login.failed, before row 1 000)",
                format!("/admin/audit?action=auth.login.failed&before={deep}"),
            ),
            (
                "filtered by network (ip=10.7.0.0/16), first page",
                "/admin/audit?ip=10.7.0.0%2F16".to_string(),
            ),
            ("one row's detail page", "/admin/audit/4242".to_string()),
        ] {
            let (median, p95) = timed(&mut console, &path).await;
            println!("| {label} | {median:.2} | {p95:.2} |");
        }

        // The whole log as CSV, streamed.
        let start = Instant::now();
        let res = console.get("/admin/audit/export.csv").await;
        assert_eq!(res.status(), 200);
        let body = res.bytes().await.unwrap();
        let took = start.elapsed();
        let lines = body.iter().filter(|b| **b == b'\n').count() - 1;
        assert!(lines as i64 >= ROWS, "every row exported ({lines})");
        println!(
            "\nCSV export: {lines} rows, {:.1} MiB in {:.1} s = {:.0} rows/s",
            body.len() as f64 / (1024.0 * 1024.0),
            took.as_secs_f64(),
            lines as f64 / took.as_secs_f64()
        );
    });
}
