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

/// Reads the first column of a CSV file as numbers: one value per line, blank lines and
/// `#` comments skipped, a first line that is not a number taken as a header.
pub fn read_samples(path: &Path) -> Result<Vec<f64>, DistError> {
    let err = |reason: String| DistError::File { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let field = line.split(',').next().unwrap_or("").trim();
        if field.is_empty() || field.starts_with('#') {
            continue;
        }
        match field.parse::<f64>() {
            Ok(v) => out.push(v),
            Err(_) if out.is_empty() && i == 0 => {} // header
            Err(_) => return Err(err(format!("line {}: `{field}` is not a number", i + 1))),
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
        let dir = std::env::temp_dir().join(format!("servesim-dist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s.csv"), "ms\n1.0\n# note\n3.0\n").unwrap();
        let mut d = Dist::Empirical { file: Some("s.csv".into()), samples: Arc::from([]) };
        d.load_files(&dir).unwrap();
        assert_eq!(d.mean(), 2.0);
        std::fs::write(dir.join("bad.csv"), "1.0\nx\n").unwrap();
        let mut d = Dist::Empirical { file: Some("bad.csv".into()), samples: Arc::from([]) };
        assert!(d.load_files(&dir).unwrap_err().to_string().contains("line 2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
