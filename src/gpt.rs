//! The Mini-GPT: the lesson's 103,680-parameter decoder-only transformer, in ndarray.
//!
//! It is the real compute the real server runs, so it is a faithful small transformer:
//! a character tokenizer, token embeddings and fixed sinusoidal positions, pre-LayerNorm
//! blocks with causal multi-head attention and a GELU MLP, a final LayerNorm and an LM head
//! tied to the token embedding. Its weights are random (seeded), so its text is not
//! meaningful: it is a realistic compute load.
//!
//! ```text
//!  "<bos> the sentence <sep>" ─► prefill (all prompt positions at once, fills the KV cache)
//!                              ─► step, step, … (one token each, greedy)   ─► correction
//!  step_batch: B sequences of different lengths advance one token together
//! ```
//!
//! Every matmul is bracketed by [`KernelHooks`] calls: the server releases its GIL-like lock
//! there, as NumPy releases the GIL only inside its kernels.
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
mod kernels;
mod simd;
mod tokenizer;
mod weights;

pub use config::Config;
pub use decode::{Correction, Sequence, Timing};
pub use error::GptError;
pub use kernels::{KernelHooks, NoHooks, TimingHooks};
pub use tokenizer::{BOS, EOS, PAD, SEP, Tokenizer, UNK};
pub use weights::Model;
