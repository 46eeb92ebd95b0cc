//! The model described: its configuration, parameter count and weight memory, as
//! `servesim model info` prints them (text or JSON).

use super::Model;
use std::fmt::Write as _;
use std::path::Path;

impl Model {
    /// The configuration, parameter count, weight bytes, kernels per token and longest
    /// prompt, as one JSON object.
    pub fn info_json(&self) -> serde_json::Value {
        let c = self.config();
        serde_json::json!({
            "config": c,
            "parameters": c.param_count(),
            "weight_bytes": self.weight_bytes(),
            "kernels_per_token": c.kernels_per_token(),
            "max_prompt_chars": self.max_prompt_chars(),
        })
    }

    /// The same in words, for the model loaded from `dir`.
    pub fn describe(&self, dir: &Path) -> String {
        let c = self.config();
        let (d, f) = (c.d_model, c.d_ff);
        let block = c.param_count_per_block();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Mini-GPT in {} (random weights: a compute load, not a language model)",
            dir.display()
        );
        let _ = writeln!(
            s,
            "  vocab {}, d_model {d}, {} layers × {} heads, d_ff {f}, context {}",
            c.vocab, c.n_layer, c.n_head, c.context
        );
        let _ = writeln!(
            s,
            "  parameters: {} = token embedding {}·{d} (tied LM head) + {} blocks × {block} + final LayerNorm {}",
            c.param_count(),
            c.vocab,
            c.n_layer,
            2 * d
        );
        let _ = writeln!(
            s,
            "  weight memory: {} bytes ({:.1} KiB, f32)",
            self.weight_bytes(),
            self.weight_bytes() as f64 / 1024.0
        );
        let _ = writeln!(s, "  matmul kernels per token: {}", c.kernels_per_token());
        let _ = writeln!(s, "  longest prompt: {} characters", self.max_prompt_chars());
        s
    }
}
