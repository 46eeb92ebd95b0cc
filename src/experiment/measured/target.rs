//! Measuring a service of your own (`[target]` in the scenario) instead of servesim's
//! server: the same load, window and report as [`measure`](super::measure), from outside.
//!
//! ```text
//!  scenario + [target] ─► launch (start, env, cwd, {port}, {cpus}, knobs) ─┐
//!     same launch as the running one? reuse it : stop it, start this one ◄─┘
//!  ─► load generator (on the other CPUs when {cpus} pins the service) ─► records
//!  ─► the report: throughput and latency from the records; waits from Server-Timing;
//!     memory from /proc of the service's process group; users per worker from the
//!     x-worker-pid header of each user's responses, when the service sends it
//! ```
//!
//! One service runs at a time. It is kept between measurements that start it the same
//! way (a sweep over users restarts nothing), restarted when a knob it takes changes, and
//! stopped by [`stop_service`], on drop of the process, or on Ctrl-C.

mod fit;
mod service;
mod workers;

pub use fit::{
    Costs, FitError, FitOptions, OneClient, Param, RampPoint, SLICE_PARAM, TARGET_CALIBRATION_FORMAT,
    TargetCalibration, apply, calibrate_target, costs_of, default_ramp, knobs_of, slice_of,
};
pub use service::{Launch, Service, ServiceError, Stopped, free_port, get_status, group_rss_kb};

use super::measure::{MeasureError, MeasureOptions, MeasureReport};
use crate::affinity::CpuPlan;
use crate::load::{BodyTemplate, LoadPlan, Method};
use crate::scenario::{Scenario, TargetSpec, TargetVars};
use std::sync::Mutex;
use std::time::Duration;

/// The service started last, kept for the next measurement that starts it the same way.
/// With it, its launch as started with port 0: two launches that differ only in the port
/// start the same service.
static RUNNING: Mutex<Option<(Launch, Service)>> = Mutex::new(None);

/// Stops the service a measurement left running when dropped: hold one for as long as a
/// command measures a target, so that every way out of it (an error, a panic) stops the
/// service.
#[derive(Debug)]
pub struct ServiceGuard;

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let _ = stop_service();
    }
}

/// Stops the service a measurement left running (a no-op if none is).
pub fn stop_service() -> Result<Option<Stopped>, ServiceError> {
    let svc = RUNNING.lock().unwrap_or_else(|p| p.into_inner()).take();
    match svc {
        Some((_, mut s)) => s.stop().map(Some),
        None => Ok(None),
    }
}

fn template(field: &str, t: &str, sc: &Scenario, vars: &TargetVars) -> Result<String, ServiceError> {
    TargetSpec::render(t, sc, vars).map_err(|message| ServiceError::Template { field: field.into(), message })
}

/// The URL, body and health URL of a target for `sc`, and its launch if it has `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The URL requests go to.
    pub url: String,
    /// The body template (`{i}` left for the load generator).
    pub body: Option<String>,
    /// The health URL.
    pub health: String,
    /// How to start it, when servesim starts it.
    pub launch: Option<Launch>,
}

/// Fills the target's templates for `sc`, with `port` and the CPU plan.
pub fn resolve(
    spec: &TargetSpec,
    sc: &Scenario,
    port: Option<u16>,
    cpus: &CpuPlan,
) -> Result<Resolved, ServiceError> {
    let vars = TargetVars { port, cpus: Some(cpus.server.to_string()) };
    let url = template("target.url", &spec.url, sc, &vars)?;
    let body = spec.body.as_deref().map(|b| template("target.body", b, sc, &vars)).transpose()?;
    let health = template("target.health_url", &spec.health_template(), sc, &vars)?;
    let launch = match &spec.start {
        None => None,
        Some(start) => {
            let command = template("target.start", start, sc, &vars)?;
            let env = spec
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), template(&format!("target.env.{k}"), v, sc, &vars)?)))
                .collect::<Result<Vec<_>, ServiceError>>()?;
            let cwd = sc.base_dir.join(spec.cwd.as_deref().unwrap_or("."));
            Some(Launch { command, cwd, env, port: port.unwrap_or(0), health: health.clone() })
        }
    };
    Ok(Resolved { url, body, health, launch })
}

/// Makes sure the service for `sc` runs (starting or restarting it through `start`, or
/// checking the running one answers), and returns its URLs and process group.
fn ensure(spec: &TargetSpec, sc: &Scenario, cpus: &CpuPlan) -> Result<(Resolved, Option<i32>), ServiceError> {
    if spec.start.is_none() {
        let r = resolve(spec, sc, None, cpus)?;
        match get_status(&r.health, Duration::from_secs(5)) {
            Ok(c) if (200..300).contains(&c) => return Ok((r, None)),
            Ok(c) => {
                return Err(ServiceError::Unreachable { health: r.health, message: format!("HTTP {c}") });
            }
            Err(message) => return Err(ServiceError::Unreachable { health: r.health, message }),
        }
    }
    // The launch with port 0 is the key: the same command, environment and directory.
    let key = resolve(spec, sc, Some(0), cpus)?.launch.expect("a target with start has a launch");
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, svc)) = running.as_ref()
        && *k == key
    {
        let r = resolve(spec, sc, Some(svc.launch.port), cpus)?;
        return Ok((r, Some(svc.pgid())));
    }
    if let Some((_, mut old)) = running.take() {
        old.stop()?;
    }
    let port = free_port()?;
    let r = resolve(spec, sc, Some(port), cpus)?;
    let launch = r.launch.clone().expect("a target with start has a launch");
    let svc = Service::start(
        launch,
        Duration::from_secs_f64(spec.ready_timeout_s),
        Duration::from_secs_f64(spec.stop_timeout_s),
    )?;
    let pg = svc.pgid();
    *running = Some((key, svc));
    Ok((r, Some(pg)))
}

/// The CPUs of the service and of the load generator: split as for servesim's own server
/// when `start` pins the service with `{cpus}`, else all of them for both.
fn cpu_plan(spec: &TargetSpec, sc: &Scenario) -> Result<CpuPlan, MeasureError> {
    let allowed = crate::affinity::allowed()
        .map_err(|e| MeasureError::Setup { what: "read the CPU affinity", message: e.to_string() })?;
    let pinned = spec.knobs().iter().any(|k| k == "system.cores");
    Ok(if pinned {
        CpuPlan::split(&allowed, sc.system.cores as usize)
    } else {
        CpuPlan { server: allowed.clone(), load: allowed, shared: true }
    })
}

/// Measures `sc` on its `[target]` service.
pub fn measure(
    sc: &Scenario,
    spec: &TargetSpec,
    opts: &MeasureOptions,
) -> Result<MeasureReport, MeasureError> {
    let cpus = cpu_plan(spec, sc)?;
    let (r, pgid) = ensure(spec, sc, &cpus)?;
    let (mode, stop, warmup) = super::measure::clients(sc);
    let mut plan = LoadPlan::new(r.url.clone(), mode, stop);
    plan.method = spec
        .method
        .parse::<Method>()
        .map_err(|e| MeasureError::Setup { what: "read target.method", message: e.to_string() })?;
    plan.body = r.body.as_deref().map(BodyTemplate::new);
    plan.seed = sc.run.seed;
    plan.timeout = Duration::from_secs_f64(opts.max_wall_s.max(1.0));
    plan.capture_timing = true;
    plan.validate()?;
    let (t0, ticks) = (std::time::Instant::now(), crate::experiment::CpuTicks::now());
    let load = super::measure::run_load(&plan, &cpus, opts.max_wall_s)?;
    let (records, split) = (load.records, load.users_by_worker);
    let (wall_s, steal) = (t0.elapsed().as_secs_f64(), crate::experiment::stolen_since(ticks));
    let rss = pgid.map(group_rss_kb).unwrap_or_default();
    let run =
        super::measure::Run { records, warmup, before: Vec::new(), after: Vec::new(), wall_s, cpus, steal };
    let mut report = super::measure::summarize(sc, &run);
    // What the service reports of its waits: `queue` is everything before its handler
    // (the loop's queue, then a pool thread's), kept as the wait for a thread.
    let stages = report.server_timing.map(|s| s.mean).unwrap_or_default();
    report.waits_ms.lock = stages.lock.unwrap_or(0.0);
    report.waits_ms.thread = stages.queue.unwrap_or(0.0);
    report.utilization = Default::default();
    report.mean_in_system =
        run.records.iter().filter(|r| r.is_ok()).map(|r| r.latency_us() as f64).sum::<f64>() / (wall_s * 1e6);
    report.memory_mb = rss.iter().map(|(_, kb)| *kb as f64 / 1024.0).sum();
    report.workers = workers::reports(&rss, &run.records, split.as_ref());
    report.notes.insert(
        0,
        format!("target {} ({})", r.url, if pgid.is_some() { "started by servesim" } else { "running" }),
    );
    report.notes.extend(workers::notes(sc, split.as_ref()));
    if report.completed > 0 && report.errors as f64 > 0.05 * report.sent as f64 {
        return Err(MeasureError::Setup {
            what: "measure the target",
            message: format!(
                "the service failed {} of {} requests under this load ({:?}): a prediction is checked \
                 only against a service that answers; see its log, lower clients.users, or raise its \
                 limits",
                report.errors, report.sent, report.errors_by_kind
            ),
        });
    }
    if report.completed == 0 {
        return Err(MeasureError::Setup {
            what: "measure the target",
            message: format!(
                "no request succeeded ({} sent; failures: {:?}); check target.url, target.method and \
                 target.body against the service",
                report.sent, report.errors_by_kind
            ),
        });
    }
    Ok(report)
}
