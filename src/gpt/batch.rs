//! The batched step: B sequences of different lengths advance one token together, with
//! one matmul of B rows per weight matrix — the building block of static and continuous
//! batching.

use super::decode::Row;
use super::kernels::KernelHooks;
use super::{Model, Sequence};

impl Model {
    /// Generates one token of every unfinished sequence in `seqs` (greedy) and runs one
    /// forward pass over all of them for their next logits. Finished sequences are skipped,
    /// so a scheduler may pass any set of live sequences.
    pub fn step_batch(&self, seqs: &mut [&mut Sequence], hooks: &mut impl KernelHooks) {
        hooks.token_start();
        let rows: Vec<Row> = seqs
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| {
                s.emit().then(|| {
                    let (token, pos) = s.last();
                    Row { token, pos, seq: i }
                })
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let logits = self.forward(&rows, seqs, hooks);
        for (r, l) in rows.iter().zip(logits.outer_iter()) {
            seqs[r.seq].set_logits(l);
        }
    }
}

impl Sequence {
    pub(crate) fn set_logits(&mut self, l: ndarray::ArrayView1<f32>) {
        self.logits_mut().assign(&l);
    }
}
