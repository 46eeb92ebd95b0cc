//! Request bodies: a JSON template in which `{i}` becomes the request's index, so requests
//! can differ (`{"sentence": "request {i}", "max_new_tokens": 20}`).

use super::LoadError;
use hyper::body::Bytes;

/// The placeholder replaced by the request index.
pub const INDEX_PLACEHOLDER: &str = "{i}";

/// The default body: the servesim server's `POST /correct` request.
pub const DEFAULT_BODY: &str =
    r#"{"sentence": "the quick brown fox jumps over the lazy dog", "max_new_tokens": 20}"#;

/// A JSON body with optional `{i}` placeholders. Every other brace is literal, so a plain
/// JSON document is a template that renders to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate {
    /// The text between placeholders; `parts.len() - 1` placeholders.
    parts: Vec<String>,
    /// The body, pre-rendered, when there is no placeholder.
    fixed: Option<Bytes>,
}

impl Default for BodyTemplate {
    fn default() -> Self {
        Self::new(DEFAULT_BODY)
    }
}

impl BodyTemplate {
    /// A template from its text. [`BodyTemplate::validate`] checks it renders to JSON.
    pub fn new(text: &str) -> Self {
        let parts: Vec<String> = text.split(INDEX_PLACEHOLDER).map(str::to_owned).collect();
        let fixed = (parts.len() == 1).then(|| Bytes::from(text.to_owned()));
        Self { parts, fixed }
    }

    /// The template's text, placeholders included.
    pub fn text(&self) -> String {
        self.parts.join(INDEX_PLACEHOLDER)
    }

    /// Whether the template has `{i}` placeholders.
    pub fn has_placeholders(&self) -> bool {
        self.fixed.is_none()
    }

    /// The body of request `index`.
    pub fn render(&self, index: u64) -> Bytes {
        if let Some(b) = &self.fixed {
            return b.clone();
        }
        Bytes::from(self.parts.join(&index.to_string()))
    }

    /// Checks that the body of request 0 is valid JSON.
    pub fn validate(&self) -> Result<(), LoadError> {
        serde_json::from_slice::<serde_json::Value>(&self.render(0))
            .map(drop)
            .map_err(|source| LoadError::Body { source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders() {
        let cases = [
            (r#"{"n": {i}}"#, 7, r#"{"n": 7}"#),
            (r#"{"s": "req {i} of {i}"}"#, 12, r#"{"s": "req 12 of 12"}"#),
            (r#"{"a": {"b": 1}}"#, 3, r#"{"a": {"b": 1}}"#),
            ("{i}", 0, "0"),
        ];
        for (text, i, want) in cases {
            let t = BodyTemplate::new(text);
            assert_eq!(t.render(i), Bytes::from(want), "{text}");
            assert_eq!(t.text(), text);
            assert!(t.validate().is_ok(), "{text}");
        }
    }

    #[test]
    fn default_is_the_correct_request() {
        let t = BodyTemplate::default();
        assert!(!t.has_placeholders());
        let v: serde_json::Value = serde_json::from_slice(&t.render(5)).unwrap();
        assert_eq!(v["max_new_tokens"], 20);
    }

    #[test]
    fn rejects_non_json() {
        for text in ["{sentence: x}", "", r#"{"n": {j}}"#] {
            let err = BodyTemplate::new(text).validate().unwrap_err().to_string();
            assert!(err.starts_with("--body"), "{err}");
        }
    }
}
