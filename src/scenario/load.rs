//! Reading a scenario: TOML text → overrides → schema → files → validation.

use super::Scenario;
use super::validate::show;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Why a scenario could not be loaded. Every message names the file or field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read (missing, not UTF-8, or longer than an input file may be).
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is unknown or a value has the wrong type.
    #[error("{field}: {message}")]
    Schema {
        /// Dotted path of the field (`worker.threads`).
        field: String,
        /// What is wrong, and the valid keys or values.
        message: String,
    },
    /// A value is out of range.
    #[error("{field}{}{message}", if message.starts_with(':') { "" } else { " " })]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// The rule and the value given (`must be ≥ 1, got 0`).
        message: String,
    },
    /// A `--set` argument is malformed.
    #[error("--set {arg}: {message}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        message: String,
    },
}

impl ScenarioError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ScenarioError::Invalid { field: field.into(), message: message.into() }
    }
}

/// One `--set path=value`: a dotted path into the scenario and a TOML value
/// (`worker.threads=8`, `worker.lock=gil`, `cost.token_free_ms={dist="exponential",mean=2}`).
/// The longest line of a syntax error's excerpt shown as is (characters).
const MAX_SHOWN_LINE: usize = 200;

/// The parser's message with its excerpt of the file; where a line of the excerpt is too
/// long to show (a generated file: a 200 kB line was echoed whole), the line, column and
/// message alone.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let full = e.to_string().trim_end().to_owned();
    if full.lines().all(|l| l.chars().count() <= MAX_SHOWN_LINE) {
        return full;
    }
    let message = e.message().trim_end();
    match e.span().and_then(|span| text.get(..span.start)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// A value that is not valid TOML is taken as a string.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted path (`worker.threads`).
    pub path: String,
    /// The value.
    pub value: toml::Value,
}

/// Most keys in a `--set` path.
const MAX_PATH_KEYS: usize = 8;

impl FromStr for Override {
    type Err = ScenarioError;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        // The argument as an error quotes it: at most 80 characters of it.
        let shown: String = if arg.chars().count() > 80 {
            arg.chars().take(80).chain("…".chars()).collect()
        } else {
            arg.to_owned()
        };
        let err = |message: &str| ScenarioError::Override { arg: shown.clone(), message: message.into() };
        let (path, raw) =
            arg.split_once('=').ok_or_else(|| err("expected PATH=VALUE, e.g. worker.threads=8"))?;
        let path = path.trim();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(err("the path must be dotted keys, e.g. worker.threads"));
        }
        // No scenario field is deeper than a few keys; a longer path would only nest tables
        // until the TOML writer's recursion overflows the stack.
        if path.split('.').count() > MAX_PATH_KEYS {
            return Err(err(&format!(
                "the path has {} keys; no scenario field is deeper than {MAX_PATH_KEYS}",
                path.split('.').count()
            )));
        }
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
        Ok(Override { path: path.to_owned(), value })
    }
}

impl Override {
    /// The override of `path` with `value` (`Override::new("worker.threads", 8)`).
    pub fn new(path: impl Into<String>, value: impl Into<toml::Value>) -> Override {
        Override { path: path.into(), value: value.into() }
    }

    /// Sets this value in a TOML table, creating intermediate tables.
    fn apply(&self, root: &mut toml::Table) -> Result<(), ScenarioError> {
        let keys: Vec<&str> = self.path.split('.').collect();
        let Some((last, parents)) = keys.split_last() else {
            return Err(ScenarioError::Override {
                arg: self.path.clone(),
                message: "the path is empty".into(),
            });
        };
        let mut table = root;
        for (i, key) in parents.iter().enumerate() {
            let entry =
                table.entry(key.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| ScenarioError::Override {
                arg: format!("{}=…", self.path),
                message: format!("`{}` is a value, not a table", keys[..=i].join(".")),
            })?;
        }
        table.insert(last.to_string(), self.value.clone());
        Ok(())
    }
}

/// The text of the scenario file `path`, read through the one bounded reader
/// ([`crate::input::read_text`]).
pub(crate) fn read_scenario(path: &Path) -> Result<String, ScenarioError> {
    crate::input::read_text(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })
}

impl Scenario {
    /// Loads a scenario file, applies `overrides` in order, and validates the result.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        let text = read_scenario(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut scenario = Self::parse(&text, path, base, overrides)?;
        if scenario.name.is_none() {
            scenario.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        Ok(scenario)
    }

    /// Parses scenario text; `origin` names it in errors and relative paths resolve
    /// against `base`.
    pub fn parse(
        text: &str,
        origin: &Path,
        base: &Path,
        overrides: &[Override],
    ) -> Result<Scenario, ScenarioError> {
        let mut table = toml::from_str::<toml::Table>(text).map_err(|e| ScenarioError::Syntax {
            path: origin.to_owned(),
            message: syntax_message(text, &e),
        })?;
        for o in overrides {
            o.apply(&mut table)?;
        }
        Self::from_table(table, base)
    }

    /// Builds a scenario from a TOML table (after overrides) and validates it.
    pub fn from_table(table: toml::Table, base: &Path) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario =
            serde_path_to_error::deserialize(table.clone()).map_err(|e| schema_error(&e, &table))?;
        scenario.base_dir = base.to_owned();
        scenario.load_files()?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// A scenario derived from this one: `overrides` applied to its values in order, then
    /// validated again, so that a derived scenario is held to the rules a file is. A bad
    /// override is refused with its field, as `--set` is.
    ///
    /// The overrides apply to the values as loaded. A calibration already applied stays
    /// applied and is not added again: an override of a cost it adds to replaces the sum
    /// (to add a calibration after the overrides, as a file does, parse the file with them).
    /// A `cost.calibration` is read only when none was applied. The arrival times of
    /// `clients.trace` are kept unless the override names another file; the files of
    /// empirical distributions are read again.
    pub fn with(&self, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        let mut table = toml::Table::try_from(self)
            .map_err(|e| ScenarioError::Schema { field: "scenario".into(), message: e.to_string() })?;
        for o in overrides {
            o.apply(&mut table)?;
        }
        let mut scenario: Scenario =
            serde_path_to_error::deserialize(table.clone()).map_err(|e| schema_error(&e, &table))?;
        scenario.base_dir = self.base_dir.clone();
        if scenario.clients.trace == self.clients.trace {
            scenario.clients.trace_ms = self.clients.trace_ms.clone();
        }
        let calibration_kept = scenario.cost.calibration == self.cost.calibration;
        if calibration_kept {
            scenario.cost.calibrated = self.cost.calibrated.clone();
        } else if self.cost.calibrated.is_some() {
            return Err(ScenarioError::invalid(
                "cost.calibration",
                "cannot be changed once a calibration is applied; set it in the file or with --set",
            ));
        }
        scenario.load_samples(scenario.clients.trace != self.clients.trace)?;
        if !calibration_kept {
            scenario.load_calibration()?;
        }
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads the files the scenario names: samples, the trace, the calibration.
    fn load_files(&mut self) -> Result<(), ScenarioError> {
        self.load_samples(true)?;
        self.load_calibration()
    }

    /// Reads the sample files of empirical distributions, and the trace's if `trace`.
    fn load_samples(&mut self, trace: bool) -> Result<(), ScenarioError> {
        let base = self.base_dir.clone();
        for (field, dist) in self.dists_mut() {
            dist.load_files(&base).map_err(|e| ScenarioError::invalid(field, format!(": {e}")))?;
        }
        if let Some(trace) = self.clients.trace.as_ref().filter(|_| trace) {
            let times = crate::workload::read_samples(&base.join(trace))
                .map_err(|e| ScenarioError::invalid("clients.trace", format!(": {e}")))?;
            if let Some(i) = times.windows(2).position(|w| w[1] < w[0]) {
                let (after, before) = (show(times[i + 1]), show(times[i]));
                return Err(ScenarioError::invalid(
                    "clients.trace",
                    format!(": arrival times must not decrease (value {after} after {before})"),
                ));
            }
            // Validation checks that each time is finite and in range.
            self.clients.trace_ms = times;
        }
        Ok(())
    }

    /// Reads and applies the calibration file the scenario names, if any.
    fn load_calibration(&mut self) -> Result<(), ScenarioError> {
        if let Some(file) = self.cost.calibration.clone() {
            let base = self.base_dir.clone();
            let path = base.join(file);
            super::Calibration::read(&path)?.apply(self, &path)?;
        }
        Ok(())
    }

    /// A value with every field at its default.
    pub fn defaults() -> Scenario {
        Scenario::deserialize(toml::Value::Table(toml::Table::new())).expect("defaults deserialize")
    }
}

/// A schema error; an integer field given a value its type cannot hold (too large, negative,
/// fractional) is reported against the field's range instead, as validation would.
fn schema_error(e: &serde_path_to_error::Error<toml::de::Error>, table: &toml::Table) -> ScenarioError {
    let field = schema_path(e);
    let out_of_range = super::validate::integer_range(&field)
        .and_then(|range| Some((range, value_at(table, &field)?)))
        .and_then(|((lo, hi), v)| out_of_range(v, lo, hi));
    match out_of_range {
        Some(message) => ScenarioError::Invalid { field, message },
        // The message alone: the field is named already (its `Display` names it again).
        None => ScenarioError::Schema { field, message: plain_types(e.inner().message().trim()) },
    }
}

/// A schema message with Rust's type names in words: "expected f64" → "expected a number".
fn plain_types(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, words) in [
        ("f64", "a number"),
        ("f32", "a number"),
        ("u64", "a whole number ≥ 0"),
        ("u32", "a whole number ≥ 0"),
        ("usize", "a whole number ≥ 0"),
        ("i64", "a whole number"),
    ] {
        m = m.replace(&format!("expected {rust}"), &format!("expected {words}"));
    }
    m
}

/// The value at a dotted path, if the path leads through tables to one.
fn value_at<'t>(table: &'t toml::Table, path: &str) -> Option<&'t toml::Value> {
    let (parents, last) = path.rsplit_once('.').map_or((None, path), |(p, l)| (Some(p), l));
    let mut t = table;
    for key in parents.into_iter().flat_map(|p| p.split('.')) {
        t = t.get(key)?.as_table()?;
    }
    t.get(last)
}

/// Why `v` is not an integer in `[lo, hi]`, if it is a number or a string that is not: an
/// integer outside the range, a fraction, a string of digits (from `--set`, where TOML
/// refused it as too long), or a string that is no number at all.
fn out_of_range(v: &toml::Value, lo: u64, hi: u64) -> Option<String> {
    let digits = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => {
            return Some(format!("must be a whole number in [{lo}, {hi}], got {}", show(*f)));
        }
        toml::Value::String(s) => {
            let s = s.trim().replace('_', "");
            let body = s.strip_prefix(['-', '+']).unwrap_or(&s);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                return Some(format!("must be a whole number in [{lo}, {hi}], got {s:?}"));
            }
            s
        }
        _ => return None,
    };
    if digits.starts_with('-') && digits.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return Some(format!("must be ≥ {lo}, got {digits}"));
    }
    match digits.trim_start_matches(['+', '-']).parse::<u64>() {
        Ok(n) if n < lo => Some(format!("must be ≥ {lo}, got {digits}")),
        // In range: the error is about something else.
        Ok(n) if n <= hi => None,
        _ => Some(format!("must be ≤ {hi}, got {digits}")),
    }
}

fn schema_path(e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let path = e.path().to_string();
    if path == "." || path.is_empty() { "scenario".into() } else { path }
}
