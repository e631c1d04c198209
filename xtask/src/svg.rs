//! `report.svg`: the report as a bar chart a person can open in a browser,
//! written by hand (std only, STYLE rule 19).
//!
//! One group per bench, one horizontal bar per subject. A bar is the
//! subject's cost relative to green's ([`cost_vs_green`]: its median over
//! green's, or for a rate green's rate over its), drawn from the green
//! reference line at 1 on a log axis: a bar to the right means green is
//! ahead by that factor, to the left the subject is, whatever the unit.
//! The ratios span from about 0.3 (a raw io_uring loop below green's
//! scheduling) to several hundred (a thread per connection against a
//! greenlet), which only a log axis shows side by side. A skipped row shows
//! its reason; a row green has no figure for shows its own figure.
//!
//! ```text
//!                     0.5    1     2     5    10
//! core/spawn_join     |      |     |     |     |
//!             green   |      ◆     |     |     |    1 · 80 ns
//!             tokio   |      |█████████  |     |    2.61× · 209 ns
//!            gevent   |      skipped: python3 not found
//! ```

use std::fmt::Write as _;

use crate::json::fmt_num;
use crate::report::{cost_vs_green, grouped, higher_is_better, Outcome, Report, Row, BASELINE};

/// Canvas width and the plot's horizontal extent, in pixels.
const WIDTH: f64 = 1080.0;
const PLOT_LEFT: f64 = 280.0;
const PLOT_RIGHT: f64 = 820.0;
/// Where the value column starts, right of the plot.
const VALUE_X: f64 = PLOT_RIGHT + 12.0;
/// Heights of a subject's row, of its bar, of a group's heading, and the
/// gap after a group.
const ROW: f64 = 18.0;
const BAR: f64 = 11.0;
const HEADING: f64 = 22.0;
const GAP: f64 = 8.0;
/// Where the first group starts: below the title, the legend and the axis.
const TOP: f64 = 128.0;

const GREEN: &str = "#2a9d4b";
/// Every other group's background, to tell the groups apart.
const SHADE: &str = "#f3f4f6";
/// Peers' colours, given out in the order subjects first appear, so a
/// subject keeps its colour in every group.
const PALETTE: [&str; 8] = [
    "#d97b29", "#3f6fb5", "#8d5bc1", "#c0392b", "#16979c", "#9a8417", "#b5487f", "#6d6d6d",
];

/// The chart of `report` (see the module docs).
pub(crate) fn chart(report: &Report) -> String {
    let rows = grouped(&report.rows);
    let costs: Vec<Option<f64>> = rows.iter().map(|r| cost_vs_green(&rows, r)).collect();
    let axis = LogAxis::covering(costs.iter().flatten().copied());
    let subjects = subject_colours(&rows);

    // Group backgrounds go under the grid, the groups over it.
    let mut shades = String::new();
    let mut body = String::new();
    let mut y = TOP;
    let mut group_start = 0;
    let mut shade = false;
    while group_start < rows.len() {
        let bench = &rows[group_start].bench;
        let group_len = rows[group_start..]
            .iter()
            .take_while(|r| &r.bench == bench)
            .count();
        let group = &rows[group_start..group_start + group_len];
        let height = HEADING + ROW * group_len as f64 + GAP;
        let background = if shade { SHADE } else { "white" };
        let _ = writeln!(
            shades,
            r#"<rect x="0" y="{}" width="{WIDTH}" height="{height}" fill="{background}"/>"#,
            y - 4.0
        );
        shade = !shade;
        let _ = writeln!(
            body,
            r#"<text x="12" y="{}" class="bench">{}</text><text x="{VALUE_X}" y="{}" class="unit">{}</text>"#,
            y + 12.0,
            escape(bench),
            y + 12.0,
            escape(&group_caption(group))
        );
        y += HEADING;
        for (i, r) in group.iter().enumerate() {
            let cost = costs[group_start + i];
            let colour = subjects.colour(&r.subject);
            subject_row(&mut body, &axis, r, cost, colour, background, y);
            y += ROW;
        }
        y += GAP;
        group_start += group_len;
    }
    let plot_bottom = y;

    let height = plot_bottom + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    svg.push_str(
        "<style>\
         .title{font-size:18px;font-weight:bold}\
         .sub{font-size:12px;fill:#333}\
         .legend{font-size:11.5px;fill:#444}\
         .bench{font-size:13px;font-weight:bold;font-family:DejaVu Sans Mono, Menlo, monospace}\
         .unit{font-size:11px;fill:#555}\
         .subject{font-size:12px;text-anchor:end}\
         .value{font-size:11px;fill:#222}\
         .tick{font-size:10.5px;fill:#555;text-anchor:middle}\
         .skip{font-size:11px;fill:#777;font-style:italic;stroke-width:4px;paint-order:stroke}\
         </style>\n",
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    svg.push_str(&shades);
    let subtitle = match &report.header {
        Some(h) => format!(
            "{} · {} · commit {} · {}",
            h.machine.describe(),
            h.date,
            h.commit,
            h.mode()
        ),
        None => "machine, date and commit not recorded (a report from before headers)".to_owned(),
    };
    let _ = writeln!(
        svg,
        r#"<text x="12" y="26" class="title">green vs peers: each subject's cost relative to green</text>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="12" y="46" class="sub">{}</text>"#,
        escape(&subtitle)
    );
    for (i, line) in [
        "Bar = subject's median / green's median (for a rate such as req/s: green's rate / the subject's), drawn from the green line at 1, log scale.",
        "Right of the line green is ahead by that factor; left of it the subject is ahead. The column on the right gives the factor and the subject's median.",
    ]
    .iter()
    .enumerate()
    {
        let _ = writeln!(
            svg,
            r#"<text x="12" y="{}" class="legend">{}</text>"#,
            68.0 + 15.0 * i as f64,
            escape(line)
        );
    }

    // Grid and tick labels above and below the groups, the reference line,
    // then the groups over them (skip reasons mask the lines they cross).
    for tick in axis.ticks() {
        let x = axis.x(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{plot_bottom}" stroke="#d5d8dc" stroke-width="1"/>"##,
            TOP - 10.0
        );
        for ty in [TOP - 14.0, plot_bottom + 14.0] {
            let _ = writeln!(
                svg,
                r#"<text x="{x:.1}" y="{ty}" class="tick">{}</text>"#,
                tick_label(tick)
            );
        }
    }
    let one = axis.x(1.0);
    let _ = writeln!(
        svg,
        r#"<line x1="{one:.1}" y1="{}" x2="{one:.1}" y2="{plot_bottom}" stroke="{GREEN}" stroke-width="2"/>"#,
        TOP - 10.0
    );
    svg.push_str(&body);
    let _ = writeln!(
        svg,
        r#"<text x="{one:.1}" y="{}" class="tick" fill="{GREEN}" font-weight="bold">green = 1</text>"#,
        plot_bottom + 28.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// The unit line of a group: `ns; green 80.2` or `req/s (a rate: bars are
/// green's rate / the subject's)`.
fn group_caption(group: &[Row]) -> String {
    let unit = group
        .iter()
        .find_map(|r| r.figures())
        .map(|f| f.unit.as_str());
    match unit {
        Some(u) if higher_is_better(u) => format!("{u}, higher is better (bar inverted)"),
        Some(u) => format!("{u}, lower is better"),
        None => "no figures".to_owned(),
    }
}

/// One subject's row: label, then a bar, a marker, or a line of text.
fn subject_row(
    out: &mut String,
    axis: &LogAxis,
    r: &Row,
    cost: Option<f64>,
    colour: &str,
    background: &str,
    y: f64,
) {
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" class="subject">{}</text>"#,
        PLOT_LEFT - 10.0,
        y + 10.0,
        escape(&r.subject)
    );
    let median = r
        .figures()
        .map(|f| format!("{} {}", fmt_num(f.median), f.unit));
    match (&r.outcome, cost) {
        (Outcome::Skipped(reason), _) => {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" class="skip" stroke="{background}">skipped: {}</text>"#,
                PLOT_LEFT + 6.0,
                y + 10.0,
                escape(&shorten(reason, 110))
            );
        }
        (Outcome::Measured(_), Some(_)) if r.subject == BASELINE => {
            let (x, mid) = (axis.x(1.0), y + 5.5);
            let _ = writeln!(
                out,
                r#"<path d="M{:.1} {mid:.1} l6 -6 l6 6 l-6 6 z" fill="{GREEN}"/>"#,
                x - 6.0
            );
            value(out, y, &format!("1 · {}", median.unwrap_or_default()));
        }
        (Outcome::Measured(_), Some(c)) => {
            let (a, b) = (axis.x(1.0), axis.x(c));
            let (left, width) = (a.min(b), (a - b).abs().max(1.5));
            let _ = writeln!(
                out,
                r#"<rect x="{left:.1}" y="{:.1}" width="{width:.1}" height="{BAR}" fill="{colour}" rx="1.5"><title>{}: {} ({:.2}× green's cost)</title></rect>"#,
                y,
                escape(&format!("{} {}", r.bench, r.subject)),
                escape(median.as_deref().unwrap_or("")),
                c
            );
            value(
                out,
                y,
                &format!("{} · {}", factor(c), median.unwrap_or_default()),
            );
        }
        (Outcome::Measured(_), None) => {
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" class="skip" stroke="{background}">no green figure to compare with</text>"#,
                PLOT_LEFT + 6.0,
                y + 10.0
            );
            value(out, y, &median.unwrap_or_default());
        }
    }
}

fn value(out: &mut String, y: f64, text: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{VALUE_X}" y="{}" class="value">{}</text>"#,
        y + 10.0,
        escape(text)
    );
}

/// `2.61×`, `0.48×`, `312×`.
fn factor(c: f64) -> String {
    if c >= 100.0 {
        format!("{c:.0}×")
    } else if c >= 10.0 {
        format!("{c:.1}×")
    } else {
        format!("{c:.2}×")
    }
}

/// A log axis from `lo` to `hi` (both on the 1-2-5 sequence) mapped onto
/// the plot's width.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    /// An axis holding every value, 1, and at least 0.5 to 2, with a little
    /// room beyond the extreme bars.
    fn covering(values: impl Iterator<Item = f64>) -> LogAxis {
        let (mut lo, mut hi) = (0.5f64, 2.0f64);
        // Beyond a million either way a bar would only be a line at the
        // plot's edge anyway (its factor is printed beside it); the clamp
        // keeps the 1-2-5 steps and tick exponents far from f64's ends.
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            let v = v.clamp(1e-6, 1e6);
            lo = lo.min(v / 1.25);
            hi = hi.max(v * 1.25);
        }
        LogAxis {
            lo: step_125(lo, false),
            hi: step_125(hi, true),
        }
    }

    /// The x of `v`, clamped to the plot.
    fn x(&self, v: f64) -> f64 {
        let span = (self.hi / self.lo).log10();
        let t = ((v / self.lo).log10() / span).clamp(0.0, 1.0);
        PLOT_LEFT + t * (PLOT_RIGHT - PLOT_LEFT)
    }

    /// Gridline values: 1, 2 and 5 times the powers of ten in range, or only
    /// the powers of ten when the axis spans more than four decades (the
    /// labels would touch).
    fn ticks(&self) -> Vec<f64> {
        let decades = (self.hi / self.lo).log10();
        let mantissas: &[f64] = if decades > 4.0 {
            &[1.0]
        } else {
            &[1.0, 2.0, 5.0]
        };
        let first = self.lo.log10().floor() as i32 - 1;
        let last = self.hi.log10().ceil() as i32 + 1;
        (first..=last)
            .flat_map(|e| mantissas.iter().map(move |m| decade_value(*m, e)))
            .filter(|t| *t >= self.lo * (1.0 - 1e-9) && *t <= self.hi * (1.0 + 1e-9))
            .collect()
    }
}

/// `m` times ten to the `e`, computed so that round values come out as
/// their literals (`5 / 10⁴` is the double nearest 0.0005; `5 × 10⁻⁴`
/// is not always).
fn decade_value(m: f64, e: i32) -> f64 {
    let p = 10f64.powi(e.abs()); // Exact for the exponents a ratio can have.
    if e >= 0 {
        m * p
    } else {
        m / p
    }
}

/// The nearest value of the 1-2-5 sequence at or below `v` (`up`: at or
/// above).
fn step_125(v: f64, up: bool) -> f64 {
    // log10 of an exact power of ten may land either side of the integer,
    // so the decades on both sides are candidates too.
    let e = v.log10().floor() as i32;
    let candidates = (e - 1..=e + 1).flat_map(|e| [1.0, 2.0, 5.0].map(|m| decade_value(m, e)));
    if up {
        candidates
            .filter(|c| *c >= v * (1.0 - 1e-9))
            .fold(f64::INFINITY, f64::min)
    } else {
        candidates
            .filter(|c| *c <= v * (1.0 + 1e-9))
            .fold(0.0, f64::max)
    }
}

/// `0.05`, `0.5`, `1`, `20`, `1000`.
fn tick_label(t: f64) -> String {
    if t >= 1.0 {
        format!("{t:.0}")
    } else {
        // Enough decimals to show the one significant digit.
        let decimals = (-t.log10()).ceil() as usize;
        format!("{t:.decimals$}")
    }
}

/// Colours by subject: green's own, then the palette in order of first
/// appearance.
struct SubjectColours(Vec<String>);

fn subject_colours(rows: &[Row]) -> SubjectColours {
    let mut seen: Vec<String> = Vec::new();
    for r in rows {
        if r.subject != BASELINE && !seen.contains(&r.subject) {
            seen.push(r.subject.clone());
        }
    }
    SubjectColours(seen)
}

impl SubjectColours {
    fn colour(&self, subject: &str) -> &'static str {
        match self.0.iter().position(|s| s == subject) {
            Some(i) => PALETTE[i % PALETTE.len()],
            None => GREEN,
        }
    }
}

/// At most `max` characters, with `…` where text was cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// Text made safe for XML character data and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{tests::header, Figures};

    fn measured(bench: &str, subject: &str, median: f64, unit: &str) -> Row {
        Row {
            bench: bench.into(),
            subject: subject.into(),
            outcome: Outcome::Measured(Figures {
                median,
                min: median,
                max: median,
                unit: unit.into(),
            }),
            note: None,
        }
    }

    #[test]
    fn one_group_per_bench_under_a_title_naming_machine_date_and_commit() {
        let report = Report {
            header: Some(header(None)),
            rows: vec![
                measured("core/spawn_join", "green", 80.0, "ns"),
                measured("core/spawn_join", "tokio", 200.0, "ns"),
                measured("ctx/switch_round_trip", "green", 5.0, "ns"),
                measured("ctx/switch_round_trip", "corosensei", 2.5, "ns"),
                measured("http/hello", "green", 200_000.0, "req/s"),
                measured("http/hello", "tokio", 50_000.0, "req/s"),
                Row {
                    bench: "core/spawn_join".into(),
                    subject: "gevent".into(),
                    outcome: Outcome::Skipped("python3 <3.8> & no venv".into()),
                    note: None,
                },
                measured("loop/nop", "io-uring-raw", 30.0, "ns"),
            ],
        };
        let svg = chart(&report);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        for bench in [
            "core/spawn_join",
            "ctx/switch_round_trip",
            "http/hello",
            "loop/nop",
        ] {
            assert_eq!(
                svg.matches(&format!(r#"class="bench">{bench}</text>"#))
                    .count(),
                1,
                "{bench}"
            );
        }
        assert!(svg.contains("Test CPU @ 3.0GHz, 2 cores"));
        assert!(svg.contains("2025-01-31T12:00:00Z"));
        assert!(svg.contains("commit abc1234-dirty"));
        assert!(svg.contains("skipped: python3 &lt;3.8&gt; &amp; no venv"));
        assert!(svg.contains("no green figure to compare with"));
        // Times: 200 / 80; a rate inverted: 200k / 50k; a peer ahead: 0.5.
        assert!(svg.contains(">2.50× · 200 ns<"), "{svg}");
        assert!(svg.contains(">4.00× · 50000 req/s<"), "{svg}");
        assert!(svg.contains(">0.50× · 2.50 ns<"), "{svg}");
        // Three bars (green is a marker), each starting or ending at 1.
        assert_eq!(
            svg.matches("<rect x=").count() - svg.matches(r#"<rect x="0""#).count(),
            3
        );
        // Bars right of the line for green ahead, left for the peer ahead.
        let axis = LogAxis::covering([2.5, 4.0, 0.5].into_iter());
        let one = axis.x(1.0);
        assert!(svg.contains(&format!(r#"<rect x="{one:.1}""#)));
        assert!(svg.contains(&format!(r#"<rect x="{:.1}""#, axis.x(0.5))));
    }

    #[test]
    fn extreme_ratios_make_a_chart_not_a_panic() {
        // Ratios at the ends of f64 (a bench that measured nearly nothing,
        // or something absurd): clamped to the plot, never a panic or NaN.
        for (green, other) in [(1e300, 1e-10), (1e-10, 1e300), (f64::MIN_POSITIVE, 1e308)] {
            let report = Report {
                header: None,
                rows: vec![
                    measured("x/y", BASELINE, green, "ns"),
                    measured("x/y", "peer", other, "ns"),
                    measured("x/r", BASELINE, green, "req/s"),
                    measured("x/r", "peer", other, "req/s"),
                ],
            };
            let svg = chart(&report);
            assert!(
                !svg.contains("NaN") && !svg.contains("inf"),
                "{green} vs {other}"
            );
        }
    }

    #[test]
    fn log_axis_covers_the_data_on_round_values() {
        let axis = LogAxis::covering([0.3, 1.0, 150.0].into_iter());
        assert_eq!(axis, LogAxis { lo: 0.2, hi: 200.0 });
        assert_eq!(axis.x(0.2), PLOT_LEFT);
        assert_eq!(axis.x(200.0), PLOT_RIGHT);
        let mid = axis.x(1.0);
        assert!(mid > PLOT_LEFT && mid < PLOT_RIGHT);
        assert_eq!(
            axis.ticks(),
            [0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
        );
        assert_eq!(
            LogAxis::covering(std::iter::empty()),
            LogAxis { lo: 0.5, hi: 2.0 }
        );
        let wide = LogAxis::covering([0.001, 1000.0].into_iter());
        assert_eq!(
            wide,
            LogAxis {
                lo: 0.0005,
                hi: 2000.0
            }
        );
        assert_eq!(wide.ticks(), [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(tick_label(0.05), "0.05");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(20.0), "20");
    }
}
