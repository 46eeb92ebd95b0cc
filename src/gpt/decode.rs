//! Decoding: prefill, one greedy step with the KV cache, and `correct`.

use super::kernels::{
    KernelHooks, NoHooks, TimingHooks, add_assign, argmax, gelu, layer_norm, linear, matvec_acc, softmax,
};
use super::tokenizer::{BOS, EOS, SEP, Tokenizer};
use super::{GptError, Model};
use ndarray::{Array1, Array2, Array3, s};
use std::time::{Duration, Instant};

/// One sequence being decoded: its tokens and its KV cache.
#[derive(Debug, Clone)]
pub struct Sequence {
    tokens: Vec<u32>,
    prompt_len: usize,
    max_new: usize,
    requested_new: usize,
    stop_at_eos: bool,
    generated: usize,
    finished: bool,
    /// Keys per layer, transposed: (head, head_dim, context), so a head's scores over all
    /// positions are one matrix-vector product.
    k: Vec<Array3<f32>>,
    /// Values per layer: (head, context, head_dim).
    v: Vec<Array3<f32>>,
    /// Logits of the last position forwarded.
    logits: Array1<f32>,
}

impl Sequence {
    /// Whether no more tokens will be generated.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Prompt tokens, `<bos>` and `<sep>` included.
    pub fn prompt_tokens(&self) -> usize {
        self.prompt_len
    }

    /// Tokens generated so far.
    pub fn new_tokens(&self) -> usize {
        self.generated
    }

    /// Most tokens this sequence will generate (the request, clamped to the context).
    pub fn max_new_tokens(&self) -> usize {
        self.max_new
    }

    /// Whether the request asked for more tokens than the context leaves room for.
    pub fn clamped(&self) -> bool {
        self.requested_new > self.max_new
    }

    /// Every token: `<bos>`, the prompt, `<sep>`, then the generated ones.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The generated text so far (special tokens dropped).
    pub fn text(&self) -> String {
        Tokenizer.decode(&self.tokens[self.prompt_len..])
    }

    /// Logits of the last forwarded position.
    pub fn logits(&self) -> &Array1<f32> {
        &self.logits
    }

    /// Emits the greedy token; returns whether it needs a forward pass (to produce the
    /// next token's logits).
    pub(crate) fn emit(&mut self) -> bool {
        if self.finished {
            return false;
        }
        let tok = argmax(self.logits.view());
        self.tokens.push(tok);
        self.generated += 1;
        self.finished = self.generated >= self.max_new || (self.stop_at_eos && tok == EOS);
        !self.finished
    }

    pub(crate) fn logits_mut(&mut self) -> &mut Array1<f32> {
        &mut self.logits
    }

    /// Position of the last token.
    pub(crate) fn last(&self) -> (u32, usize) {
        (*self.tokens.last().expect("never empty"), self.tokens.len() - 1)
    }
}

/// Where the time of a request went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Inside matmul kernels.
    pub matmul: Duration,
    /// Everything else: tokenizing, LayerNorm, attention softmax, GELU, bookkeeping.
    pub other: Duration,
}

/// The result of [`Model::correct`].
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    /// Generated text.
    pub text: String,
    /// Prompt tokens, `<bos>` and `<sep>` included.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub new_tokens: usize,
    /// Whether `max_new_tokens` was lowered to fit the context.
    pub clamped: bool,
    /// Time inside and outside the matmul kernels.
    pub timing: Timing,
}

/// One row of a forward pass: a token at a position of a sequence.
pub(crate) struct Row {
    pub(crate) token: u32,
    pub(crate) pos: usize,
    pub(crate) seq: usize,
}

impl Model {
    fn empty_cache(&self, keys: bool) -> Vec<Array3<f32>> {
        let c = &self.config;
        let shape = if keys { (c.n_head, c.head_dim(), c.context) } else { (c.n_head, c.context, c.head_dim()) };
        (0..c.n_layer).map(|_| Array3::zeros(shape)).collect()
    }

    /// Most prompt characters: the context minus `<bos>` and `<sep>`.
    pub fn max_prompt_chars(&self) -> usize {
        self.config.context - 2
    }

    /// Tokenizes `<bos> prompt <sep>` and runs the prefill: every prompt position in one
    /// forward pass, filling the KV cache. `max_new_tokens` is lowered to what the context
    /// holds ([`Sequence::clamped`] tells); with `stop_at_eos` the sequence also ends at
    /// `<eos>`, else it generates exactly `max_new_tokens`.
    pub fn start(
        &self,
        prompt: &str,
        max_new_tokens: usize,
        stop_at_eos: bool,
        hooks: &mut impl KernelHooks,
    ) -> Result<Sequence, GptError> {
        let body = Tokenizer.encode(prompt);
        if body.is_empty() {
            return Err(GptError::EmptyPrompt);
        }
        if body.len() > self.max_prompt_chars() {
            return Err(GptError::PromptTooLong { chars: body.len(), max: self.max_prompt_chars() });
        }
        let tokens: Vec<u32> = std::iter::once(BOS).chain(body).chain(std::iter::once(SEP)).collect();
        let (c, prompt_len) = (&self.config, tokens.len());
        let max_new = max_new_tokens.min(c.context - prompt_len);
        let cache = |keys| self.empty_cache(keys);
        let mut seq = Sequence {
            prompt_len,
            max_new,
            requested_new: max_new_tokens,
            stop_at_eos,
            generated: 0,
            finished: max_new == 0,
            k: cache(true),
            v: cache(false),
            logits: Array1::zeros(c.vocab),
            tokens,
        };
        let rows: Vec<Row> = seq.tokens.iter().enumerate().map(|(pos, &token)| Row { token, pos, seq: 0 }).collect();
        let logits = self.forward(&rows, &mut [&mut seq], hooks);
        seq.logits = logits.row(rows.len() - 1).to_owned();
        Ok(seq)
    }

    /// Generates one token of `seq` (greedy) and runs the forward pass that gives the
    /// next one's logits, reusing the KV cache.
    pub fn step(&self, seq: &mut Sequence, hooks: &mut impl KernelHooks) {
        hooks.token_start();
        if seq.emit() {
            let (token, pos) = seq.last();
            let logits = self.forward(&[Row { token, pos, seq: 0 }], &mut [&mut *seq], hooks);
            seq.logits = logits.row(0).to_owned();
        }
    }

    /// Logits of every position of `tokens`, recomputed from scratch without a cache (a
    /// reference for the cached paths).
    pub fn logits_full(&self, tokens: &[u32]) -> Array2<f32> {
        let c = &self.config;
        let zeros = |keys| self.empty_cache(keys);
        let mut seq = Sequence {
            tokens: tokens.to_vec(),
            prompt_len: tokens.len(),
            max_new: 0,
            requested_new: 0,
            stop_at_eos: false,
            generated: 0,
            finished: true,
            k: zeros(true),
            v: zeros(false),
            logits: Array1::zeros(c.vocab),
        };
        let rows: Vec<Row> = tokens.iter().enumerate().map(|(pos, &token)| Row { token, pos, seq: 0 }).collect();
        self.forward(&rows, &mut [&mut seq], &mut NoHooks)
    }

    /// Greedy correction of `sentence`: up to `max_new_tokens` tokens, stopping at `<eos>`.
    pub fn correct(&self, sentence: &str, max_new_tokens: usize) -> Result<Correction, GptError> {
        self.correct_with(sentence, max_new_tokens, &mut NoHooks)
    }

    /// [`Model::correct`] with hooks around every kernel.
    pub fn correct_with(
        &self,
        sentence: &str,
        max_new_tokens: usize,
        hooks: &mut impl KernelHooks,
    ) -> Result<Correction, GptError> {
        let start = Instant::now();
        let mut timed = TimingHooks::new(hooks);
        let mut seq = self.start(sentence, max_new_tokens, true, &mut timed)?;
        while !seq.is_finished() {
            self.step(&mut seq, &mut timed);
        }
        let total = start.elapsed();
        Ok(Correction {
            text: seq.text(),
            prompt_tokens: seq.prompt_tokens(),
            new_tokens: seq.new_tokens(),
            clamped: seq.clamped(),
            timing: Timing { matmul: timed.matmul, other: total.saturating_sub(timed.matmul) },
        })
    }

    /// The transformer on a set of rows, each a token at a position of one of `seqs`; writes
    /// the rows' keys and values into their sequences' caches and returns their logits.
    pub(crate) fn forward(
        &self,
        rows: &[Row],
        seqs: &mut [&mut Sequence],
        hooks: &mut impl KernelHooks,
    ) -> Array2<f32> {
        let c = &self.config;
        let (n, d) = (rows.len(), c.d_model);
        let mut x = Array2::<f32>::zeros((n, d));
        for (mut xr, r) in x.outer_iter_mut().zip(rows) {
            xr.assign(&self.tok_emb.row(r.token as usize));
            xr += &self.pos.row(r.pos);
        }
        let mut h = Array2::<f32>::zeros((n, d));
        let mut qkv = Array2::<f32>::zeros((n, 3 * d));
        let mut att = Array2::<f32>::zeros((n, d));
        let mut proj = Array2::<f32>::zeros((n, d));
        let mut mlp = Array2::<f32>::zeros((n, c.d_ff));
        for (l, b) in self.blocks.iter().enumerate() {
            layer_norm(x.view(), b.ln1.0.view(), b.ln1.1.view(), h.view_mut());
            linear(h.view(), b.qkv.0.view(), b.qkv.1.view(), qkv.view_mut(), hooks);
            let hd = c.head_dim();
            for (r, row) in rows.iter().zip(qkv.outer_iter()) {
                let s = &mut seqs[r.seq];
                for h in 0..c.n_head {
                    s.k[l].slice_mut(s![h, .., r.pos]).assign(&row.slice(s![d + h * hd..d + (h + 1) * hd]));
                    s.v[l].slice_mut(s![h, r.pos, ..]).assign(&row.slice(s![2 * d + h * hd..2 * d + (h + 1) * hd]));
                }
            }
            self.attention(l, rows, seqs, qkv.view(), att.view_mut(), hooks);
            linear(att.view(), b.out.0.view(), b.out.1.view(), proj.view_mut(), hooks);
            add_assign(x.view_mut(), proj.view());
            layer_norm(x.view(), b.ln2.0.view(), b.ln2.1.view(), h.view_mut());
            linear(h.view(), b.fc.0.view(), b.fc.1.view(), mlp.view_mut(), hooks);
            gelu(mlp.view_mut());
            linear(mlp.view(), b.proj.0.view(), b.proj.1.view(), proj.view_mut(), hooks);
            add_assign(x.view_mut(), proj.view());
        }
        layer_norm(x.view(), self.ln_f.0.view(), self.ln_f.1.view(), h.view_mut());
        let mut logits = Array2::<f32>::zeros((n, c.vocab));
        linear(h.view(), self.head.view(), self.head_bias.view(), logits.view_mut(), hooks);
        logits
    }

    /// Causal multi-head attention of every row over its own sequence's cache, positions
    /// `0..=pos`: the scores and the weighted values are one kernel each.
    fn attention(
        &self,
        l: usize,
        rows: &[Row],
        seqs: &[&mut Sequence],
        qkv: ndarray::ArrayView2<f32>,
        mut out: ndarray::ArrayViewMut2<f32>,
        hooks: &mut impl KernelHooks,
    ) {
        let (hd, nh) = (self.config.head_dim(), self.config.n_head);
        let scale = 1.0 / (hd as f32).sqrt();
        let width = rows.iter().map(|r| r.pos + 1).max().unwrap_or(0);
        let mut scores = vec![0.0f32; rows.len() * nh * width];
        let ctx = self.config.context;
        hooks.kernel_enter();
        for (i, r) in rows.iter().enumerate() {
            let k = seqs[r.seq].k[l].as_slice().expect("contiguous cache");
            let q = qkv.row(i);
            let q = q.as_slice().expect("contiguous row");
            for h in 0..nh {
                let qh: Vec<f32> = q[h * hd..(h + 1) * hd].iter().map(|v| v * scale).collect();
                let sc = &mut scores[(i * nh + h) * width..][..=r.pos];
                matvec_acc(&qh, &k[h * hd * ctx..], ctx, sc);
            }
        }
        hooks.kernel_exit();
        for (i, r) in rows.iter().enumerate() {
            for h in 0..nh {
                softmax(&mut scores[(i * nh + h) * width..][..=r.pos]);
            }
        }
        hooks.kernel_enter();
        for (i, r) in rows.iter().enumerate() {
            let v = seqs[r.seq].v[l].as_slice().expect("contiguous cache");
            let mut o = out.row_mut(i);
            let o = o.as_slice_mut().expect("contiguous row");
            for h in 0..nh {
                let p = &scores[(i * nh + h) * width..][..=r.pos];
                let oh = &mut o[h * hd..(h + 1) * hd];
                oh.fill(0.0);
                matvec_acc(p, &v[h * ctx * hd..], hd, oh);
            }
        }
        hooks.kernel_exit();
    }
}
