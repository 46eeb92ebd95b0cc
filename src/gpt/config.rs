//! Model dimensions.

use super::GptError;
use serde::{Deserialize, Serialize};

/// The transformer's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Vocabulary size (special tokens included).
    pub vocab: usize,
    /// Model width.
    pub d_model: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads (must divide `d_model`).
    pub n_head: usize,
    /// MLP hidden width.
    pub d_ff: usize,
    /// Context length: most tokens a sequence may hold.
    pub context: usize,
}

impl Default for Config {
    /// The lesson's model: d = 64, 2 layers of 4 heads, MLP 256, 56 symbols, context 128 —
    /// exactly 103,680 parameters.
    fn default() -> Self {
        Self { vocab: 56, d_model: 64, n_layer: 2, n_head: 4, d_ff: 256, context: 128 }
    }
}

impl Config {
    /// Parameters: token embedding (tied with the LM head), per block 2 LayerNorms, QKV and
    /// output projections and the MLP, all with biases, and the final LayerNorm. Positions
    /// are sinusoidal and have none. Default: 56·64 + 2·49,984 + 128 = 103,680.
    pub fn param_count(&self) -> usize {
        let (d, f) = (self.d_model, self.d_ff);
        let block = 2 * (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d);
        self.vocab * d + self.n_layer * block + 2 * d
    }

    /// Matmul kernels per generated token — the points where the lock is released: per block
    /// QKV, attention scores, attention values, output projection, MLP in, MLP out; then the
    /// LM head.
    pub fn kernels_per_token(&self) -> usize {
        6 * self.n_layer + 1
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_head
    }

    /// Checks the dimensions.
    pub fn validate(&self) -> Result<(), GptError> {
        let bad = |m: String| Err(GptError::Config(m));
        if self.vocab < super::tokenizer::Tokenizer::SIZE {
            return bad(format!("vocab must be ≥ {} (the tokenizer's symbols), got {}", super::tokenizer::Tokenizer::SIZE, self.vocab));
        }
        if self.d_model == 0 || self.n_head == 0 || self.d_model % self.n_head != 0 {
            return bad(format!("n_head ({}) must divide d_model ({})", self.n_head, self.d_model));
        }
        if self.n_layer == 0 || self.d_ff == 0 || self.context < 4 || self.context > 1 << 16 {
            return bad("n_layer and d_ff must be ≥ 1 and context in 4..=65536".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lessons_model_has_103680_parameters() {
        let c = Config::default();
        assert_eq!(c.param_count(), 103_680);
        assert_eq!(c.kernels_per_token(), 13);
        assert!(c.validate().is_ok());
        assert!(Config { n_head: 3, ..c }.validate().is_err());
    }
}
