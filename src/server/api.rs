//! The `/correct` API: the request body, its validation, and JSON errors.
//!
//! ```text
//! POST /correct  {"sentence": "…", "max_new_tokens": 20, "stop_at_eos": false}
//!   200 {"correction": "…", "tokens": 20, "timing": {…}}
//!   400 body is not JSON / not an object          413 body larger than the limit
//!   415 a Content-Type other than application/json (or …+json); none is read as JSON
//!   422 a field is missing, unknown, of the wrong type or out of range
//!   503 the worker's admission queue is full (Retry-After)
//!   504 the request timeout passed: while queued, or while generating (stopped at a token
//!       boundary; the body adds "tokens", those generated before it stopped)
//! ```
//!
//! Every error — on every route, a 404 for an unknown route and a 405 for a wrong method
//! included — is `{"error": "<what is wrong and the rule>", "field": "<name>" | null}`:
//! a 408 for a body that did not arrive in time, a 414 or 431 for an over-long target or
//! head too. The only exceptions are the answers hyper's HTTP parser gives, with an empty
//! body, to a head it refuses before any handler runs (400 unparseable, 431 past its own
//! limits; see `conn`).
//! Every `/correct` response carries the answering worker's process id in `x-worker-pid`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A validated `/correct` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectRequest {
    /// The sentence to correct.
    pub sentence: String,
    /// Tokens to generate: exactly this many, unless `stop_at_eos`.
    pub max_new_tokens: u32,
    /// Stop early at `<eos>`. By default, false: a known amount of work per request.
    pub stop_at_eos: bool,
}

/// The body of a 200 answer to `/correct`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrectResponse {
    /// The generated text.
    pub correction: String,
    /// Tokens generated.
    pub tokens: u32,
    /// Where the request's time went.
    pub timing: Timing,
}

/// Where one request's time went [ms, except counts]. Waits and holds sum over the event
/// loop's and the handler's share of the request.
///
/// With batching, the handler's figures (`lock_*`, `compute_ms`, `matmul_ms`,
/// `model_other_ms`, `busy_*`) are those of the batched steps the request was part of —
/// the time it lived through, shared with the rest of its batch — and `cpu_ms` is its
/// share of their CPU time (each step's divided by the batch size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Arrival to the event loop starting on it; with batching, arrival to joining a batch
    /// (so it includes `thread_wait_ms`). Arrival is the `x-request-start` header (µs since
    /// the UNIX epoch, optionally `t=`-prefixed, at most 60 s old) when the server trusts it
    /// (`--trust-request-start`, behind a proxy that sets it), else the moment the loop
    /// began reading the request — which hides time spent in the socket while the loop was
    /// busy.
    pub queue_wait_ms: f64,
    /// Dispatch to a pool thread starting the handler (0 in `async-blocking`); with
    /// batching, dispatch to joining a batch.
    pub thread_wait_ms: f64,
    /// Waiting for the lock, all acquisitions.
    pub lock_wait_ms: f64,
    /// Holding the lock.
    pub lock_held_ms: f64,
    /// The handler's wall time, lock waits excluded.
    pub compute_ms: f64,
    /// Arrival to the response being ready to send.
    pub total_ms: f64,
    /// Inside matmul kernels: the dense layers, the LM head and attention's q·Kᵀ and p·V.
    pub matmul_ms: f64,
    /// The model's compute outside kernels.
    pub model_other_ms: f64,
    /// Emulated handler work holding the lock (wall time).
    pub busy_locked_ms: f64,
    /// Emulated handler work without the lock (wall time).
    pub busy_free_ms: f64,
    /// Emulated event-loop work, `cost.loop_*` (wall time, lock waits excluded).
    pub loop_busy_ms: f64,
    /// Tokens generated.
    pub tokens: u32,
    /// Matmul kernels per token: the lock's release points per token.
    pub kernels_per_token: u32,
    /// CPU time of the thread that ran the handler, during the handler (with batching, the
    /// request's share of the scheduler's).
    pub cpu_ms: f64,
}

/// What the model accepts, for validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Context length (tokens): prompt tokens (`<bos>` and `<sep>` included) plus new
    /// tokens must fit.
    pub context: u32,
}

impl Rules {
    /// Most prompt tokens a sentence may have (the context minus `<bos>` and `<sep>`).
    pub fn max_sentence_tokens(&self) -> u32 {
        self.context.saturating_sub(2)
    }

    /// The documented maximum of `max_new_tokens`: what a one-character sentence leaves.
    pub fn max_new_tokens(&self) -> u32 {
        self.context.saturating_sub(3)
    }
}

/// An error response: status, message, offending field, and a `Retry-After` for 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What is wrong.
    pub message: String,
    /// The request field at fault, if one is (an unknown field is named as sent).
    pub field: Option<Cow<'static, str>>,
    /// Seconds to wait before retrying (503 only).
    pub retry_after_s: Option<u32>,
    /// Tokens generated before the timeout stopped the request (504 while generating).
    pub tokens: Option<u32>,
}

/// The JSON body of every error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong.
    pub error: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
    /// Tokens generated before the request timeout stopped the request: only on a 504 for
    /// a request stopped while generating (absent from every other error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u32>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), field: None, retry_after_s: None, tokens: None }
    }

    /// A 422 about `field`.
    pub fn field(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, message) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: self.message, field: self.field.map(Cow::into_owned), tokens: self.tokens };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// Longest stretch of a header value quoted in an error (characters).
const QUOTE_CHARS: usize = 60;

/// Checks that a `Content-Type` announces JSON: `application/json` or any `…/…+json`, with
/// any parameters, in any case. A request without one is read as JSON (as FastAPI reads
/// it); one that announces another type gets 415.
pub fn json_content_type(value: Option<&HeaderValue>) -> Result<(), ApiError> {
    let Some(value) = value else { return Ok(()) };
    let media = value.to_str().ok().and_then(|v| v.split(';').next()).map(|m| m.trim().to_ascii_lowercase());
    if media.is_some_and(|m| m == "application/json" || (m.contains('/') && m.ends_with("+json"))) {
        return Ok(());
    }
    let shown: String = String::from_utf8_lossy(value.as_bytes()).chars().take(QUOTE_CHARS).collect();
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Content-Type {shown:?} is not JSON; send the body as application/json"),
    ))
}

const FIELDS: [&str; 3] = ["sentence", "max_new_tokens", "stop_at_eos"];

/// Parses and validates a `/correct` body; a request without `max_new_tokens` gets
/// `default_tokens`, lowered to what the context leaves after its sentence.
pub fn parse(body: &[u8], rules: &Rules, default_tokens: u32) -> Result<CorrectRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "body must be a JSON object with a \"sentence\""));
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let message = format!("unknown field `{k}`; expected {}", FIELDS.join(", "));
        return Err(ApiError::field(k.clone(), message));
    }
    let (sentence, tokens) = sentence(&obj, rules)?;
    let max_new_tokens = max_new_tokens(&obj, rules, tokens, default_tokens)?;
    let stop_at_eos = match obj.get("stop_at_eos") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::field("stop_at_eos", "must be true or false")),
    };
    Ok(CorrectRequest { sentence, max_new_tokens, stop_at_eos })
}

/// The sentence and its token count.
fn sentence(obj: &Map<String, Value>, rules: &Rules) -> Result<(String, u32), ApiError> {
    let s = match obj.get("sentence") {
        None | Some(Value::Null) => return Err(ApiError::field("sentence", "is required")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(ApiError::field("sentence", "must be a string")),
    };
    if s.trim().is_empty() {
        return Err(ApiError::field("sentence", "is empty: give at least one non-blank character"));
    }
    let tokens = prompt_tokens(s);
    let max = rules.max_sentence_tokens();
    if tokens > max as usize {
        return Err(ApiError::field(
            "sentence",
            format!("has {tokens} tokens; the model's context holds at most {max}"),
        ));
    }
    Ok((s.clone(), tokens as u32))
}

/// Tokens of a sentence, as the model's tokenizer counts them.
fn prompt_tokens(s: &str) -> usize {
    crate::gpt::Tokenizer.encode(s).len()
}

fn max_new_tokens(
    obj: &Map<String, Value>,
    rules: &Rules,
    sentence_tokens: u32,
    default: u32,
) -> Result<u32, ApiError> {
    let max = rules.max_new_tokens();
    let room = rules.context.saturating_sub(sentence_tokens + 2);
    let range = |got: &dyn std::fmt::Display| {
        ApiError::field("max_new_tokens", format!("must be a whole number in [0, {max}], got {got}"))
    };
    let n = match obj.get("max_new_tokens") {
        None | Some(Value::Null) => return Ok(default.min(room)),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| range(n))?,
        Some(other) => {
            let kind = match other {
                Value::String(_) => "a string",
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "an array",
                _ => "an object",
            };
            return Err(range(&kind));
        }
    };
    if n > u64::from(max) {
        return Err(range(&n));
    }
    if n > u64::from(room) {
        return Err(ApiError::field(
            "max_new_tokens",
            format!(
                "{n} does not fit: the sentence takes {} of the model's {} context tokens, \
                 leaving {room}",
                rules.context - room,
                rules.context
            ),
        ));
    }
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules { context: 128 };

    fn parse(body: &[u8], rules: &Rules) -> Result<CorrectRequest, ApiError> {
        super::parse(body, rules, 20)
    }

    #[test]
    fn valid_bodies_parse_with_defaults() {
        let r = parse(br#"{"sentence": "hello"}"#, &RULES).unwrap();
        assert_eq!(r, CorrectRequest { sentence: "hello".into(), max_new_tokens: 20, stop_at_eos: false });
        let r = parse(br#"{"sentence": "hi", "max_new_tokens": 0, "stop_at_eos": true}"#, &RULES).unwrap();
        assert_eq!((r.max_new_tokens, r.stop_at_eos), (0, true));
        let long = "x".repeat(120);
        let r = parse(format!(r#"{{"sentence": "{long}"}}"#).as_bytes(), &RULES).unwrap();
        assert_eq!(r.max_new_tokens, 6, "the default is lowered to what the context leaves");
    }

    #[test]
    fn only_a_json_content_type_or_none_is_read() {
        for ok in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some("application/problem+json"),
        ] {
            assert!(json_content_type(ok.map(HeaderValue::from_static).as_ref()).is_ok(), "{ok:?}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "json", "+json", ""] {
            let e = json_content_type(Some(&HeaderValue::from_static(bad))).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
            assert!(e.message.contains("application/json"), "{bad}: {e:?}");
        }
        let binary = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        assert_eq!(json_content_type(Some(&binary)).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn every_bad_input_names_its_field_and_status() {
        let long = format!(r#"{{"sentence": "{}"}}"#, "x".repeat(127));
        let fits = format!(r#"{{"sentence": "{}", "max_new_tokens": 10}}"#, "x".repeat(120));
        let cases: [(&[u8], u16, Option<&str>); 14] = [
            (b"{not json", 400, None),
            (b"[1, 2]", 400, None),
            (b"{}", 422, Some("sentence")),
            (br#"{"sentence": null}"#, 422, Some("sentence")),
            (br#"{"sentence": 5}"#, 422, Some("sentence")),
            (br#"{"sentence": ""}"#, 422, Some("sentence")),
            (br#"{"sentence": "   "}"#, 422, Some("sentence")),
            (long.as_bytes(), 422, Some("sentence")),
            (br#"{"sentence": "a", "max_new_tokens": -1}"#, 422, Some("max_new_tokens")),
            (br#"{"sentence": "a", "max_new_tokens": 2.5}"#, 422, Some("max_new_tokens")),
            (br#"{"sentence": "a", "max_new_tokens": "3"}"#, 422, Some("max_new_tokens")),
            (br#"{"sentence": "a", "max_new_tokens": 126}"#, 422, Some("max_new_tokens")),
            (fits.as_bytes(), 422, Some("max_new_tokens")),
            (br#"{"sentence": "a", "stop_at_eos": 1}"#, 422, Some("stop_at_eos")),
        ];
        for (body, status, field) in cases {
            let e = parse(body, &RULES).unwrap_err();
            let text = String::from_utf8_lossy(body);
            assert_eq!(e.status.as_u16(), status, "{text}: {e:?}");
            assert_eq!(e.field.as_deref(), field, "{text}: {e:?}");
        }
        for (body, got) in [
            (&br#"{"sentence": "a", "max_new_tokens": -1}"#[..], "got -1"),
            (br#"{"sentence": "a", "max_new_tokens": 99999999999999999999}"#, "got 1e+20"),
            (br#"{"sentence": "a", "max_new_tokens": 126}"#, "got 126"),
            (br#"{"sentence": "a", "max_new_tokens": "3"}"#, "got a string"),
        ] {
            let e = parse(body, &RULES).unwrap_err();
            let want = format!("must be a whole number in [0, 125], {got}");
            assert_eq!(e.message, want, "{}", String::from_utf8_lossy(body));
        }
        let e = parse(br#"{"sentence": "a", "max_tokens": 3}"#, &RULES).unwrap_err();
        assert_eq!((e.status.as_u16(), e.field.as_deref()), (422, Some("max_tokens")), "{e:?}");
        assert!(e.message.contains("max_new_tokens"), "the message lists the known fields: {e:?}");
    }
}
