//! Recorded samples of an `empirical` distribution, read from a file named in the scenario.

use super::{Dist, DistError};
use std::path::Path;

impl Dist {
    /// Reads the samples of an `empirical` distribution that names a file, relative to `base`.
    pub fn load_files(&mut self, base: &Path) -> Result<(), DistError> {
        match self {
            Dist::Empirical { file: Some(file), samples } => {
                let path = base.join(file.as_path());
                *samples = read_samples(&path)?.into();
                self.validate()
            }
            Dist::Sum(parts) => parts.iter_mut().try_for_each(|p| p.load_files(base)),
            _ => Ok(()),
        }
    }
}

/// Longest stretch of a bad line quoted in an error (characters).
const QUOTE_CHARS: usize = 40;

/// Reads the first column of a CSV file as numbers: one value per line, blank lines and
/// `#` comments skipped, a first line that is not a number taken as a header. Only a
/// regular file of at most [`MAX_FILE_BYTES`](crate::input::MAX_FILE_BYTES) (64 MiB, millions
/// of samples) is read, through the one bounded reader ([`crate::input::read_text`]).
pub fn read_samples(path: &Path) -> Result<Vec<f64>, DistError> {
    let err = |reason: String| DistError::File { path: path.to_owned(), reason };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file; give a CSV file of samples".into()));
    }
    let text = crate::input::read_text(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => err(format!("{e}; subsample it")),
        _ => err(e.to_string()),
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let field = line.split(',').next().unwrap_or("").trim();
        if field.is_empty() || field.starts_with('#') {
            continue;
        }
        match field.parse::<f64>() {
            Ok(v) => out.push(v),
            Err(_) if out.is_empty() && i == 0 => {} // header
            Err(_) => {
                let quoted: String = field.chars().take(QUOTE_CHARS).collect();
                let more = if field.chars().count() > QUOTE_CHARS { "…" } else { "" };
                return Err(err(format!("line {}: `{quoted}{more}` is not a number", i + 1)));
            }
        }
    }
    if out.is_empty() {
        return Err(err("no samples".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn samples_file_is_read_relative_to_base() {
        let scratch = tempfile::Builder::new().prefix("servesim-dist-").tempdir().unwrap();
        let dir = scratch.path();
        std::fs::write(dir.join("s.csv"), "ms\n1.0\n# note\n3.0\n").unwrap();
        let mut d = Dist::Empirical { file: Some("s.csv".into()), samples: Arc::from([]) };
        d.load_files(dir).unwrap();
        assert_eq!(d.mean(), 2.0);
        std::fs::write(dir.join("bad.csv"), "1.0\nx\n").unwrap();
        let mut d = Dist::Empirical { file: Some("bad.csv".into()), samples: Arc::from([]) };
        assert!(d.load_files(dir).unwrap_err().to_string().contains("line 2"));
        // A long bad line is quoted short; a device is refused before it is read.
        std::fs::write(dir.join("long.csv"), format!("1.0\n{}\n", "y".repeat(100_000))).unwrap();
        let e = read_samples(&dir.join("long.csv")).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.len() < 400, "{e}");
        let e = read_samples(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        // A file past the bound is refused from its length (a sparse file: nothing is read).
        let huge = dir.join("huge.csv");
        std::fs::File::create(&huge).unwrap().set_len(crate::input::MAX_FILE_BYTES + 1).unwrap();
        let e = read_samples(&huge).unwrap_err().to_string();
        assert!(e.contains("huge.csv") && e.contains("longer than the 64 MiB"), "{e}");
        assert!(e.ends_with("subsample it"), "{e}");
    }
}
