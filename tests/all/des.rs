//! Tests: des.
