//! Decoding: prefill, one greedy step with the KV cache, and `correct`.
//!
//! A request of N new tokens runs N forward passes — the prefill (all prompt positions at
//! once), then N − 1 single-row steps; the N-th token needs none — so it makes
//! N × [`Config::kernels_per_token`](super::Config::kernels_per_token) kernel calls and N
//! `token_start` calls.

use super::forward::{Buffers, KvCache, Row};
use super::hooks::{KernelHooks, NoHooks, TimingHooks};
use super::kernels::argmax;
use super::tokenizer::{BOS, EOS, SEP, Tokenizer};
use super::{GptError, Model};
use ndarray::{Array1, Array2};
use std::time::{Duration, Instant};

/// One sequence being decoded: its tokens, its KV cache and its scratch buffers. Per
/// request state: many sequences share one [`Model`].
#[derive(Debug, Clone)]
pub struct Sequence {
    tokens: Vec<u32>,
    prompt_len: usize,
    max_new: usize,
    requested_new: usize,
    stop_at_eos: bool,
    generated: usize,
    finished: bool,
    pub(crate) cache: KvCache,
    /// One row's activations, for [`Model::step`].
    buf: Buffers,
    /// Logits of the last position forwarded: the next token's.
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

    /// Most tokens this sequence will generate: the request, clamped to what the context
    /// leaves after the prompt.
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

    /// Logits of the last forwarded position (those of the next token).
    pub fn logits(&self) -> &Array1<f32> {
        &self.logits
    }

    /// Appends the greedy token; returns whether it needs a forward pass (for the next
    /// token's logits).
    pub(crate) fn emit(&mut self) -> bool {
        if self.finished {
            return false;
        }
        let tok = argmax(self.logits.as_slice().expect("1-d"));
        self.tokens.push(tok);
        self.generated += 1;
        self.finished = self.generated >= self.max_new || (self.stop_at_eos && tok == EOS);
        !self.finished
    }

    /// The row of the last token.
    pub(crate) fn last_row(&self, seq: usize) -> Row {
        Row { token: *self.tokens.last().expect("never empty"), pos: self.tokens.len() - 1, seq }
    }

    pub(crate) fn set_logits(&mut self, logits: &[f32]) {
        self.logits.as_slice_mut().expect("1-d").copy_from_slice(logits);
    }
}

/// Where the time of a request went: the [`Config::kernels_per_token`] kernels of each
/// forward pass, and the rest.
///
/// [`Config::kernels_per_token`]: super::Config::kernels_per_token
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Inside matmul kernels (where NumPy would release the GIL): per layer the QKV, output,
    /// MLP-in and MLP-out dense layers *and* attention's two kernels — the scores q·Kᵀ and
    /// the weighted values p·V over the KV cache, each timed as one kernel across all heads
    /// — plus the LM head.
    pub matmul: Duration,
    /// Everything else: tokenizing, LayerNorm, softmax, GELU, bookkeeping.
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

impl Model {
    /// Most prompt characters: the context minus `<bos>`, `<sep>` and one new token.
    pub fn max_prompt_chars(&self) -> usize {
        self.config.context - 3
    }

    /// Tokenizes `<bos> prompt <sep>` and runs the prefill: every prompt position in one
    /// forward pass, filling the KV cache; the sequence then holds the first new token's
    /// logits.
    ///
    /// Bad input:
    /// * an empty or all-whitespace prompt is [`GptError::EmptyPrompt`];
    /// * characters outside the vocabulary are mapped, never refused (see [`Tokenizer`]);
    /// * a prompt of more than [`Model::max_prompt_chars`] tokens (characters after the
    ///   tokenizer's mapping, whitespace runs counting one) is [`GptError::PromptTooLong`];
    /// * `max_new_tokens` is lowered to what the context holds after the prompt
    ///   ([`Sequence::clamped`] tells), so a huge value costs no more than one context;
    ///   0 gives an empty continuation (and runs no prefill).
    ///
    /// With `stop_at_eos` the sequence also ends at `<eos>`; without, it generates exactly
    /// `max_new_tokens` (after clamping), as a load test needs.
    pub fn start(
        &self,
        prompt: &str,
        max_new_tokens: usize,
        stop_at_eos: bool,
        hooks: &mut impl KernelHooks,
    ) -> Result<Sequence, GptError> {
        if prompt.trim().is_empty() {
            return Err(GptError::EmptyPrompt);
        }
        let body = Tokenizer.encode(prompt);
        if body.len() > self.max_prompt_chars() {
            return Err(GptError::PromptTooLong { chars: body.len(), max: self.max_prompt_chars() });
        }
        let prompt_len = body.len() + 2;
        let max_new = max_new_tokens.min(self.config.context - prompt_len);
        let mut tokens = Vec::with_capacity(prompt_len + max_new);
        tokens.push(BOS);
        tokens.extend(body);
        tokens.push(SEP);
        let mut seq = self.sequence(tokens, max_new, stop_at_eos);
        seq.requested_new = max_new_tokens;
        if seq.finished {
            return Ok(seq); // max_new_tokens = 0: nothing to compute
        }
        let rows: Vec<Row> = (0..prompt_len).map(|pos| Row { token: seq.tokens[pos], pos, seq: 0 }).collect();
        let mut buf = Buffers::default();
        self.forward(&rows, &mut [&mut seq], &mut buf, hooks);
        let v = self.config.vocab;
        seq.set_logits(&buf.logits[(prompt_len - 1) * v..prompt_len * v]);
        Ok(seq)
    }

    /// A sequence of `tokens` (nothing forwarded yet), with room for `max_new` more.
    fn sequence(&self, tokens: Vec<u32>, max_new: usize, stop_at_eos: bool) -> Sequence {
        let c = &self.config;
        Sequence {
            prompt_len: tokens.len(),
            max_new,
            requested_new: max_new,
            stop_at_eos,
            generated: 0,
            finished: max_new == 0,
            cache: KvCache::new(c, tokens.len() + max_new),
            buf: Buffers::single(c),
            logits: Array1::zeros(c.vocab),
            tokens,
        }
    }

    /// Generates one token of `seq` (greedy) and, unless that finishes it, runs the forward
    /// pass that gives the next token's logits, reusing the KV cache. Allocates nothing. A
    /// finished sequence is left alone (no hooks called).
    pub fn step(&self, seq: &mut Sequence, hooks: &mut impl KernelHooks) {
        if seq.finished {
            return;
        }
        hooks.token_start();
        if seq.emit() {
            let row = seq.last_row(0);
            let mut buf = std::mem::take(&mut seq.buf);
            self.forward(&[row], &mut [&mut *seq], &mut buf, hooks);
            seq.set_logits(&buf.logits[..self.config.vocab]);
            seq.buf = buf;
        }
    }

    /// Logits of every position of `tokens`, recomputed from scratch in one pass (a
    /// reference for the cached paths). `tokens` must be valid ids and at most the context.
    pub fn logits_full(&self, tokens: &[u32]) -> Array2<f32> {
        let (n, v) = (tokens.len(), self.config.vocab);
        assert!(n <= self.config.context && tokens.iter().all(|&t| (t as usize) < v), "tokens fit the model");
        let mut seq = self.sequence(tokens.to_vec(), 0, false);
        let rows: Vec<Row> =
            tokens.iter().enumerate().map(|(pos, &token)| Row { token, pos, seq: 0 }).collect();
        let mut buf = Buffers::default();
        self.forward(&rows, &mut [&mut seq], &mut buf, &mut NoHooks);
        Array2::from_shape_vec((n, v), buf.logits[..n * v].to_vec()).expect("n × vocab")
    }

    /// Greedy correction of `sentence`: the format is `<bos> sentence <sep>`, then up to
    /// `max_new_tokens` tokens, stopping at `<eos>`. Bad input as for [`Model::start`].
    pub fn correct(&self, sentence: &str, max_new_tokens: usize) -> Result<Correction, GptError> {
        self.correct_with(sentence, max_new_tokens, &mut NoHooks)
    }

    /// [`Model::correct`] with `hooks` called around every kernel and at every token.
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
}
