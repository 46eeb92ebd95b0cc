//! The hooks called around every matmul kernel and at every token: where the server
//! releases and retakes its GIL-like lock, and where the timing breakdown is taken.

use std::time::{Duration, Instant};

/// Called around every matmul kernel and at the start of every generated token.
///
/// The server releases its interpreter lock in `kernel_enter` and takes it back in
/// `kernel_exit`, as NumPy releases the GIL only inside its kernels. Calls come in strict
/// pairs, never nested. All methods do nothing by default; [`NoHooks`] compiles to nothing
/// (the model is generic over the hooks, not `dyn`).
pub trait KernelHooks {
    /// A matmul kernel is about to run.
    fn kernel_enter(&mut self) {}
    /// The matmul kernel is done.
    fn kernel_exit(&mut self) {}
    /// A new token starts (called by [`super::Model::step`] and
    /// [`super::Model::step_batch`], once per call).
    fn token_start(&mut self) {}
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl KernelHooks for NoHooks {}

impl<H: KernelHooks + ?Sized> KernelHooks for &mut H {
    fn kernel_enter(&mut self) {
        (**self).kernel_enter();
    }
    fn kernel_exit(&mut self) {
        (**self).kernel_exit();
    }
    fn token_start(&mut self) {
        (**self).token_start();
    }
}

/// Hooks that time the kernels, then call inner hooks (the inner hooks' own time is not
/// counted as kernel time).
#[derive(Debug, Default)]
pub struct TimingHooks<H: KernelHooks = NoHooks> {
    /// Hooks called around the timed region.
    pub inner: H,
    /// Time inside kernels so far.
    pub matmul: Duration,
    /// Kernels run so far.
    pub kernels: u64,
    entered: Option<Instant>,
}

impl<H: KernelHooks> TimingHooks<H> {
    /// Wraps `inner`.
    pub fn new(inner: H) -> Self {
        Self { inner, matmul: Duration::ZERO, kernels: 0, entered: None }
    }
}

impl<H: KernelHooks> KernelHooks for TimingHooks<H> {
    fn kernel_enter(&mut self) {
        self.inner.kernel_enter();
        self.entered = Some(Instant::now());
    }
    fn kernel_exit(&mut self) {
        if let Some(t) = self.entered.take() {
            self.matmul += t.elapsed();
        }
        self.kernels += 1;
        self.inner.kernel_exit();
    }
    fn token_start(&mut self) {
        self.inner.token_start();
    }
}
