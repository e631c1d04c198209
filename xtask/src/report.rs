//! The report of `cargo xtask bench`: the rows the benches and the peers
//! wrote, the header that says where and when they were measured, and the
//! forms a person reads them in (the terminal table, `report.md`,
//! `report.json`, the comparison with an earlier report; the chart is
//! `svg.rs`).
//!
//! # Rows
//!
//! Each line of `results.jsonl` is one (bench, subject) pair, either
//! measured, `{"bench","subject","median","min","max","unit","note"}`, or
//! skipped, `{"bench","subject","skipped":"reason"}` (a peer whose runtime
//! could not be installed, a kernel without the feature). Rows are shown
//! grouped by bench, in the order the benches first appeared, green first
//! within each group.
//!
//! # Ratios
//!
//! The `ratio` column is the subject's median divided by green's for the
//! same bench, so green is `1.00`. For units where lower is better (`ns`,
//! `bytes`, `s`) a ratio above 1 means green is ahead; for rates (`req/s`,
//! any unit ending in `/s`) one below 1 does. A bench green did not run, or
//! ran in another unit, has ratio `-`.
//!
//! # report.json
//!
//! An object: `machine` (`cpu`, `cores`, `kernel`, `memory_bytes`), `date`
//! (UTC, ISO 8601), `commit` (short hash, `-dirty` when the work tree
//! differs), `mode` (`quick`, `filter`) and `rows`, each row as in
//! `results.jsonl`. Reports written before the header existed are a bare
//! array of rows; [`Report::from_json`] reads both, for `--compare`.

use std::fmt::Write as _;

use crate::host::Machine;
use crate::json::{fmt_num, json_number, json_string};
use crate::json_value::{self, Value};

/// The subject every ratio is relative to.
pub(crate) const BASELINE: &str = "green";

/// A change worse than this, in percent, is marked as a regression by
/// `--compare` (wall time on a shared 2-core machine moves by a few percent
/// from run to run; callgrind counts are the exact figure).
pub(crate) const REGRESSION_PERCENT: f64 = 10.0;

/// One (bench, subject) pair of a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) bench: String,
    pub(crate) subject: String,
    pub(crate) outcome: Outcome,
    pub(crate) note: Option<String>,
}

/// What a row holds: figures, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Measured(Figures),
    Skipped(String),
}

/// The median, min and max of a measured row, in `unit`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figures {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) unit: String,
}

impl Row {
    /// The figures, unless the row was skipped.
    pub(crate) fn figures(&self) -> Option<&Figures> {
        match &self.outcome {
            Outcome::Measured(f) => Some(f),
            Outcome::Skipped(_) => None,
        }
    }
}

/// Where, when and how a report was measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub(crate) machine: Machine,
    /// UTC, ISO 8601.
    pub(crate) date: String,
    /// Short hash, `-dirty` when the work tree differed.
    pub(crate) commit: String,
    pub(crate) quick: bool,
    pub(crate) filter: Option<String>,
}

impl Header {
    /// `full run` or `quick run`, with the filter if there was one.
    pub(crate) fn mode(&self) -> String {
        let mut mode = if self.quick { "quick run" } else { "full run" }.to_owned();
        if let Some(f) = &self.filter {
            let _ = write!(mode, ", filter `{f}`");
        }
        mode
    }

    /// One line: machine, date, commit and mode.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}; {}; commit {}; {}",
            self.machine.describe(),
            self.date,
            self.commit,
            self.mode()
        )
    }
}

/// A run: its header (absent in reports written before headers existed)
/// and its rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub(crate) header: Option<Header>,
    pub(crate) rows: Vec<Row>,
}

// ===== reading =====

/// Parses one line of `results.jsonl` into a [`Row`].
pub(crate) fn parse_row(line: &str) -> Result<Row, String> {
    row_from_value(&json_value::parse(line)?)
}

fn row_from_value(v: &Value) -> Result<Row, String> {
    if !matches!(v, Value::Object(_)) {
        return Err("a row must be a JSON object".to_owned());
    }
    let string = |key: &str| match v.get(key) {
        Some(Value::Str(s)) => Ok(s.clone()),
        _ => Err(format!("field `{key}` missing or not a string")),
    };
    // JSON has no NaN; the writers put `null` for a figure that is not a
    // number (a division by a zero count).
    let number = |key: &str| match v.get(key) {
        Some(Value::Num(n)) => Ok(*n),
        Some(Value::Null) => Ok(f64::NAN),
        _ => Err(format!("field `{key}` missing or not a number")),
    };
    let note = match v.get("note") {
        Some(Value::Str(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(other) => return Err(format!("field `note` is not a string: {other:?}")),
    };
    let outcome = match v.get("skipped") {
        Some(Value::Str(reason)) => Outcome::Skipped(reason.clone()),
        Some(other) => {
            return Err(format!(
                "field `skipped` must be a string saying why: {other:?}"
            ))
        }
        None => Outcome::Measured(Figures {
            median: number("median")?,
            min: number("min")?,
            max: number("max")?,
            unit: string("unit")?,
        }),
    };
    Ok(Row {
        bench: string("bench")?,
        subject: string("subject")?,
        outcome,
        note,
    })
}

/// The rows of a `results.jsonl` text; an error names the line.
pub(crate) fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| parse_row(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

impl Report {
    /// Reads a `report.json`: the object with a header, or the bare array
    /// of rows that reports were before.
    pub(crate) fn from_json(text: &str) -> Result<Report, String> {
        let doc = json_value::parse(text)?;
        let (header, rows) = match &doc {
            Value::Array(rows) => (None, rows.as_slice()),
            Value::Object(_) => {
                let rows = doc
                    .get("rows")
                    .and_then(Value::as_array)
                    .ok_or("no `rows` array")?;
                (Some(header_from_value(&doc)), rows)
            }
            _ => return Err("expected an object with `rows`, or an array of rows".to_owned()),
        };
        let rows = rows
            .iter()
            .enumerate()
            .map(|(i, r)| row_from_value(r).map_err(|e| format!("row {}: {e}", i + 1)))
            .collect::<Result<_, _>>()?;
        Ok(Report { header, rows })
    }

    /// `report.json` (see the module docs).
    pub(crate) fn to_json(&self) -> String {
        let mut out = String::from("{\n");
        if let Some(h) = &self.header {
            let m = &h.machine;
            let _ = writeln!(
                out,
                "  \"machine\": {{\"cpu\": {}, \"cores\": {}, \"kernel\": {}, \"memory_bytes\": {}}},",
                json_string(&m.cpu),
                m.cores,
                json_string(&m.kernel),
                m.memory_bytes
            );
            let _ = writeln!(out, "  \"date\": {},", json_string(&h.date));
            let _ = writeln!(out, "  \"commit\": {},", json_string(&h.commit));
            let filter = h.filter.as_deref().map_or("null".to_owned(), json_string);
            let _ = writeln!(
                out,
                "  \"mode\": {{\"quick\": {}, \"filter\": {filter}}},",
                h.quick
            );
        }
        out.push_str("  \"rows\": [\n");
        for (i, r) in self.rows.iter().enumerate() {
            out.push_str("    ");
            out.push_str(&row_json(r));
            out.push_str(if i + 1 < self.rows.len() { ",\n" } else { "\n" });
        }
        out.push_str("  ]\n}\n");
        out
    }
}

/// The header of a report object; a field it lacks reads as unknown.
fn header_from_value(doc: &Value) -> Header {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("unknown").to_owned();
    let machine = doc.get("machine");
    let field = |key: &str| machine.and_then(|m| m.get(key));
    let mode = doc.get("mode");
    Header {
        machine: Machine {
            cpu: text(field("cpu")),
            cores: field("cores").and_then(Value::as_f64).unwrap_or(0.0) as u64,
            kernel: text(field("kernel")),
            memory_bytes: field("memory_bytes").and_then(Value::as_f64).unwrap_or(0.0) as u64,
        },
        date: text(doc.get("date")),
        commit: text(doc.get("commit")),
        quick: mode
            .and_then(|m| m.get("quick"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        filter: mode
            .and_then(|m| m.get("filter"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// One row as a JSON object on one line, the form the benches write.
pub(crate) fn row_json(r: &Row) -> String {
    let mut out = format!(
        "{{\"bench\": {}, \"subject\": {}",
        json_string(&r.bench),
        json_string(&r.subject)
    );
    match &r.outcome {
        Outcome::Measured(f) => {
            let _ = write!(
                out,
                ", \"median\": {}, \"min\": {}, \"max\": {}, \"unit\": {}",
                json_number(f.median),
                json_number(f.min),
                json_number(f.max),
                json_string(&f.unit)
            );
        }
        Outcome::Skipped(reason) => {
            let _ = write!(out, ", \"skipped\": {}", json_string(reason));
        }
    }
    if let Some(note) = &r.note {
        let _ = write!(out, ", \"note\": {}", json_string(note));
    }
    out.push('}');
    out
}

// ===== ratios =====

/// Rows grouped by bench, benches in the order they first appear, green
/// first within each group and the other subjects in the order they came
/// (the peers outside cargo run last but belong beside their bench).
pub(crate) fn grouped(rows: &[Row]) -> Vec<Row> {
    let mut benches: Vec<&str> = Vec::new();
    for r in rows {
        if !benches.contains(&r.bench.as_str()) {
            benches.push(&r.bench);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for bench in benches {
        let group = rows.iter().filter(|r| r.bench == bench);
        out.extend(group.clone().filter(|r| r.subject == BASELINE).cloned());
        out.extend(group.filter(|r| r.subject != BASELINE).cloned());
    }
    out
}

/// Whether a larger figure in `unit` is better (a rate such as `req/s`).
pub(crate) fn higher_is_better(unit: &str) -> bool {
    unit.ends_with("/s")
}

/// green's figures for `bench`, if green measured it.
fn baseline<'r>(rows: &'r [Row], bench: &str) -> Option<&'r Figures> {
    rows.iter()
        .find(|r| r.bench == bench && r.subject == BASELINE)
        .and_then(Row::figures)
}

/// `row`'s median / green's median for the same bench, when both were
/// measured in the same unit and the division means something.
pub(crate) fn ratio(rows: &[Row], row: &Row) -> Option<f64> {
    let f = row.figures()?;
    let base = baseline(rows, &row.bench)?;
    let usable = |v: f64| v.is_finite() && v > 0.0;
    // Usable medians far apart can still divide to 0 or infinity.
    (base.unit == f.unit && usable(base.median) && usable(f.median))
        .then(|| f.median / base.median)
        .filter(|r| usable(*r) && usable(1.0 / r))
}

/// How many times green's cost the subject's is: [`ratio`] for units where
/// lower is better, its inverse for rates. Above 1, green is ahead by that
/// factor; below 1, the subject is. The chart draws this, so that every
/// bar reads the same way whatever the unit.
pub(crate) fn cost_vs_green(rows: &[Row], row: &Row) -> Option<f64> {
    let r = ratio(rows, row)?;
    let unit = &row.figures()?.unit;
    Some(if higher_is_better(unit) { 1.0 / r } else { r })
}

// ===== terminal table and report.md =====

/// A column of an aligned table: its header and whether it aligns right.
type Column<'a> = (&'a str, bool);

/// Lays out `rows` under `columns`. A row with fewer cells than there are
/// columns ends in free text (`skipped: reason`) that is printed as it is
/// and does not widen the column it starts in.
fn aligned(columns: &[Column<'_>], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.len()).collect();
    for row in rows {
        let counted = if row.len() < columns.len() {
            row.len().saturating_sub(1)
        } else {
            row.len()
        };
        for (w, cell) in widths.iter_mut().zip(&row[..counted]) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String], full: bool| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let (_, right) = columns[i];
            let w = widths[i];
            if !full && i + 1 == cells.len() {
                text.push_str(cell);
            } else if right {
                let _ = write!(text, "{cell:>w$}");
            } else {
                let _ = write!(text, "{cell:<w$}");
            }
            text.push_str("  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    let headers: Vec<String> = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
    line(&headers, true);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, true);
    for row in rows {
        line(row, row.len() >= columns.len());
    }
    out
}

/// The table's cells for one row: six for a measured row, three (the last
/// free text) for a skipped one.
fn table_cells(rows: &[Row], r: &Row) -> Vec<String> {
    let mut cells = vec![r.bench.clone(), r.subject.clone()];
    match &r.outcome {
        Outcome::Measured(f) => cells.extend([
            fmt_num(f.median),
            format!("{}-{}", fmt_num(f.min), fmt_num(f.max)),
            f.unit.clone(),
            ratio(rows, r).map_or("-".to_owned(), |x| format!("{x:.2}")),
        ]),
        Outcome::Skipped(reason) => cells.push(format!("skipped: {reason}")),
    }
    cells
}

const TABLE_COLUMNS: [Column<'static>; 6] = [
    ("benchmark", false),
    ("subject", false),
    ("median", true),
    ("min-max", true),
    ("unit", false),
    ("ratio", true),
];

const RATIO_LEGEND: &str =
    "ratio = subject median / green median for the same bench (green = 1.00, \
     - where green has no figure); for ns, bytes and s above 1 means green is ahead, \
     for req/s below 1 does.";

/// The table printed on the terminal, then the notes.
pub(crate) fn report_table(report: &Report) -> String {
    let rows = grouped(&report.rows);
    let cells: Vec<Vec<String>> = rows.iter().map(|r| table_cells(&rows, r)).collect();
    let mut out = String::new();
    if let Some(h) = &report.header {
        let _ = writeln!(out, "{}\n", h.describe());
    }
    out.push_str(&aligned(&TABLE_COLUMNS, &cells));
    let notes: Vec<&Row> = rows.iter().filter(|r| r.note.is_some()).collect();
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for r in notes {
            let _ = writeln!(
                out,
                "  {} ({}): {}",
                r.bench,
                r.subject,
                r.note.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(out, "\n{RATIO_LEGEND}");
    out
}

/// `report.md`: the header, the chart, and the table with a note column.
pub(crate) fn report_md(report: &Report) -> String {
    let rows = grouped(&report.rows);
    let mut out = String::from("# green benchmarks\n\n");
    if let Some(h) = &report.header {
        let _ = writeln!(
            out,
            "Measured on {} on {}, commit `{}`, {}.\n",
            h.machine.describe(),
            h.date,
            h.commit,
            h.mode()
        );
    }
    out.push_str("Written by `cargo xtask bench`.\n\n");
    out.push_str("![Each subject's cost relative to green, per bench](report.svg)\n\n");
    out.push_str(
        "`ratio` = subject median / green median for the same bench (green = 1.00, `-` where \
         green has no figure); for `ns`, `bytes` and `s` above 1 means green is ahead, for \
         `req/s` below 1 does. The chart draws every ratio the same way round: for a rate it \
         shows green's rate / the subject's.\n\n",
    );
    out.push_str("| benchmark | subject | median | min-max | unit | ratio | note |\n");
    out.push_str("| --- | --- | ---: | ---: | --- | ---: | --- |\n");
    let md = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for r in &rows {
        let c = table_cells(&rows, r);
        let note = md(r.note.as_deref().unwrap_or(""));
        match &r.outcome {
            Outcome::Measured(_) => {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} | {} | {note} |",
                    c[0], c[1], c[2], c[3], c[4], c[5]
                );
            }
            Outcome::Skipped(_) => {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | | | - | {note} |",
                    c[0],
                    c[1],
                    md(&c[2])
                );
            }
        }
    }
    out
}

// ===== --compare =====

/// The change from `old` to `new` for every (bench, subject) either has:
/// old and new median, the change in percent, and `REGRESSION` where the
/// figure got worse by more than [`REGRESSION_PERCENT`] (a larger time or
/// size, a smaller rate). Rows of `old` outside the new run's filter are
/// left out, so comparing a filtered run with a full report lists only
/// what was run.
pub(crate) fn compare(old: &Report, old_name: &str, new: &Report) -> String {
    let filter = new.header.as_ref().and_then(|h| h.filter.as_deref());
    let in_scope = |r: &&Row| filter.is_none_or(|f| r.bench.contains(f));
    let old_rows: Vec<&Row> = old.rows.iter().filter(in_scope).collect();
    let find = |rows: &[&Row], r: &Row| -> Option<usize> {
        rows.iter()
            .position(|o| o.bench == r.bench && o.subject == r.subject)
    };

    let mut out = format!("change from {old_name}");
    match &old.header {
        Some(h) => {
            let _ = write!(out, " ({})", h.describe());
        }
        None => out.push_str(" (an older report without a header)"),
    }
    out.push_str(":\n\n");

    let mut cells = Vec::new();
    let mut regressions = Vec::new();
    let mut only_new = Vec::new();
    for r in grouped(&new.rows) {
        let Some(i) = find(&old_rows, &r) else {
            only_new.push(format!("{} ({})", r.bench, r.subject));
            continue;
        };
        let o = old_rows[i];
        let show = |row: &Row| {
            row.figures()
                .map_or("skipped".to_owned(), |f| fmt_num(f.median))
        };
        let (change, marker) = match (o.figures(), r.figures()) {
            (Some(of), Some(nf)) if of.unit != nf.unit => (
                "-".to_owned(),
                format!("unit changed ({} -> {})", of.unit, nf.unit),
            ),
            (Some(of), Some(nf))
                if of.median.is_finite() && of.median > 0.0 && nf.median.is_finite() =>
            {
                let pct = (nf.median - of.median) / of.median * 100.0;
                let worse_by = if higher_is_better(&nf.unit) {
                    -pct
                } else {
                    pct
                };
                let marker = if worse_by > REGRESSION_PERCENT {
                    regressions.push(format!("{} ({}) {pct:+.1}%", r.bench, r.subject));
                    "<< REGRESSION".to_owned()
                } else if worse_by < -REGRESSION_PERCENT {
                    "better".to_owned()
                } else {
                    String::new()
                };
                (format!("{pct:+.1}%"), marker)
            }
            _ => ("-".to_owned(), String::new()),
        };
        let unit = r.figures().or(o.figures()).map_or("", |f| f.unit.as_str());
        cells.push(vec![
            r.bench.clone(),
            r.subject.clone(),
            show(o),
            show(&r),
            unit.to_owned(),
            change,
            marker,
        ]);
    }
    let only_old: Vec<String> = old_rows
        .iter()
        .filter(|o| {
            !new.rows
                .iter()
                .any(|r| r.bench == o.bench && r.subject == o.subject)
        })
        .map(|o| format!("{} ({})", o.bench, o.subject))
        .collect();

    const COLUMNS: [Column<'static>; 7] = [
        ("benchmark", false),
        ("subject", false),
        ("old", true),
        ("new", true),
        ("unit", false),
        ("change", true),
        ("", false),
    ];
    out.push_str(&aligned(&COLUMNS, &cells));
    for (label, list) in [
        ("only in the old report", &only_old),
        ("only in this run", &only_new),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "\n{label} ({}):\n  {}", list.len(), list.join("\n  "));
        }
    }
    if regressions.is_empty() {
        let _ = writeln!(out, "\nno regression beyond {REGRESSION_PERCENT}%");
    } else {
        let _ = writeln!(
            out,
            "\n{} REGRESSION(S) beyond {REGRESSION_PERCENT}% (worse = larger time or size, smaller rate):\n  {}",
            regressions.len(),
            regressions.join("\n  ")
        );
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn measured(bench: &str, subject: &str, median: f64, unit: &str) -> Row {
        Row {
            bench: bench.into(),
            subject: subject.into(),
            outcome: Outcome::Measured(Figures {
                median,
                min: median * 0.9,
                max: median * 1.2,
                unit: unit.into(),
            }),
            note: None,
        }
    }

    fn skipped(bench: &str, subject: &str, reason: &str) -> Row {
        Row {
            bench: bench.into(),
            subject: subject.into(),
            outcome: Outcome::Skipped(reason.into()),
            note: None,
        }
    }

    pub(crate) fn header(filter: Option<&str>) -> Header {
        Header {
            machine: Machine {
                cpu: "Test CPU @ 3.0GHz".into(),
                cores: 2,
                kernel: "6.1.0-test".into(),
                memory_bytes: 8 << 30,
            },
            date: "2025-01-31T12:00:00Z".into(),
            commit: "abc1234-dirty".into(),
            quick: true,
            filter: filter.map(str::to_owned),
        }
    }

    #[test]
    fn rows_round_trip_through_json() {
        let line = r#"{"bench":"ctx/switch_round_trip","subject":"green","median":5.25,"min":4.5,"max":1e1,"unit":"ns","note":"fast \"switch\"\n\u00e9"}"#;
        let r = parse_row(line).unwrap();
        assert_eq!(r.bench, "ctx/switch_round_trip");
        let f = r.figures().unwrap();
        assert_eq!((f.median, f.max), (5.25, 10.0));
        assert_eq!(r.note.as_deref(), Some("fast \"switch\"\n\u{e9}"));
        assert_eq!(parse_row(&row_json(&r)).unwrap(), r);
        let no_note =
            r#"{"bench":"x","subject":"y","median":1,"min":1,"max":1,"unit":"ns","note":null}"#;
        assert!(parse_row(no_note).unwrap().note.is_none());
        assert!(parse_row(r#"{"bench":"x""#).is_err());
        assert!(parse_row(r#"{"bench":"x","subject":"y","median":1}"#).is_err());
    }

    #[test]
    fn skip_rows_parse_and_show_their_reason() {
        let line = r#"{"bench":"core/spawn_join","subject":"gevent","skipped":"python3 not found; install python3-venv"}"#;
        let r = parse_row(line).unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Skipped("python3 not found; install python3-venv".into())
        );
        assert_eq!(parse_row(&row_json(&r)).unwrap(), r);
        assert!(parse_row(r#"{"bench":"b","subject":"s","skipped":true}"#).is_err());

        let text = format!(
            "{}\n\n{line}\n",
            r#"{"bench":"core/spawn_join","subject":"green","median":80,"min":70,"max":90,"unit":"ns"}"#
        );
        let rows = parse_rows(&text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(ratio(&rows, &rows[1]), None);
        let report = Report { header: None, rows };
        let table = report_table(&report);
        let skip_line = table.lines().find(|l| l.contains("gevent")).unwrap();
        assert!(
            skip_line.ends_with("skipped: python3 not found; install python3-venv"),
            "{skip_line}"
        );
        // The long reason does not widen the median column.
        let green_line = table.lines().find(|l| l.contains(" green ")).unwrap();
        assert!(green_line.len() < skip_line.len(), "{table}");
        assert!(report_md(&report).contains(
            "| `core/spawn_join` | gevent | skipped: python3 not found; install python3-venv | | | - |"
        ));
        assert!(report
            .to_json()
            .contains(r#""skipped": "python3 not found"#));
        let e = parse_rows("{}\n{\"bench\":1}").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
    }

    #[test]
    fn ratio_is_relative_to_green_and_dashed_without_it() {
        let rows = vec![
            measured("ctx/switch_round_trip", "corosensei", 2.5, "ns"),
            measured("ctx/switch_round_trip", "green", 5.0, "ns"),
            measured("ctx/idle_rss", "other", 7.0, "bytes"),
            skipped("ctx/other", "green", "no io_uring"),
            measured("ctx/other", "tokio", 3.0, "ns"),
            measured("http/hello", "green", 200_000.0, "req/s"),
            measured("http/hello", "tokio", 100_000.0, "req/s"),
        ];
        assert_eq!(ratio(&rows, &rows[1]), Some(1.0));
        assert_eq!(ratio(&rows, &rows[0]), Some(0.5));
        assert_eq!(ratio(&rows, &rows[2]), None);
        assert_eq!(ratio(&rows, &rows[4]), None);
        assert_eq!(ratio(&rows, &rows[6]), Some(0.5));
        // The chart's measure reads the same way for times and rates.
        assert_eq!(cost_vs_green(&rows, &rows[0]), Some(0.5));
        assert_eq!(cost_vs_green(&rows, &rows[6]), Some(2.0));

        let g = grouped(&rows);
        let order: Vec<(&str, &str)> = g
            .iter()
            .map(|r| (r.bench.as_str(), r.subject.as_str()))
            .collect();
        assert_eq!(
            order[..2],
            [
                ("ctx/switch_round_trip", "green"),
                ("ctx/switch_round_trip", "corosensei")
            ]
        );
        let table = report_table(&Report {
            header: None,
            rows: rows.clone(),
        });
        assert!(table.starts_with("benchmark"));
        let tokio = table
            .lines()
            .find(|l| l.starts_with("ctx/other") && l.contains("tokio"))
            .unwrap();
        assert!(tokio.trim_end().ends_with('-'), "{tokio}");
        assert!(report_md(&Report { header: None, rows })
            .contains("| `ctx/switch_round_trip` | corosensei | 2.50 |"));
    }

    #[test]
    fn report_json_carries_the_header_and_reads_back() {
        let report = Report {
            header: Some(header(Some("core/"))),
            rows: vec![
                measured("core/spawn_join", "green", 80.0, "ns"),
                skipped("core/spawn_join", "go", "go not installed"),
            ],
        };
        let json = report.to_json();
        let doc = json_value::parse(&json).unwrap();
        let machine = doc.get("machine").unwrap();
        assert_eq!(
            machine.get("cpu").and_then(Value::as_str),
            Some("Test CPU @ 3.0GHz")
        );
        assert_eq!(machine.get("cores").and_then(Value::as_f64), Some(2.0));
        assert_eq!(
            machine.get("kernel").and_then(Value::as_str),
            Some("6.1.0-test")
        );
        assert_eq!(
            doc.get("date").and_then(Value::as_str),
            Some("2025-01-31T12:00:00Z")
        );
        assert_eq!(
            doc.get("commit").and_then(Value::as_str),
            Some("abc1234-dirty")
        );
        let mode = doc.get("mode").unwrap();
        assert_eq!(mode.get("quick").and_then(Value::as_bool), Some(true));
        assert_eq!(mode.get("filter").and_then(Value::as_str), Some("core/"));
        assert_eq!(Report::from_json(&json).unwrap(), report);

        let unfiltered = Report {
            header: Some(header(None)),
            rows: vec![],
        };
        let back = Report::from_json(&unfiltered.to_json()).unwrap();
        assert_eq!(back, unfiltered);
        let h = report.header.as_ref().unwrap();
        assert_eq!(
            h.describe(),
            "Test CPU @ 3.0GHz, 2 cores, 8.0 GiB, Linux 6.1.0-test; 2025-01-31T12:00:00Z; \
             commit abc1234-dirty; quick run, filter `core/`"
        );
        assert!(report_md(&report).contains("commit `abc1234-dirty`"));
        assert!(report_table(&report).starts_with("Test CPU"));
    }

    #[test]
    fn old_reports_without_a_header_still_read() {
        let old = r#"[
  {"bench": "ctx/switch_round_trip", "subject": "green", "median": 5.2, "min": 5, "max": 6, "unit": "ns"},
  {"bench": "ctx/switch_round_trip", "subject": "corosensei", "median": 4, "min": 3.5, "max": 4.5, "unit": "ns", "note": "peer"}
]
"#;
        let report = Report::from_json(old).unwrap();
        assert_eq!(report.header, None);
        assert_eq!(report.rows.len(), 2);
        assert_eq!(report.rows[1].note.as_deref(), Some("peer"));
        assert_eq!(report.rows[0].figures().unwrap().median, 5.2);
        assert!(Report::from_json("{\"date\": \"x\"}").is_err());
        assert!(Report::from_json("[{\"bench\": 1}]")
            .unwrap_err()
            .starts_with("row 1:"));
    }

    #[test]
    fn compare_marks_regressions_in_the_worse_direction() {
        let old = Report {
            header: None,
            rows: vec![
                measured("core/spawn_join", "green", 100.0, "ns"),
                measured("core/yield_10k", "green", 50.0, "ns"),
                measured("http/hello", "green", 100_000.0, "req/s"),
                measured("http/hello", "tokio", 100_000.0, "req/s"),
                measured("core/gone", "green", 1.0, "ns"),
                measured("net/echo_1conn", "green", 1.0, "us"),
            ],
        };
        let new = Report {
            header: Some(header(None)),
            rows: vec![
                // 30% slower: a regression.
                measured("core/spawn_join", "green", 130.0, "ns"),
                // 5% slower: noise.
                measured("core/yield_10k", "green", 52.5, "ns"),
                // A rate 20% lower is worse, 20% higher better.
                measured("http/hello", "green", 80_000.0, "req/s"),
                measured("http/hello", "tokio", 120_000.0, "req/s"),
                measured("core/new_bench", "green", 1.0, "ns"),
                skipped("net/echo_1conn", "green", "no loopback"),
            ],
        };
        let out = compare(&old, "old.json", &new);
        let line = |needle: &str| {
            let (bench, subject) = needle.split_once(' ').unwrap_or((needle, ""));
            out.lines()
                .find(|l| l.starts_with(bench) && l.contains(subject))
                .unwrap_or_else(|| panic!("no line {needle} in\n{out}"))
                .to_owned()
        };
        assert!(out.starts_with("change from old.json (an older report without a header)"));
        assert!(line("core/spawn_join").contains("+30.0%"));
        assert!(line("core/spawn_join").ends_with("<< REGRESSION"));
        assert!(line("core/yield_10k").ends_with("+5.0%"));
        let green_http = line("http/hello green");
        assert!(
            green_http.contains("-20.0%") && green_http.ends_with("<< REGRESSION"),
            "{green_http}"
        );
        let tokio_http = line("http/hello tokio");
        assert!(tokio_http.ends_with("better"), "{tokio_http}");
        assert!(line("net/echo_1conn").contains("skipped"));
        assert!(!line("net/echo_1conn").contains("REGRESSION"));
        assert!(
            out.contains("only in the old report (1):\n  core/gone (green)"),
            "{out}"
        );
        assert!(
            out.contains("only in this run (1):\n  core/new_bench (green)"),
            "{out}"
        );
        assert!(out.contains("2 REGRESSION(S) beyond 10%"), "{out}");

        // A filtered run leaves the old rows outside its filter out.
        let filtered = Report {
            header: Some(header(Some("core/spawn"))),
            rows: vec![measured("core/spawn_join", "green", 100.0, "ns")],
        };
        let out = compare(&old, "old.json", &filtered);
        assert!(!out.contains("only in the old report"), "{out}");
        assert!(out.contains("no regression beyond 10%"), "{out}");
    }
}
