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

/// Most parameters a model may have: 2^30, 4 GiB of `f32` weights — far beyond what one
/// CPU serves at interactive speed, and small enough that a mistyped dimension is refused
/// before anything is allocated or read.
pub const MAX_PARAMS: usize = 1 << 30;

impl Config {
    /// Parameters: the token embedding (tied with the LM head), the blocks and the final
    /// LayerNorm; positions are sinusoidal and have none. Default: 56·64 + 2·49,984 + 128
    /// = 103,680.
    pub fn param_count(&self) -> usize {
        self.vocab * self.d_model + self.n_layer * self.param_count_per_block() + 2 * self.d_model
    }

    /// [`Config::param_count`], or `None` where it would overflow `usize`.
    pub fn checked_param_count(&self) -> Option<usize> {
        let [v, d, l, f] = [self.vocab, self.d_model, self.n_layer, self.d_ff];
        let mul = |xs: &[usize]| xs.iter().try_fold(1usize, |p, &x| p.checked_mul(x));
        let add = |xs: &[usize]| xs.iter().try_fold(0usize, |s, &x| s.checked_add(x));
        // As param_count_per_block: LayerNorms 4d, QKV 3d² + 3d, output d² + d, MLP 2df + f + d.
        let block = add(&[mul(&[4, d, d])?, mul(&[2, d, f])?, mul(&[9, d])?, f])?;
        add(&[mul(&[v, d])?, mul(&[l, block])?, mul(&[2, d])?])
    }

    /// Parameters of one block: 2 LayerNorms (gain, bias), the QKV and output projections
    /// and the MLP, all with biases. Default: 256 + 12,480 + 4,160 + 16,640 + 16,448 = 49,984.
    pub fn param_count_per_block(&self) -> usize {
        let (d, f) = (self.d_model, self.d_ff);
        2 * (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d)
    }

    /// Matmul kernels per forward pass, so per generated token — the points where the lock
    /// is released: per block QKV, attention scores, attention values, output projection,
    /// MLP in, MLP out; then the LM head. Default: 13.
    pub fn kernels_per_token(&self) -> usize {
        6 * self.n_layer + 1
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_head
    }

    /// Checks the dimensions; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<(), GptError> {
        let bad = |m: String| Err(GptError::Config(m));
        let min_vocab = super::tokenizer::Tokenizer::SIZE;
        if self.vocab < min_vocab {
            return bad(format!("vocab must be ≥ {min_vocab} (the tokenizer's symbols), got {}", self.vocab));
        }
        for (name, v) in [
            ("d_model", self.d_model),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("d_ff", self.d_ff),
        ] {
            if v == 0 {
                return bad(format!("{name} must be ≥ 1, got 0"));
            }
        }
        match self.checked_param_count() {
            Some(n) if n <= MAX_PARAMS => {}
            n => {
                let n = n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
                return bad(format!(
                    "these dimensions make {n} parameters; at most {MAX_PARAMS} (4 GiB of f32 \
                     weights) are accepted: lower d_model, d_ff, n_layer or vocab"
                ));
            }
        }
        if self.d_model % self.n_head != 0 {
            return bad(format!("n_head ({}) must divide d_model ({})", self.n_head, self.d_model));
        }
        if !(4..=1 << 16).contains(&self.context) {
            return bad(format!("context must be in 4..=65536, got {}", self.context));
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
        assert_eq!(c.param_count_per_block(), 49_984);
        assert_eq!(c.kernels_per_token(), 13);
        assert!(c.validate().is_ok());
        let err = |c: Config| c.validate().unwrap_err().to_string();
        assert!(err(Config { n_head: 3, ..c }).contains("n_head (3) must divide d_model (64)"));
        assert!(err(Config { n_layer: 0, ..c }).contains("n_layer must be ≥ 1"));
        assert!(err(Config { context: 2, ..c }).contains("context must be in 4..=65536, got 2"));
        assert!(err(Config { vocab: 10, ..c }).contains("vocab must be ≥ 56"));
    }

    #[test]
    fn dimensions_too_large_are_refused_before_anything_is_built() {
        let c = Config::default();
        assert_eq!(c.checked_param_count(), Some(c.param_count()));
        let err = |c: Config| c.validate().unwrap_err().to_string();
        // A mistyped layer count: 5 × 10^12 parameters, which would otherwise be built tensor
        // by tensor.
        let e = err(Config { n_layer: 100_000_000, ..c });
        assert!(
            e.contains("4998400003712 parameters") && e.contains("lower d_model, d_ff, n_layer or vocab"),
            "{e}"
        );
        // Dimensions whose product overflows are refused, not wrapped.
        let e = err(Config { d_model: 1 << 40, n_head: 1, ..c });
        assert!(e.contains("more than 2^64 parameters"), "{e}");
        // The largest accepted model is accepted.
        let wide = Config { vocab: 56, d_model: 1024, n_layer: 85, n_head: 16, d_ff: 4096, context: 128 };
        assert!(wide.param_count() <= MAX_PARAMS && wide.validate().is_ok(), "{}", wide.param_count());
    }
}
