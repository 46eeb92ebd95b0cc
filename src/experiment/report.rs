//! Writing results: flat CSV columns from any report, JSON, and files that appear whole or
//! not at all.

use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why results could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A figure could not be drawn.
    #[cfg(feature = "plot")]
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

/// Flattens a JSON value into `(column, value)` pairs: nested keys joined by `.`
/// (`latency_ms.p95`, `ci95.latency_ms.p95`); arrays are skipped.
pub fn flatten(value: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

fn walk(value: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(v, key, out);
            }
        }
        Value::Array(_) => {}
        leaf => out.push((prefix, leaf.clone())),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Rows of records as CSV text: `lead` columns first, then every flattened field of
/// `records`, with the header taken from the first record.
pub fn csv_text<T: Serialize>(lead: &[Vec<(String, String)>], records: &[T]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let flat: Vec<Vec<(String, Value)>> =
        records.iter().map(|r| flatten(&serde_json::to_value(r).unwrap_or(Value::Null))).collect();
    if let (Some(first_lead), Some(first)) = (lead.first(), flat.first()) {
        let header = first_lead.iter().map(|(k, _)| k.as_str()).chain(first.iter().map(|(k, _)| k.as_str()));
        let _ = w.write_record(header);
    }
    for (l, f) in lead.iter().zip(&flat) {
        let row = l.iter().map(|(_, v)| v.clone()).chain(f.iter().map(|(_, v)| cell(v)));
        let _ = w.write_record(row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Writes every `(path, bytes)` to a temporary file first, then renames them all: a failure
/// leaves no half-written output.
pub fn write_all(files: &[(PathBuf, Vec<u8>)]) -> Result<(), WriteError> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
        move |source| WriteError::Io { path: path.to_owned(), source }
    }
    let mut staged = Vec::new();
    for (path, bytes) in files {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".partial");
        let tmp = path.with_file_name(name);
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        std::fs::rename(&tmp, path).map_err(io(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_joins_keys_and_csv_has_one_row_per_record() {
        let v = serde_json::json!({"a": 1, "b": {"c": 2.5, "d": "x"}, "e": [1, 2]});
        let keys: Vec<String> = flatten(&v).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b.c", "b.d"]);
        let lead = vec![vec![("index".to_string(), "0".to_string())], vec![("index".into(), "1".into())]];
        let text = csv_text(&lead, &[v.clone(), v]);
        assert_eq!(text, "index,a,b.c,b.d\n0,1,2.5,x\n1,1,2.5,x\n");
    }
}
