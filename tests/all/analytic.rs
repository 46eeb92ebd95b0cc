//! Tests: analytic.
