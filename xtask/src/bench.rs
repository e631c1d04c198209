//! `cargo xtask bench [--quick] [FILTER]`: runs every benchmark and reports.
//!
//! Each file `benches/<name>.rs` is one subject (STYLE rule 18) and a
//! `harness = false` binary built on `benches/support/harness.rs`. They run
//! one after another as `cargo bench --bench <name>` with:
//!
//! * `GREEN_BENCH_QUICK=1` for `--quick` (fewer, shorter samples; the heavy
//!   benches such as `ctx/million_unguarded` skip themselves);
//! * `GREEN_BENCH_FILTER=FILTER`, a substring of the bench names to run
//!   (`ctx/`, `core/spawn_join`);
//! * `GREEN_BENCH_OUT=target/bench/results.jsonl`, to which every bench
//!   appends one JSON line per (bench, subject).
//!
//! Then the lines are gathered into `target/bench/report.json` (an array of
//! `{bench, subject, median, min, max, unit, note?}`) and
//! `target/bench/report.md`, and a table is printed. Its `ratio` column is
//! the subject's median divided by green's median for the same bench, so
//! green is always `1.00`; for a unit where lower is better (`ns`, `bytes`,
//! `s`) a ratio above 1 means green is ahead, for one where higher is better
//! (`req/s`) a ratio below 1 does.
//!
//! Without `--quick`, and when valgrind is installed, a fixed switch scenario
//! also runs under `valgrind --tool=callgrind` and its instruction count per
//! round trip goes to `target/bench/callgrind.json`: on a noisy shared 2-core
//! machine instruction counts repeat exactly where wall time does not
//! (rust-analyzer's `metrics` does the same).

use std::fmt::Write as _;

use crate::json::{fmt_num, json_number, json_string};
use std::fs;
use std::path::Path;

use crate::util::{bail, cargo_cmd, have_program, project_root, run, Error, Result};

/// Options of `cargo xtask bench`.
#[derive(Debug, Default)]
pub(crate) struct BenchOptions {
    /// Fewer and shorter samples; skip the benches that take seconds.
    pub(crate) quick: bool,
    /// Substring of the bench names to run.
    pub(crate) filter: Option<String>,
}

impl BenchOptions {
    /// Parses the arguments that follow `bench`.
    pub(crate) fn parse(args: &[String]) -> Result<BenchOptions> {
        let mut opts = BenchOptions::default();
        for arg in args {
            match arg.as_str() {
                "--quick" => opts.quick = true,
                flag if flag.starts_with('-') => {
                    bail!("xtask bench: unknown flag `{flag}` (expected --quick)")
                }
                filter => {
                    if let Some(old) = &opts.filter {
                        bail!("xtask bench: one FILTER only (got `{old}` and `{filter}`)");
                    }
                    opts.filter = Some(filter.to_owned());
                }
            }
        }
        Ok(opts)
    }
}

/// One line of `results.jsonl`: a bench's figures for one subject.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) bench: String,
    pub(crate) subject: String,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) unit: String,
    pub(crate) note: Option<String>,
}

/// The subject every ratio is relative to.
const BASELINE: &str = "green";

/// Fixed callgrind scenario: `ctx/switch_round_trip`, run with two iteration
/// counts so that setup cancels out of the difference.
const CALLGRIND_SHORT: u64 = 1_000;
const CALLGRIND_LONG: u64 = 101_000;

/// Runs the benches and writes the reports.
pub(crate) fn run_all(opts: &BenchOptions) -> Result<()> {
    let root = project_root();
    let out_dir = root.join("target").join("bench");
    fs::create_dir_all(&out_dir).map_err(|e| io_err(&out_dir, e))?;
    let results = out_dir.join("results.jsonl");
    fs::write(&results, "").map_err(|e| io_err(&results, e))?;

    let benches = bench_names(&root.join("benches"))?;
    if benches.is_empty() {
        bail!("xtask bench: no benches found in benches/*.rs");
    }
    for name in &benches {
        let mut cmd = cargo_cmd(["bench", "--bench", name.as_str()]);
        cmd.env("GREEN_BENCH_OUT", &results);
        if opts.quick {
            cmd.env("GREEN_BENCH_QUICK", "1");
        }
        if let Some(filter) = &opts.filter {
            cmd.env("GREEN_BENCH_FILTER", filter);
        }
        run(&format!("bench {name}"), &mut cmd)?;
    }

    let text = fs::read_to_string(&results).map_err(|e| io_err(&results, e))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row =
            parse_row(line).map_err(|e| Error(format!("{}:{}: {e}", results.display(), i + 1)))?;
        rows.push(row);
    }

    let json_path = out_dir.join("report.json");
    fs::write(&json_path, report_json(&rows)).map_err(|e| io_err(&json_path, e))?;
    let md_path = out_dir.join("report.md");
    fs::write(&md_path, report_md(&rows)).map_err(|e| io_err(&md_path, e))?;

    println!();
    print!("{}", report_table(&rows));
    println!("\nwrote {} and {}", json_path.display(), md_path.display());

    let callgrind_wanted = opts
        .filter
        .as_deref()
        .is_none_or(|f| "ctx/switch_round_trip".contains(f) || f.contains("callgrind"));
    if !opts.quick && callgrind_wanted && benches.iter().any(|b| b == "switch") {
        if have_program("valgrind") {
            callgrind(&out_dir)?;
        } else {
            eprintln!("\n==> callgrind: valgrind is not installed, skipping instruction counts");
        }
    }
    Ok(())
}

/// The stems of `benches/*.rs`, sorted.
fn bench_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Runs the switch scenario under callgrind twice and writes
/// `callgrind.json` with the instructions per round trip.
fn callgrind(out_dir: &Path) -> Result<()> {
    let mut totals = Vec::new();
    for iters in [CALLGRIND_SHORT, CALLGRIND_LONG] {
        let out_file = out_dir.join(format!("callgrind.switch.{iters}.out"));
        let out_str = out_file.to_string_lossy().into_owned();
        if out_str.contains(char::is_whitespace) {
            eprintln!("\n==> callgrind: skipped, the target path contains whitespace ({out_str})");
            return Ok(());
        }
        let mut cmd = cargo_cmd(["bench", "--bench", "switch"]);
        cmd.env("GREEN_BENCH_CALLGRIND", iters.to_string()).env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
            format!("valgrind --tool=callgrind --quiet --callgrind-out-file={out_str}"),
        );
        run(&format!("callgrind switch x{iters}"), &mut cmd)?;
        let text = fs::read_to_string(&out_file).map_err(|e| io_err(&out_file, e))?;
        let total = callgrind_total(&text).ok_or_else(|| {
            Error(format!(
                "{}: no `summary:` or `totals:` line",
                out_file.display()
            ))
        })?;
        totals.push(total);
    }
    let per_iter =
        totals[1].saturating_sub(totals[0]) as f64 / (CALLGRIND_LONG - CALLGRIND_SHORT) as f64;
    let json = format!(
        "{{\"scenario\":\"ctx/switch_round_trip\",\"subject\":\"green\",\"tool\":\"callgrind\",\
         \"iterations\":[{CALLGRIND_SHORT},{CALLGRIND_LONG}],\"instructions\":[{},{}],\
         \"instructions_per_iter\":{}}}\n",
        totals[0],
        totals[1],
        json_number(per_iter)
    );
    let path = out_dir.join("callgrind.json");
    fs::write(&path, json).map_err(|e| io_err(&path, e))?;
    println!(
        "\ncallgrind: ctx/switch_round_trip (green) = {per_iter:.1} instructions per round trip ({})",
        path.display()
    );
    Ok(())
}

/// The event count of a callgrind output file (`summary:` or `totals:` line).
fn callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error(format!("{}: {e}", path.display()))
}

// ===== reports =====

/// green's median for `bench`, if green ran it.
fn baseline(rows: &[Row], bench: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.bench == bench && r.subject == BASELINE)
        .map(|r| r.median)
}

/// The ratio column: subject median / green median, or `-`.
fn ratio(rows: &[Row], row: &Row) -> String {
    match baseline(rows, &row.bench) {
        Some(base) if base > 0.0 && base.is_finite() => format!("{:.2}", row.median / base),
        _ => "-".to_owned(),
    }
}

const HEADERS: [&str; 6] = ["benchmark", "subject", "median", "min-max", "unit", "ratio"];

fn table_cells(rows: &[Row]) -> Vec<[String; 6]> {
    rows.iter()
        .map(|r| {
            [
                r.bench.clone(),
                r.subject.clone(),
                fmt_num(r.median),
                format!("{}-{}", fmt_num(r.min), fmt_num(r.max)),
                r.unit.clone(),
                ratio(rows, r),
            ]
        })
        .collect()
}

/// The table printed on the terminal, followed by the notes.
pub(crate) fn report_table(rows: &[Row]) -> String {
    let cells = table_cells(rows);
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cols: [&str; 6]| {
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            // Text columns align left, figures right.
            if i < 2 || i == 4 {
                let _ = write!(out, "{c:<w$}");
            } else {
                let _ = write!(out, "{c:>w$}");
            }
            out.push_str(if i == 5 { "\n" } else { "  " });
        }
    };
    line(&mut out, HEADERS);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut out, std::array::from_fn(|i| rule[i].as_str()));
    for row in &cells {
        line(&mut out, std::array::from_fn(|i| row[i].as_str()));
    }
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
    out.push_str(
        "\nratio = subject median / green median for the same bench (green = 1.00); \
         for ns, bytes and s above 1 means green is ahead, for req/s below 1 does.\n",
    );
    out
}

/// `report.md`: the same table in Markdown, with a note column.
pub(crate) fn report_md(rows: &[Row]) -> String {
    let mut out = String::from("# green benchmarks\n\n");
    out.push_str("Written by `cargo xtask bench`. `ratio` = subject median / green median for the same bench ");
    out.push_str("(green = 1.00; for `ns`, `bytes` and `s` a ratio above 1 means green is ahead, ");
    out.push_str("for `req/s` a ratio below 1 does).\n\n");
    out.push_str("| benchmark | subject | median | min-max | unit | ratio | note |\n");
    out.push_str("| --- | --- | ---: | ---: | --- | ---: | --- |\n");
    for (r, c) in rows.iter().zip(table_cells(rows)) {
        let note = r.note.as_deref().unwrap_or("").replace('|', "\\|");
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            c[0], c[1], c[2], c[3], c[4], c[5], note
        );
    }
    out
}

/// `report.json`: an array of objects, one per row.
pub(crate) fn report_json(rows: &[Row]) -> String {
    let mut out = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "  {{\"bench\": {}, \"subject\": {}, \"median\": {}, \"min\": {}, \"max\": {}, \"unit\": {}",
            json_string(&r.bench),
            json_string(&r.subject),
            json_number(r.median),
            json_number(r.min),
            json_number(r.max),
            json_string(&r.unit)
        );
        if let Some(note) = &r.note {
            let _ = write!(out, ", \"note\": {}", json_string(note));
        }
        out.push('}');
        out.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

// ===== hand-written JSON (std-only, STYLE rule 19): benches/support/json.rs =====

/// A value of a flat JSON object.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// Parses one flat JSON object (string, number, bool and null values).
fn parse_object(text: &str) -> std::result::Result<Vec<(String, Value)>, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let mut fields = Vec::new();
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            let value = p.value()?;
            fields.push((key, value));
            p.ws();
            match p.bump() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(format!("expected `,` or `}}` at byte {}", p.i)),
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing characters at byte {}", p.i));
    }
    Ok(fields)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.bump() == Some(c) {
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at byte {}",
                c as char,
                self.i.saturating_sub(1)
            ))
        }
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                let num = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII digits");
                num.parse()
                    .map(Value::Num)
                    .map_err(|_| format!("bad number `{num}` at byte {start}"))
            }
            _ => Err(format!("expected a value at byte {}", self.i)),
        }
    }

    fn word(&mut self, word: &str, value: Value) -> std::result::Result<Value, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(format!("expected `{word}` at byte {}", self.i))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err("unterminated string".to_owned()),
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = match self.bump() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or_else(|| format!("bad \\u escape at byte {}", self.i))?;
                            self.i += 4;
                            // Lone surrogates cannot come from our writer; map them to U+FFFD.
                            char::from_u32(hex).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(format!("bad escape at byte {}", self.i)),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".to_owned())
    }
}

/// Parses one line of `results.jsonl` into a [`Row`].
pub(crate) fn parse_row(line: &str) -> std::result::Result<Row, String> {
    let fields = parse_object(line)?;
    let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let string = |key: &str| match get(key) {
        Some(Value::Str(s)) => Ok(s.clone()),
        _ => Err(format!("field `{key}` missing or not a string")),
    };
    let number = |key: &str| match get(key) {
        Some(Value::Num(n)) => Ok(*n),
        Some(Value::Null) => Ok(f64::NAN),
        _ => Err(format!("field `{key}` missing or not a number")),
    };
    let note = match get("note") {
        Some(Value::Str(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(other) => return Err(format!("field `note` is not a string: {other:?}")),
    };
    Ok(Row {
        bench: string("bench")?,
        subject: string("subject")?,
        median: number("median")?,
        min: number("min")?,
        max: number("max")?,
        unit: string("unit")?,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bench: &str, subject: &str, median: f64) -> Row {
        Row {
            bench: bench.into(),
            subject: subject.into(),
            median,
            min: median * 0.9,
            max: median * 1.2,
            unit: "ns".into(),
            note: None,
        }
    }

    #[test]
    fn rows_round_trip_through_json() {
        let line = r#"{"bench":"ctx/switch_round_trip","subject":"green","median":5.25,"min":4.5,"max":1e1,"unit":"ns","note":"fast \"switch\"\n\u00e9"}"#;
        let r = parse_row(line).unwrap();
        assert_eq!(r.bench, "ctx/switch_round_trip");
        assert_eq!(r.median, 5.25);
        assert_eq!(r.max, 10.0);
        assert_eq!(r.note.as_deref(), Some("fast \"switch\"\n\u{e9}"));
        let json = report_json(std::slice::from_ref(&r));
        let inner = json
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim();
        assert_eq!(parse_row(inner).unwrap(), r);
        assert!(parse_row(
            r#"{"bench":"x","subject":"y","median":1,"min":1,"max":1,"unit":"ns","note":null}"#
        )
        .unwrap()
        .note
        .is_none());
        assert!(parse_row(r#"{"bench":"x""#).is_err());
    }

    #[test]
    fn ratio_is_relative_to_green() {
        let rows = vec![
            row("ctx/switch_round_trip", "green", 5.0),
            row("ctx/switch_round_trip", "corosensei", 2.5),
            row("ctx/idle_rss", "other", 7.0),
        ];
        assert_eq!(ratio(&rows, &rows[0]), "1.00");
        assert_eq!(ratio(&rows, &rows[1]), "0.50");
        assert_eq!(ratio(&rows, &rows[2]), "-");
        let table = report_table(&rows);
        assert!(table.starts_with("benchmark"));
        assert!(table.contains("corosensei"));
        assert!(report_md(&rows).contains("| `ctx/switch_round_trip` | corosensei | 2.50 |"));
    }

    #[test]
    fn counts_from_callgrind_output() {
        assert_eq!(callgrind_total("events: Ir\nsummary: 12345\n"), Some(12345));
        assert_eq!(callgrind_total("totals: 99\n"), Some(99));
        assert_eq!(callgrind_total("nothing"), None);
    }

    #[test]
    fn options_parse() {
        let o = BenchOptions::parse(&["--quick".into(), "ctx/".into()]).unwrap();
        assert!(o.quick);
        assert_eq!(o.filter.as_deref(), Some("ctx/"));
        assert!(BenchOptions::parse(&["--fast".into()]).is_err());
    }
}
