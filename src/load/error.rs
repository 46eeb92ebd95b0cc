//! Why a load run could not start. Failed requests are not errors of the run: they are
//! data, counted by [`ErrorKind`](super::ErrorKind) in the report.

use thiserror::Error;

/// A plan that cannot run, or a machine that cannot run it. Each message names the flag
/// and says how to fix it.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The target URL is unusable.
    #[error(
        "--url {url:?}: {problem} (expected http://HOST[:PORT][/PATH], e.g. http://127.0.0.1:8000/correct)"
    )]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The URL's host has no address.
    #[error("--url: cannot resolve host {host:?}: {source}; check the host name or use an IP address")]
    Resolve {
        /// Host and port as given.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The body template does not render to JSON.
    #[error(
        "--body is not valid JSON once {{i}} is replaced by 0: {source}; quote strings and escape inner quotes"
    )]
    Body {
        /// The JSON parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A flag's value is out of range or contradicts another flag.
    #[error("{flag} {problem}")]
    Flag {
        /// The flag at fault, e.g. `--closed`.
        flag: &'static str,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The tokio runtime could not be built.
    #[error("cannot start the load generator's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The runtime's threads could not be pinned.
    #[error("--cpus: cannot pin the load generator to CPUs {cpus:?}: {source}")]
    Pin {
        /// The CPUs asked for.
        cpus: Vec<usize>,
        /// Why pinning failed.
        #[source]
        source: crate::affinity::AffinityError,
    },
    /// The run's driver task panicked or was cancelled.
    #[error("the load generator stopped unexpectedly: {0}")]
    Aborted(String),
}

impl LoadError {
    /// A [`LoadError::Flag`].
    pub(crate) fn flag(flag: &'static str, problem: impl Into<String>) -> Self {
        LoadError::Flag { flag, problem: problem.into() }
    }
}
