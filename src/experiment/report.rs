//! Writing results: flat CSV columns from any report, JSON, and files that appear whole or
//! not at all.

use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Writes every `(path, bytes)` whole or not at all (see [`Staged`]): on any failure the
/// destinations are as they were and no temporary is left.
pub fn write_all(files: &[(PathBuf, Vec<u8>)]) -> Result<(), WriteError> {
    let mut staged = Staged::new();
    for (path, bytes) in files {
        staged.add(path, bytes)?;
    }
    staged.commit().map(|_| ())
}

/// Checks, before a long run, that output files can later be written into `dir`: the
/// directory, or its nearest existing ancestor when it does not exist yet, must be a
/// directory in which a file can be created (a file is created there and removed). Nothing
/// is left behind. A run's results are written only at its end (see [`Staged`]), so an
/// output path that cannot take them would otherwise be found out only then.
pub fn check_dir(dir: &Path) -> Result<(), WriteError> {
    let existing = dir
        .ancestors()
        .map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d })
        .find(|d| d.exists())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotADirectory, "a file is in the way");
        return Err(WriteError::Io { path: existing.to_owned(), source });
    }
    let probe = sibling(&existing.join("probe"), "probe");
    std::fs::File::create_new(&probe).map_err(io(existing))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Checks, before a long run, that a file can later be written at `path`: it is not a
/// directory, and its directory passes [`check_dir`].
pub fn check_file(path: &Path) -> Result<(), WriteError> {
    if path.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::IsADirectory, "a directory is in the way");
        return Err(WriteError::Io { path: path.to_owned(), source });
    }
    check_dir(path.parent().unwrap_or(Path::new(".")))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io { path: path.to_owned(), source }
}

/// Distinguishes the temporaries of one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A hidden name beside `path` that no other writer uses: `.NAME.PID-N.ROLE.partial`.
fn sibling(path: &Path, role: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}.{role}.partial", std::process::id()))
}

/// A set of output files that appear together or not at all, as far as the filesystem
/// allows. Each file is first written in full to a temporary beside its destination (so
/// the rename is on one filesystem); [`Staged::commit`] then renames them into place,
/// moving aside a file it replaces, and on a failure puts everything back. Dropped
/// without a commit — on any error on the way — it removes every temporary and every
/// directory it created.
///
/// The one window left is a crash during the commit's renames.
#[derive(Debug, Default)]
pub struct Staged {
    /// (temporary, destination), in the order added.
    files: Vec<(PathBuf, PathBuf)>,
    /// Directories it created, outermost first.
    created: Vec<PathBuf>,
    /// Scratch directories for files written by code that takes a path (figures).
    scratch: Vec<PathBuf>,
    committed: bool,
}

impl Staged {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `dir` and its missing ancestors, remembering which it created.
    fn make_dir(&mut self, dir: &Path) -> Result<(), WriteError> {
        let missing: Vec<&Path> =
            dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
        for d in missing.into_iter().rev() {
            std::fs::create_dir(d).map_err(io(d))?;
            self.created.push(d.to_owned());
        }
        Ok(())
    }

    /// Writes `bytes` to a temporary for `path`.
    pub fn add(&mut self, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
        if let Some(dir) = path.parent() {
            self.make_dir(dir)?;
        }
        let tmp = sibling(path, "new");
        // Listed before it is written, so a failure half-way still removes it.
        self.files.push((tmp.clone(), path.to_owned()));
        let mut f = std::fs::File::create_new(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io(&tmp))
    }

    /// Runs `draw` on a fresh scratch directory inside `dir`; every file it returns there
    /// is staged for `dir` under its own name. Returns the destinations.
    pub fn add_drawn<E: Into<WriteError>>(
        &mut self,
        dir: &Path,
        draw: impl FnOnce(&Path) -> Result<Vec<PathBuf>, E>,
    ) -> Result<Vec<PathBuf>, WriteError> {
        self.make_dir(dir)?;
        let scratch = sibling(&dir.join("figures"), "dir");
        std::fs::create_dir(&scratch).map_err(io(&scratch))?;
        self.scratch.push(scratch.clone());
        let drawn = draw(&scratch).map_err(Into::into)?;
        let mut out = Vec::new();
        for file in drawn {
            let dest = dir.join(file.file_name().unwrap_or_default());
            self.files.push((file, dest.clone()));
            out.push(dest);
        }
        Ok(out)
    }

    /// Renames every temporary into place; returns the destinations. On a failure, the
    /// files already renamed are removed, the ones they replaced restored, and the error
    /// names the destination that could not be written.
    pub fn commit(mut self) -> Result<Vec<PathBuf>, WriteError> {
        let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
        for (tmp, dest) in &self.files {
            match place(tmp, dest) {
                Ok(backup) => done.push((dest.clone(), backup)),
                Err(source) => {
                    for (dest, backup) in done.iter().rev() {
                        let _ = std::fs::remove_file(dest);
                        if let Some(b) = backup {
                            let _ = std::fs::rename(b, dest);
                        }
                    }
                    return Err(WriteError::Io { path: dest.clone(), source });
                }
            }
        }
        for backup in done.iter().filter_map(|(_, b)| b.as_ref()) {
            let _ = std::fs::remove_file(backup);
        }
        self.committed = true;
        for dir in &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(self.files.iter().map(|(_, dest)| dest.clone()).collect())
    }
}

/// Renames `tmp` to `dest`, moving a file already at `dest` aside first; returns where
/// it went. A directory at `dest` is refused, not replaced.
fn place(tmp: &Path, dest: &Path) -> std::io::Result<Option<PathBuf>> {
    let backup = match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => {
            return Err(std::io::Error::other("a directory of that name is in the way; move it"));
        }
        Ok(_) => {
            let b = sibling(dest, "old");
            std::fs::rename(dest, &b)?;
            Some(b)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    match std::fs::rename(tmp, dest) {
        Ok(()) => Ok(backup),
        Err(e) => {
            if let Some(b) = &backup {
                let _ = std::fs::rename(b, dest);
            }
            Err(e)
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (tmp, _) in &self.files {
            let _ = std::fs::remove_file(tmp);
        }
        for dir in &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
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

    /// A scratch directory, removed when dropped (even when the test fails).
    fn fresh(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("servesim-report-{name}-")).tempdir().unwrap()
    }

    /// Every entry of `dir`, sorted, with the content of files.
    fn listing(dir: &Path) -> Vec<(String, Option<String>)> {
        let mut out: Vec<(String, Option<String>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let text = std::fs::read_to_string(e.path()).ok();
                (e.file_name().to_string_lossy().into_owned(), text)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_failure_leaves_the_destination_as_it_was() {
        // `b.csv` is a directory: `a.json` has been renamed into place by then, and must be
        // taken back and its old content restored; `c.txt` never appears.
        let scratch = fresh("blocked");
        let dir = scratch.path();
        std::fs::create_dir_all(dir.join("b.csv")).unwrap();
        std::fs::write(dir.join("a.json"), "old").unwrap();
        let before = listing(dir);
        let files = [("a.json", "new"), ("b.csv", "new"), ("c.txt", "new")]
            .map(|(n, t)| (dir.join(n), t.as_bytes().to_vec()));
        let e = write_all(&files).unwrap_err().to_string();
        assert!(e.contains("b.csv") && e.contains("directory"), "{e}");
        assert_eq!(listing(dir), before);
    }

    #[test]
    fn success_replaces_files_and_creates_missing_directories() {
        let dir = fresh("ok");
        let nested = dir.path().join("x/y");
        write_all(&[(nested.join("a.csv"), b"1".to_vec())]).unwrap();
        write_all(&[(nested.join("a.csv"), b"2".to_vec()), (nested.join("b.csv"), b"3".to_vec())]).unwrap();
        let names = listing(&nested);
        assert_eq!(names, [("a.csv".to_string(), Some("2".to_string())), ("b.csv".into(), Some("3".into()))]);
    }

    #[test]
    fn output_paths_are_checked_without_leaving_anything() {
        let scratch = fresh("check");
        let dir = scratch.path();
        std::fs::write(dir.join("file"), "x").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        check_dir(&dir.join("sub")).unwrap();
        check_dir(&dir.join("new/deeper")).unwrap();
        check_file(&dir.join("new/deeper/out.json")).unwrap();
        check_file(&dir.join("file")).unwrap();
        for (bad, in_the_way) in [
            (check_dir(&dir.join("file")), "file"),
            (check_dir(&dir.join("file/sub")), "file"),
            (check_file(&dir.join("file/out.json")), "file"),
            (check_file(&dir.join("sub")), "sub"),
        ] {
            let e = bad.unwrap_err().to_string();
            assert!(e.starts_with(&format!("cannot write {}: a ", dir.join(in_the_way).display())), "{e}");
        }
        assert_eq!(listing(dir), [("file".to_string(), Some("x".to_string())), ("sub".into(), None)]);
        assert!(listing(&dir.join("sub")).is_empty());
    }

    #[test]
    fn a_failed_drawing_removes_what_it_created() {
        // The directory did not exist: nothing of it is left, not even the directory.
        let scratch = fresh("drawn");
        let dir = scratch.path().join("drawn").join("out");
        let mut staged = Staged::new();
        staged.add(&dir.join("a.csv"), b"1").unwrap();
        let r = staged.add_drawn(&dir, |scratch: &Path| -> Result<Vec<PathBuf>, WriteError> {
            std::fs::write(scratch.join("half.png"), "x").unwrap();
            Err(WriteError::Io { path: scratch.join("half.svg"), source: std::io::Error::other("no") })
        });
        assert!(r.is_err());
        drop(staged);
        assert!(!dir.exists() && !dir.parent().unwrap().exists());
    }
}
