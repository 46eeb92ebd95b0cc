//! One row per request: when it was meant to go, when it went, when it ended, and how.

use serde::Serialize;
use std::io::Write;

/// Why a request failed. A failed request is recorded, never raised: the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No connection could be opened (refused, unreachable, handshake failed or timed out).
    Connect,
    /// No complete response within the per-request timeout.
    Timeout,
    /// The response's status was 4xx.
    #[serde(rename = "status_4xx")]
    Status4xx,
    /// The response's status was 5xx.
    #[serde(rename = "status_5xx")]
    Status5xx,
    /// The response's status was 1xx or 3xx.
    StatusOther,
    /// The connection broke while sending or receiving.
    Io,
    /// The response was not valid HTTP/1.1.
    Protocol,
    /// The run's hard stop came before the response.
    Cancelled,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Status4xx,
        ErrorKind::Status5xx,
        ErrorKind::StatusOther,
        ErrorKind::Io,
        ErrorKind::Protocol,
        ErrorKind::Cancelled,
    ];

    /// The name used in JSON, CSV and tables, e.g. `status_5xx`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::StatusOther => "status_other",
            ErrorKind::Io => "io",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// The error class of an HTTP status, or `None` for 2xx.
    pub fn of_status(status: u16) -> Option<ErrorKind> {
        match status {
            200..=299 => None,
            400..=499 => Some(ErrorKind::Status4xx),
            500..=599 => Some(ErrorKind::Status5xx),
            _ => Some(ErrorKind::StatusOther),
        }
    }
}

/// One request. Times are microseconds from the run's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    /// Request number, from 0, in the order requests were scheduled (open loop) or claimed
    /// by users (closed loop); `{i}` in the body template.
    pub index: u64,
    /// When the request was meant to be sent (µs): its scheduled time in the open loop and
    /// burst, the moment its user was ready in the closed loop.
    pub intended_us: u64,
    /// When it was handed to a ready connection (µs); `None` if no connection was had.
    pub sent_us: Option<u64>,
    /// When its outcome was known: last body byte, error or timeout (µs).
    pub done_us: u64,
    /// The response's status, if a response head arrived.
    pub status: Option<u16>,
    /// Why it failed, or `None` for a complete 2xx response.
    pub error: Option<ErrorKind>,
    /// The response body (lossy UTF-8), when the plan captures bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The response's `Server-Timing` header, when the plan captures it and it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_timing: Option<String>,
    /// The process that answered, as the response's [`PID_HEADER`](super::PID_HEADER)
    /// names it (any status), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pid: Option<u32>,
}

impl RequestRecord {
    /// Whether a complete 2xx response arrived.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// Latency from the intended send time to the outcome (µs).
    pub fn latency_us(&self) -> u64 {
        self.done_us.saturating_sub(self.intended_us)
    }

    /// Service time from the actual send to the outcome (µs), if it was sent.
    pub fn service_us(&self) -> Option<u64> {
        self.sent_us.map(|s| self.done_us.saturating_sub(s))
    }

    /// How late the send was against its intended time (µs), if it was sent.
    pub fn send_lag_us(&self) -> Option<u64> {
        self.sent_us.map(|s| s.saturating_sub(self.intended_us))
    }
}

/// Header of [`write_csv`].
pub const CSV_HEADER: [&str; 5] = ["intended_us", "sent_us", "done_us", "status", "error"];

/// Writes one CSV row per record: `intended_us,sent_us,done_us,status,error`
/// (empty cells where a request was never sent, got no status, or did not fail).
pub fn write_csv<W: Write>(records: &[RequestRecord], out: W) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for r in records {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        w.write_record([
            r.intended_us.to_string(),
            opt(r.sent_us),
            r.done_us.to_string(),
            opt(r.status.map(u64::from)),
            r.error.map(ErrorKind::name).unwrap_or_default().to_owned(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        let cases = [
            (200, None),
            (204, None),
            (101, Some(ErrorKind::StatusOther)),
            (302, Some(ErrorKind::StatusOther)),
            (404, Some(ErrorKind::Status4xx)),
            (503, Some(ErrorKind::Status5xx)),
        ];
        for (status, want) in cases {
            assert_eq!(ErrorKind::of_status(status), want, "status {status}");
        }
    }

    #[test]
    fn names_match_serde() {
        for k in ErrorKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }

    #[test]
    fn csv_has_empty_cells_for_missing_values() {
        let recs = [
            RequestRecord {
                index: 0,
                intended_us: 10,
                sent_us: Some(12),
                done_us: 90,
                status: Some(200),
                error: None,
                body: None,
                server_timing: None,
                worker_pid: None,
            },
            RequestRecord {
                index: 1,
                intended_us: 20,
                sent_us: None,
                done_us: 25,
                status: None,
                error: Some(ErrorKind::Connect),
                body: None,
                server_timing: None,
                worker_pid: None,
            },
        ];
        let mut buf = Vec::new();
        write_csv(&recs, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text, "intended_us,sent_us,done_us,status,error\n10,12,90,200,\n20,,25,,connect\n");
    }
}
