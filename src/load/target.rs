//! The server under load: a parsed `http://` URL and, once resolved, its socket address.

use super::LoadError;
use hyper::Uri;
use std::net::SocketAddr;

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// Host name or IP, without IPv6 brackets.
    pub host: String,
    /// TCP port (80 when the URL has none).
    pub port: u16,
    /// The `Host` header: the URL's authority.
    pub authority: String,
    /// Path and query sent on the request line (at least `/`).
    pub path_and_query: String,
}

impl Target {
    /// Parses an `http://HOST[:PORT][/PATH][?QUERY]` URL.
    pub fn parse(url: &str) -> Result<Self, LoadError> {
        let bad = |problem: &str| LoadError::Url { url: url.to_owned(), problem: problem.to_owned() };
        if !url.contains("://") {
            return Err(bad("missing scheme, write http://"));
        }
        let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported; serve plain http on loopback")),
            Some(other) => return Err(bad(&format!("scheme {other:?} is not supported, only http"))),
            None => return Err(bad("missing scheme, write http://")),
        }
        let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info (user@host) is not supported"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        // The text after the host's last colon: `Authority::port` is `None` for a port past
        // 65535 as for no port, and that must not become port 80.
        let after_host = authority.as_str().rsplit_once(']').map_or(authority.as_str(), |(_, rest)| rest);
        let port = match after_host.rsplit_once(':').map(|(_, p)| p) {
            None | Some("") => 80,
            Some(p) => p.parse::<u16>().map_err(|_| bad(&format!("port {p} is not in 1..=65535")))?,
        };
        if port == 0 {
            return Err(bad("port 0 is not a server port"));
        }
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(Self {
            url: url.to_owned(),
            host: host.to_owned(),
            port,
            authority: authority.as_str().to_owned(),
            path_and_query: if path_and_query.is_empty() { "/".into() } else { path_and_query.into() },
        })
    }

    /// The first address the host resolves to.
    pub async fn resolve(&self) -> Result<SocketAddr, LoadError> {
        let resolve_err =
            |source| LoadError::Resolve { host: format!("{}:{}", self.host, self.port), source };
        let mut addrs =
            tokio::net::lookup_host((self.host.as_str(), self.port)).await.map_err(resolve_err)?;
        addrs.next().ok_or_else(|| resolve_err(std::io::Error::other("no address")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_urls() {
        let cases = [
            ("http://127.0.0.1:8000/correct", "127.0.0.1", 8000, "/correct"),
            ("http://localhost/", "localhost", 80, "/"),
            ("http://localhost", "localhost", 80, "/"),
            ("http://[::1]:9/a?b=1", "::1", 9, "/a?b=1"),
            ("http://[::1]/", "::1", 80, "/"),
            ("http://127.0.0.1:65535/", "127.0.0.1", 65535, "/"),
        ];
        for (url, host, port, path) in cases {
            let t = Target::parse(url).unwrap();
            assert_eq!((t.host.as_str(), t.port, t.path_and_query.as_str()), (host, port, path), "{url}");
        }
    }

    #[test]
    fn rejects_bad_urls_naming_the_flag() {
        let cases = [
            ("https://127.0.0.1/", "https"),
            ("ftp://127.0.0.1/", "scheme"),
            ("127.0.0.1:8000/correct", "scheme"),
            ("http://", ""),
            ("http://u@127.0.0.1/", "user info"),
            ("http://127.0.0.1:0/", "port 0"),
            ("http://127.0.0.1:99999/correct", "port 99999 is not in 1..=65535"),
            ("http://[::1]:65536/", "port 65536 is not in 1..=65535"),
            ("not a url", ""),
        ];
        for (url, needle) in cases {
            let err = Target::parse(url).unwrap_err().to_string();
            assert!(err.starts_with("--url"), "{url}: {err}");
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
