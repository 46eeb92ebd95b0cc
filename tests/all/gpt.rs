//! Tests: gpt.
