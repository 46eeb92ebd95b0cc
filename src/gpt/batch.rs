//! The batched step: B sequences of different lengths advance one token together, with
//! one matmul of B rows per weight matrix — the building block of static and continuous
//! batching.

use super::forward::{Buffers, Row};
use super::hooks::KernelHooks;
use super::{Model, Sequence};

/// Scratch space of batched steps. Keep one per batching loop and pass it to
/// [`Model::step_batch_in`]: it grows to the largest batch seen and is reused, so steps
/// allocate nothing.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    rows: Vec<Row>,
    buf: Buffers,
}

impl Model {
    /// [`Model::step_batch_in`] with a fresh workspace (allocated for this call).
    pub fn step_batch(&self, seqs: &mut [&mut Sequence], hooks: &mut impl KernelHooks) {
        self.step_batch_in(&mut Workspace::default(), seqs, hooks);
    }

    /// Generates one token of every unfinished sequence in `seqs` (greedy), then runs one
    /// forward pass over those still live for their next logits: each dense layer is one
    /// matmul over all of them, attention runs per sequence over its own cache. Finished
    /// sequences are skipped, so a scheduler may pass any set of sequences and add or remove
    /// some between steps. Each sequence ends exactly as under [`Model::step`]; `token_start`
    /// is called once per call that has a live sequence.
    pub fn step_batch_in(
        &self,
        ws: &mut Workspace,
        seqs: &mut [&mut Sequence],
        hooks: &mut impl KernelHooks,
    ) {
        if seqs.iter().all(|s| s.is_finished()) {
            return;
        }
        hooks.token_start();
        ws.rows.clear();
        for (i, s) in seqs.iter_mut().enumerate() {
            if s.emit() {
                ws.rows.push(s.last_row(i));
            }
        }
        if ws.rows.is_empty() {
            return;
        }
        self.forward(&ws.rows, seqs, &mut ws.buf, hooks);
        let v = self.config.vocab;
        for (r, logits) in ws.rows.iter().zip(ws.buf.logits.chunks_exact(v)) {
            seqs[r.seq].set_logits(logits);
        }
    }
}
