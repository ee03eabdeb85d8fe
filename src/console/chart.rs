//! The dashboard's chart of security events per hour, drawn as SVG on the server: stacked bars,
//! one per hour of the last 24, one colour (a CSS class, no inline style) per kind of event.
//! Only numbers and fixed labels end up in the markup.

use time::OffsetDateTime;

use crate::audit::Action;

/// The series, in stacking order: (action, CSS class, legend label).
pub const SERIES: [(Action, &str, &str); 4] = [
    (Action::AuthLoginFailed, "s-failed", "Failed logins"),
    (Action::AuthLockout, "s-lockout", "Lockouts"),
    (
        Action::AuthRefreshReuseDetected,
        "s-reuse",
        "Refresh-token reuse",
    ),
    (Action::RateLimitExceeded, "s-rate", "Rate-limited requests"),
];

/// The actions the chart counts (console sign-in failures count as failed logins).
pub fn actions() -> Vec<Action> {
    let mut out: Vec<Action> = SERIES.iter().map(|(a, _, _)| *a).collect();
    out.push(Action::AdminLoginFailed);
    out
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub class: &'static str,
    pub title: String,
}

#[derive(Debug, Clone)]
pub struct Tick {
    pub y: f64,
    /// Where the label's baseline sits (just below the grid line).
    pub text_y: f64,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct Label {
    pub x: f64,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct LegendItem {
    pub class: &'static str,
    pub label: &'static str,
    pub total: i64,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    /// Where the y-axis labels end (right-aligned), and the x-axis labels' baseline.
    pub axis_x: f64,
    pub axis_y: f64,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub labels: Vec<Label>,
    pub legend: Vec<LegendItem>,
    pub empty: bool,
    pub description: String,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 952.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 232.0;
const HOURS: i64 = 24;

/// A round number at least `max` (1, 2 or 5 × a power of ten), so the axis reads well.
fn nice_ceiling(max: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max {
                return m * step;
            }
        }
        step = step.saturating_mul(10);
        if step == i64::MAX {
            return max;
        }
    }
}

/// The chart of `counts` — (hour, action, occurrences) — for the 24 hours ending with the hour
/// that contains `now`.
pub fn build(counts: &[(OffsetDateTime, Action, i64)], now: OffsetDateTime) -> Chart {
    let now = now.to_offset(time::UtcOffset::UTC);
    let this_hour = now
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now);
    let first_hour = this_hour - time::Duration::hours(HOURS - 1);
    // per[hour][series]
    let mut per = vec![[0i64; 4]; HOURS as usize];
    let mut totals = [0i64; 4];
    for (hour, action, n) in counts {
        let action = if *action == Action::AdminLoginFailed {
            Action::AuthLoginFailed
        } else {
            *action
        };
        let Some(series) = SERIES.iter().position(|(a, _, _)| *a == action) else {
            continue;
        };
        let index = (*hour - first_hour).whole_hours();
        if (0..HOURS).contains(&index) {
            per[index as usize][series] += n;
            totals[series] += n;
        }
    }
    let max = per.iter().map(|h| h.iter().sum::<i64>()).max().unwrap_or(0);
    // Four equal steps of a round size: 0, 1, 2, 3, 4 or 0, 50, 100, 150, 200.
    let step = nice_ceiling((max + 3) / 4).max(1);
    let top = step * 4;
    let scale = (BOTTOM - TOP) / top as f64;
    let slot = (RIGHT - LEFT) / HOURS as f64;
    let mut bars = Vec::new();
    for (i, hour) in per.iter().enumerate() {
        let mut y = BOTTOM;
        let start = first_hour + time::Duration::hours(i as i64);
        for (series, (_, class, label)) in SERIES.iter().enumerate() {
            let n = hour[series];
            if n == 0 {
                continue;
            }
            let h = n as f64 * scale;
            y -= h;
            bars.push(Bar {
                x: round(LEFT + slot * i as f64 + slot * 0.15),
                y: round(y),
                w: round(slot * 0.7),
                h: round(h),
                class,
                title: format!("{:02}:00 UTC — {label}: {n}", start.hour()),
            });
        }
    }
    let ticks = (0..=4)
        .map(|k| {
            let y = round(BOTTOM - (BOTTOM - TOP) * f64::from(k) / 4.0);
            Tick {
                y,
                text_y: y + 4.0,
                label: (step * i64::from(k)).to_string(),
            }
        })
        .collect();
    let labels = (0..HOURS)
        .step_by(3)
        .map(|i| Label {
            x: round(LEFT + slot * i as f64 + slot / 2.0),
            text: format!("{:02}h", (first_hour + time::Duration::hours(i)).hour()),
        })
        .collect();
    let legend = SERIES
        .iter()
        .zip(totals)
        .map(|((_, class, label), total)| LegendItem {
            class,
            label,
            total,
        })
        .collect::<Vec<_>>();
    let description = format!(
        "Stacked bars per hour from {:02}:00 UTC: {}.",
        first_hour.hour(),
        SERIES
            .iter()
            .zip(totals)
            .map(|((_, _, label), total)| format!("{label} {total}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Chart {
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right: RIGHT,
        axis_x: LEFT - 6.0,
        axis_y: HEIGHT - 4.0,
        bars,
        ticks,
        labels,
        legend,
        empty: totals.iter().all(|t| *t == 0),
        description,
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn counts_land_in_their_hour_and_stack() {
        let now = datetime!(2026-03-04 10:20 UTC);
        let chart = build(
            &[
                (datetime!(2026-03-04 10:00 UTC), Action::AuthLoginFailed, 6),
                (datetime!(2026-03-04 10:00 UTC), Action::AdminLoginFailed, 2),
                (
                    datetime!(2026-03-04 10:00 UTC),
                    Action::RateLimitExceeded,
                    12,
                ),
                (datetime!(2026-03-03 11:00 UTC), Action::AuthLockout, 1),
                // Outside the 24 hours: ignored.
                (datetime!(2026-03-03 10:00 UTC), Action::AuthLockout, 99),
            ],
            now,
        );
        assert!(!chart.empty);
        let totals: Vec<i64> = chart.legend.iter().map(|l| l.total).collect();
        assert_eq!(totals, vec![8, 1, 0, 12]);
        assert_eq!(chart.bars.len(), 3);
        // The last hour's two bars stack from the baseline up: failed logins below rate limits.
        let failed = &chart.bars[1];
        let rate = &chart.bars[2];
        assert_eq!(failed.class, "s-failed");
        assert_eq!(rate.class, "s-rate");
        assert!((failed.y + failed.h - BOTTOM).abs() < 0.2);
        assert!((rate.y + rate.h - failed.y).abs() < 0.2);
        assert!(rate.h > failed.h);
        // 20 events in the busiest hour: steps of 5 up to 20.
        let labels: Vec<&str> = chart.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, vec!["0", "5", "10", "15", "20"]);
        assert!(failed.title.contains("10:00 UTC — Failed logins: 8"));
        // The first bar is the oldest hour (11:00 yesterday), at the left edge.
        assert_eq!(chart.bars[0].class, "s-lockout");
        assert!(chart.bars[0].x < LEFT + 40.0);
    }

    #[test]
    fn an_empty_day_says_so() {
        let chart = build(&[], datetime!(2026-03-04 10:20 UTC));
        assert!(chart.empty);
        assert!(chart.bars.is_empty());
        assert_eq!(chart.labels.len(), 8);
        let labels: Vec<&str> = chart.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, vec!["0", "1", "2", "3", "4"]);
        assert_eq!(nice_ceiling(4), 5);
        assert_eq!(nice_ceiling(13), 20);
        assert_eq!(nice_ceiling(101), 200);
    }
}
