//! What is sent: service-time distributions and the request mix, shared by the simulator
//! (which samples them) and the real backend (which emulates them as busy work).
//!
//! A [`Dist`] is written in a scenario as a number (a constant) or a table, checked when
//! it is read, and drawn from through a [`Sampler`] built once:
//!
//! ```
//! use rand::SeedableRng;
//! use rand_xoshiro::Xoshiro256PlusPlus;
//! use servesim::workload::Dist;
//!
//! /// The mean of 100,000 draws lies within this relative error of the distribution's
//! /// (about four standard errors here).
//! const MEAN_TOL: f64 = 0.01;
//! /// Moments are exact arithmetic on the parameters, up to rounding.
//! const MOMENT_TOL: f64 = 1e-12;
//!
//! #[derive(Debug, serde::Deserialize)]
//! struct Cost {
//!     request_free_ms: Dist,
//! }
//!
//! // 0.5 ms always, plus a gamma-distributed 1.5 ms on average (cv = 1).
//! let text = r#"
//!     request_free_ms = { dist = "sum", of = [0.5, { dist = "gamma", mean = 1.5, cv = 1.0 }] }
//! "#;
//! let d = toml::from_str::<Cost>(text)?.request_free_ms;
//! assert!((d.mean() - 2.0).abs() < MOMENT_TOL);
//! // Independent parts: variances add, here only the gamma's 1.5², over the mean² 4.
//! assert!((d.scv() - 2.25 / 4.0).abs() < MOMENT_TOL);
//!
//! let sampler = d.sampler();
//! let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
//! let n = 100_000;
//! let draws: Vec<f64> = (0..n).map(|_| sampler.sample(&mut rng)).collect();
//! assert!(draws.iter().all(|&x| x >= 0.5));
//! let mean = draws.iter().sum::<f64>() / n as f64;
//! assert!((mean - 2.0).abs() / 2.0 < MEAN_TOL, "{mean}");
//!
//! // A parameter out of range fails when the scenario is read, saying what it must be.
//! let err = toml::from_str::<Cost>(r#"request_free_ms = { dist = "exponential", mean = 0 }"#);
//! assert!(err.unwrap_err().to_string().contains("exponential needs mean > 0"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dist;

pub use dist::{Dist, DistError, Sampler, read_samples};
