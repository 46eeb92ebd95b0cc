//! The Mini-GPT: the lesson's 103,680-parameter decoder-only transformer, in ndarray.
//!
//! It is the real compute the real server runs, so it is a faithful small transformer:
//! a character tokenizer, token embeddings and fixed sinusoidal positions, pre-LayerNorm
//! blocks with causal multi-head attention and a GELU MLP, a final LayerNorm and an LM head
//! tied to the token embedding. Its weights are random (seeded), so its text is not
//! meaningful: it is a realistic compute load.
//!
//! ```text
//!  "<bos> sentence <sep>" ─► start: prefill (all prompt positions at once, fills the KV cache)
//!                         ─► step, step, … (one greedy token each, one row per pass)
//!  step_batch: B sequences of different lengths advance one token in one pass
//!              (each dense layer one matmul of B rows; attention per sequence)
//! ```
//!
//! The [`Model`] is immutable and shared (`Arc<Model>`, `&self` everywhere); a
//! [`Sequence`] holds one request's tokens, KV cache and scratch buffers, so a single step
//! allocates nothing. Every matmul is bracketed by [`KernelHooks`] calls — the server
//! releases its GIL-like lock there, as NumPy releases the GIL only inside its kernels — and
//! every forward pass makes [`Config::kernels_per_token`] of them, whatever the batch.
//!
//! The inner loops are hand-blocked for AVX2 + FMA (chosen at run time; plain code
//! otherwise) and single-threaded: one request uses one core, as in NumPy without threaded
//! BLAS.
//!
//! ```
//! use servesim::gpt::{Config, Model};
//!
//! let model = Model::init(&Config::default(), 7);
//! assert_eq!(model.config().param_count(), 103_680);
//! let out = model.correct("the quick brown fox", 5)?;
//! assert_eq!(out.prompt_tokens, 21); // <bos> + 19 characters + <sep>
//! assert!(out.new_tokens <= 5);
//! # Ok::<(), servesim::gpt::GptError>(())
//! ```

mod batch;
mod config;
mod decode;
mod error;
mod files;
mod forward;
mod hooks;
mod info;
mod kernels;
mod packed;
mod simd;
mod tokenizer;
mod weights;

pub use batch::Workspace;
pub use config::Config;
pub use decode::{Correction, Sequence, Timing};
pub use error::GptError;
pub use hooks::{KernelHooks, NoHooks, TimingHooks};
pub use tokenizer::{BOS, EOS, PAD, SEP, Tokenizer, UNK};
pub use weights::Model;
