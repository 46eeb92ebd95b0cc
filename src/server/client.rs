//! A small blocking HTTP/1.1 client for the server's own endpoints (`/healthz`, `/stats`)
//! and for tests — not the load generator. Keep-alive, `Content-Length` and chunked bodies.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> io::Result<T> {
        serde_json::from_slice(&self.body).map_err(io::Error::other)
    }
}

/// One keep-alive connection. A request on a connection the server has closed while it was
/// idle (its keep-alive timeout) is sent again once on a new connection: a server closes
/// only connections with no request in progress, so the first send was never read.
/// A process that dies closes its connections with their requests in progress too: a
/// client counting what a server lost turns this off ([`Connection::resend_unanswered`]).
pub struct Connection {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
    timeout: Duration,
    /// Whether a response has come on it: only then can the server have closed it as idle.
    used: bool,
    /// Whether to send a request again after such a close.
    resend: bool,
}

/// The error of a connection closed before any byte of the response.
const UNANSWERED: &str = "connection closed before a response";

/// Whether `e` says the server closed the connection before answering: reset, broken, or
/// closed before the response's first line.
fn closed_unanswered(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        || (e.kind() == io::ErrorKind::ConnectionAborted && e.to_string() == UNANSWERED)
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Connection {
    /// Connects to `addr`; every read and write gives up after `timeout`.
    pub fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Connection> {
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(Connection { reader: BufReader::new(s), addr, timeout, used: false, resend: true })
    }

    /// Whether a request on a connection closed before any byte of its response, after an
    /// earlier response on it, is sent again once on a new connection. By default, true.
    pub fn resend_unanswered(mut self, on: bool) -> Self {
        self.resend = on;
        self
    }

    /// Sends a request with an optional JSON body and extra headers; reads the response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> io::Result<HttpResponse> {
        match self.attempt(method, path, body, headers) {
            Err(e) if self.resend && self.used && closed_unanswered(&e) => {
                *self = Connection::open(self.addr, self.timeout)?;
                self.attempt(method, path, body, headers)
            }
            r => r,
        }
    }

    fn attempt(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> io::Result<HttpResponse> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes())?;
        if let Some(b) = body {
            s.write_all(b)?;
        }
        s.flush()?;
        let first = self.line().map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(io::ErrorKind::ConnectionAborted, UNANSWERED),
            _ => e,
        })?;
        let r = self.read_response(first)?;
        self.used = true;
        Ok(r)
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        Ok(line.trim_end().to_owned())
    }

    fn read_response(&mut self, status_line: String) -> io::Result<HttpResponse> {
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line `{status_line}`")))?;
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').ok_or_else(|| bad(format!("bad header `{l}`")))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut r = HttpResponse { status, headers, body: Vec::new() };
        if r.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            r.body = self.chunked()?;
        } else {
            let n: usize = r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            r.body = vec![0; n];
            self.reader.read_exact(&mut r.body)?;
        }
        Ok(r)
    }

    fn chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size = self.line()?;
            let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size `{size}`")))?;
            if n == 0 {
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            let at = body.len();
            body.resize(at + n, 0);
            self.reader.read_exact(&mut body[at..])?;
            self.line()?;
        }
    }
}

/// One `GET` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<HttpResponse> {
    Connection::open(addr, timeout)?.request("GET", path, None, &[])
}

/// One `POST` of a JSON body on a fresh connection.
pub fn post_json(addr: SocketAddr, path: &str, body: &[u8], timeout: Duration) -> io::Result<HttpResponse> {
    Connection::open(addr, timeout)?.request("POST", path, Some(body), &[])
}
