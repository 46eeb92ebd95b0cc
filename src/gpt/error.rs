//! Errors of the model.

use std::path::PathBuf;

/// Why the model cannot load, save or decode.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    /// The prompt is empty or only whitespace.
    #[error("sentence is empty: give at least one non-space character")]
    EmptyPrompt,
    /// The prompt does not fit the context.
    #[error("sentence has {chars} characters; the model's context holds at most {max} (shorten it)")]
    PromptTooLong {
        /// Characters given.
        chars: usize,
        /// Most characters accepted.
        max: usize,
    },
    /// A configuration value is out of range.
    #[error("config: {0}")]
    Config(String),
    /// A weights or config file is missing, truncated or inconsistent.
    #[error("{path}: {reason}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
}
