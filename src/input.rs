//! Reading input files: every file a command reads — a scenario, a calibration, samples, a
//! table of points, a sweep's shards, kept measurements, a model, a configuration on
//! standard input — goes through one bounded reader. A file far longer than any such input,
//! or an endless device such as `/dev/zero`, is refused with a message instead of being
//! read into memory until the process runs out of it.
//!
//! The errors are [`std::io::Error`]s without the file's name, for the caller to put in
//! front (`{path}: {error}`) with the field or flag the file came from and the fix. A file
//! over its bound is [`ErrorKind::FileTooLarge`](std::io::ErrorKind::FileTooLarge), so a
//! caller can add the fix that fits (subsample it, give the right file…).
//!
//! ```
//! use servesim::input::{MAX_FILE_BYTES, read_text};
//! use std::path::Path;
//!
//! let e = read_text(Path::new("/dev/zero")).unwrap_err();
//! assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
//! assert_eq!(e.to_string(), "longer than the 64 MiB an input file may have");
//! assert_eq!(MAX_FILE_BYTES, 64 << 20);
//! ```

use std::io::{self, Read};
use std::path::Path;

/// Largest input file read (bytes): a scenario, a calibration, a table of points or a file
/// of kept measurements is kilobytes to megabytes, and 64 MiB holds millions of samples; a
/// longer file, or an endless device such as `/dev/zero`, is refused rather than read into
/// memory.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The text of the file `path`, which must hold at most [`MAX_FILE_BYTES`] of UTF-8.
///
/// A regular file longer than that is refused before any of it is read, with its length; a
/// pipe or a device is read up to the bound and refused past it. Any kind of file is read:
/// a caller that wants only regular files checks that first, with its own fix.
pub fn read_text(path: &Path) -> io::Result<String> {
    utf8(read_bytes(path, MAX_FILE_BYTES)?)
}

/// The bytes of the file `path`, which must hold at most `max` (as [`read_text`], for a
/// file that is not text or has a bound of its own, such as a model's weights).
pub fn read_bytes(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.len() > max {
        return Err(too_long(file_kind(max), Some(meta.len()), max));
    }
    read_bounded(file, max, file_kind(max))
}

/// The text on standard input, which must hold at most [`MAX_FILE_BYTES`] of UTF-8 (a
/// configuration piped in by a parent process, or by a user).
pub fn read_stdin_text() -> io::Result<String> {
    utf8(read_bounded(io::stdin().lock(), MAX_FILE_BYTES, "standard input")?)
}

/// What a file is called in the refusal of one over `max` bytes.
fn file_kind(max: u64) -> &'static str {
    if max == MAX_FILE_BYTES { "an input file" } else { "this file" }
}

/// At most `max` bytes of `reader`, all of it: an error if it holds more.
fn read_bounded(reader: impl Read, max: u64, what: &str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_long(what, None, max));
    }
    Ok(bytes)
}

/// The refusal of `what` (`an input file`, `standard input`) longer than `max` bytes (`len`
/// if known).
fn too_long(what: &str, len: Option<u64>, max: u64) -> io::Error {
    let bound =
        if max > 0 && max % (1 << 20) == 0 { format!("{} MiB", max >> 20) } else { format!("{max} bytes") };
    let len = len.map_or_else(String::new, |n| format!("{n} bytes, "));
    io::Error::new(io::ErrorKind::FileTooLarge, format!("{len}longer than the {bound} {what} may have"))
}

/// `bytes` as text, or an error that says where the first byte that is not UTF-8 is.
fn utf8(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text (byte {at} is not UTF-8)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed when dropped (even when the test fails).
    fn scratch() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("servesim-input-").tempdir().unwrap()
    }

    #[test]
    fn a_file_within_the_bound_is_read_whole() {
        let dir = scratch();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "[worker]\nthreads = 8\n").unwrap();
        assert_eq!(read_text(&path).unwrap(), "[worker]\nthreads = 8\n");
        assert_eq!(read_bytes(&path, 21).unwrap().len(), 21);
        let e = read_bytes(&path, 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "21 bytes, longer than the 20 bytes this file may have");
    }

    /// A sparse file past the bound is refused from its length, before a byte is read.
    #[test]
    fn a_long_regular_file_is_refused_with_its_length() {
        let dir = scratch();
        let path = dir.path().join("huge.json");
        std::fs::File::create(&path).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
        let e = read_text(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "67108865 bytes, longer than the 64 MiB an input file may have");
    }

    #[test]
    fn endless_devices_missing_files_and_binary_files_are_refused() {
        let e = read_text(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        let e = read_bytes(Path::new("/dev/zero"), 1000).unwrap_err();
        assert_eq!(e.to_string(), "longer than the 1000 bytes this file may have");
        let dir = scratch();
        assert_eq!(read_text(&dir.path().join("none")).unwrap_err().kind(), io::ErrorKind::NotFound);
        let bin = dir.path().join("bin");
        std::fs::write(&bin, b"ok\n\xff\xfe").unwrap();
        assert_eq!(read_text(&bin).unwrap_err().to_string(), "not UTF-8 text (byte 3 is not UTF-8)");
        assert!(read_text(dir.path()).is_err(), "a directory is no file");
    }
}
