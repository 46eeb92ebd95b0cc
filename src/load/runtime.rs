//! A runtime of its own for callers that are not async: few threads, optionally pinned.

use super::{LoadError, LoadPlan, LoadReport, pin};
use indicatif::ProgressBar;

/// Runs `plan` on a new tokio runtime with `plan.threads` worker threads, pinned to
/// `plan.cpus` when given, and blocks until the report is ready.
pub fn run_blocking(plan: &LoadPlan, progress: Option<ProgressBar>) -> Result<LoadReport, LoadError> {
    plan.validate()?;
    let rt = build_runtime(plan)?;
    let plan = plan.clone();
    // Spawned, so that all of the run happens on the (pinned) workers, not on the caller.
    let run = rt.spawn(async move { super::run(&plan, progress).await });
    let result = rt.block_on(run).map_err(|e| LoadError::Aborted(e.to_string()))?;
    // Connections whose drivers were aborted must not hold the caller up.
    rt.shutdown_background();
    result
}

fn build_runtime(plan: &LoadPlan) -> Result<tokio::runtime::Runtime, LoadError> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(plan.threads).thread_name("servesim-load").enable_all();
    if let Some(cpus) = plan.cpus.clone() {
        // Tried once on a throwaway thread, so a failure cannot pass silently in a worker.
        let probe = cpus.clone();
        std::thread::spawn(move || pin::pin_current_thread(&probe))
            .join()
            .map_err(|_| LoadError::Aborted("the CPU pinning probe panicked".into()))??;
        b.on_thread_start(move || {
            let _ = pin::pin_current_thread(&cpus);
        });
    }
    b.build().map_err(LoadError::Runtime)
}
