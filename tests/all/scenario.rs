//! Tests: scenario.
