//! `[target]`: a service of your own — any HTTP stack — for `measure`, `calibrate` and
//! `validate` to load instead of servesim's server.
//!
//! ```toml
//! [target]
//! url = "http://127.0.0.1:{port}/{worker.handler}"
//! body = '{"prompt": "request {i}", "max_new_tokens": 8}'
//! health_url = "http://127.0.0.1:{port}/health"
//! start = ".venv/bin/python -m uvicorn app:app --port {port} --workers {system.workers}"
//! env = { THREADS = "{worker.threads}", OPENBLAS_NUM_THREADS = "1" }
//! ```
//!
//! Templates take placeholders: `{port}` (a free loopback port servesim picks for each
//! start), `{cpus}` (the first `system.cores` CPUs servesim may use, as `0-1`, for
//! `taskset -c {cpus} …`: the load generator then runs on the other CPUs), `{PATH}` for any scalar field of the scenario (`{system.workers}`,
//! `{worker.threads}`, `{worker.handler}` → `sync`, `async-blocking`, `async-offload`), and in
//! the body `{i}`, the request's number. Every other brace is literal, so a JSON body is its
//! own template — except a word in braces that is no placeholder (`{prt}`, `{threads}`,
//! `{I}`), refused as the typo it almost surely is; shell syntax (`${HOME}`, `{a,b}`,
//! `{ cmd; }`) is left alone. A knob is one servesim may vary on the service only if its
//! placeholder appears in `url`, `body`, `start` or `env`; asking to vary another is refused.
//!
//! Without `start`, the service already running at `url` is measured as it is.

use super::{Scenario, ScenarioError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `{port}` placeholder.
pub const PORT: &str = "port";
/// The `{cpus}` placeholder: the CPU list (`0-1`) of the first `system.cores` CPUs this
/// process may use, for `taskset -c {cpus} …`; the load generator runs on the others.
pub const CPUS: &str = "cpus";

/// What fills the placeholders that are not scenario fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    /// `{port}`: the port servesim picked for the service.
    pub port: Option<u16>,
    /// `{cpus}`: the service's CPU list.
    pub cpus: Option<String>,
}

/// `[target]`: the service to load, and how to start, check and stop it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The URL every request goes to (a template), `http://` only.
    pub url: String,
    /// The HTTP method. By default, `POST`.
    #[serde(default = "post")]
    pub method: String,
    /// The request body (a template; `{i}` is the request's number); none with `GET`.
    /// By default, none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A URL that answers 2xx once the service is ready (a template). By default, `url`'s
    /// scheme and authority with path `/health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_url: Option<String>,
    /// A shell command (`sh -c`) that starts the service in the foreground (a template).
    /// servesim starts it in a process group of its own and stops the whole group. By
    /// default, none: the service is already running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The directory `start` runs in, relative to the scenario file. By default, the
    /// scenario file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Environment variables for `start` (values are templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// How long the service may take to answer its health URL after `start` (s), 0.1 to
    /// 3600. By default, 60.
    #[serde(default = "sixty")]
    pub ready_timeout_s: f64,
    /// How long the process group has to exit after SIGTERM before it gets SIGKILL (s),
    /// 0.1 to 600. By default, 10.
    #[serde(default = "ten")]
    pub stop_timeout_s: f64,
    /// The target calibration (JSON, from `servesim calibrate --target`) this scenario's
    /// costs come from, relative to the scenario file: `validate --target` leaves the
    /// points it measured out of its targets. By default, none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
}

fn post() -> String {
    "POST".into()
}
fn sixty() -> f64 {
    60.0
}
fn ten() -> f64 {
    10.0
}

/// Every `{name}` of `template` and where it lies (from `{` to past `}`), a brace inside
/// another's included (`{"a": {port}}`).
fn braces(template: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut rest = 0;
    std::iter::from_fn(move || {
        let open = template[rest..].find('{').map(|i| rest + i)?;
        let close = template[open..].find('}').map(|i| open + i)?;
        rest = open + 1;
        Some((open, close + 1, &template[open + 1..close]))
    })
}

/// Whether `name` is a placeholder of every template: the port, the CPUs, or a dotted path.
fn is_placeholder(name: &str) -> bool {
    name == PORT || name == CPUS || is_path(name)
}

/// Where a template's placeholder lies: `{name}` with `name` the port or a dotted path.
fn placeholders(template: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    braces(template).filter(|&(_, _, name)| is_placeholder(name))
}

/// Whether `name` is a dotted path of lowercase keys (`worker.threads`).
fn is_path(name: &str) -> bool {
    name.contains('.')
        && name.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
}

/// The first `{name}` of `template` that reads as a placeholder but is none: `name` a word
/// or dotted path of letters, digits and `_` (JSON quotes its keys; `${VAR}` is the shell's),
/// other than `{port}`, `{cpus}`, a lowercase dotted path, or `{i}` in a body.
fn unknown_placeholder(template: &str, body: bool) -> Option<&str> {
    braces(template)
        .find(|&(open, _, name)| {
            let word = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            let shell = template[..open].ends_with('$');
            let known = is_placeholder(name) || (body && name == "i");
            word && !shell && !known
        })
        .map(|(_, _, name)| name)
}

/// What `{name}` was probably meant to be: a placeholder in another case, or the scenario
/// field of that name.
fn meant(name: &str, values: &toml::Value) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if [PORT, CPUS, "i"].contains(&lower.as_str()) {
        return Some(lower);
    }
    let sections = values.as_table()?;
    sections.iter().find_map(|(section, v)| v.get(&lower).map(|_| format!("{section}.{lower}")))
}

/// A scenario's fields, as templates read them.
fn fields(sc: &Scenario) -> Result<toml::Value, String> {
    toml::Value::try_from(sc).map_err(|e| e.to_string())
}

/// A scenario field's value (from [`fields`]) as a template shows it: strings bare,
/// numbers as TOML writes them.
fn field(value: &toml::Value, path: &str) -> Result<String, String> {
    let mut v = value;
    for part in path.split('.') {
        v = v.get(part).ok_or_else(|| format!("the scenario has no field {path}"))?;
    }
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!("{path} is not a single value (a number, a name or a flag)")),
    }
}

impl TargetSpec {
    /// Every template with the field it comes from.
    fn templates(&self) -> Vec<(String, &str)> {
        let mut out = vec![("target.url".to_owned(), self.url.as_str())];
        if let Some(b) = &self.body {
            out.push(("target.body".into(), b));
        }
        if let Some(h) = &self.health_url {
            out.push(("target.health_url".into(), h));
        }
        if let Some(s) = &self.start {
            out.push(("target.start".into(), s));
        }
        for (k, v) in &self.env {
            out.push((format!("target.env.{k}"), v));
        }
        out
    }

    /// The scenario paths the templates use: the knobs servesim can set on the service.
    pub fn knobs(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .templates()
            .iter()
            .flat_map(|(_, t)| placeholders(t).map(|(_, _, n)| n.to_owned()).collect::<Vec<_>>())
            .filter(|n| n != PORT)
            .map(|n| if n == CPUS { "system.cores".to_owned() } else { n.to_owned() })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether a change of `path` reaches the service: refused for the service's own knobs
    /// (`system.*`, `worker.*`, `batching.*`, `cost.*`) unless a template uses it. The
    /// clients, the workload and the run are the load generator's, always settable.
    pub fn check_settable(&self, path: &str) -> Result<(), ScenarioError> {
        let service_side = ["system.", "worker.", "batching.", "cost."].iter().any(|p| path.starts_with(p));
        if !service_side || self.knobs().iter().any(|k| k == path) {
            return Ok(());
        }
        Err(ScenarioError::invalid(
            path,
            format!(
                "cannot be varied on the target: no {{{path}}} placeholder in target.url, target.body, \
                 target.start or target.env, so the service would not change; add one (e.g. an \
                 environment variable the service reads) or do not vary it"
            ),
        ))
    }

    /// `template` with its placeholders filled from `sc` and `vars`.
    pub fn render(template: &str, sc: &Scenario, vars: &Vars) -> Result<String, String> {
        let mut out = String::new();
        let mut at = 0;
        let mut values = None;
        for (open, close, name) in placeholders(template) {
            out.push_str(&template[at..open]);
            if name == PORT {
                match vars.port {
                    Some(p) => out.push_str(&p.to_string()),
                    None => return Err("{port} is only known when target.start starts the service".into()),
                }
            } else if name == CPUS {
                match &vars.cpus {
                    Some(c) => out.push_str(c),
                    None => return Err("{cpus} is only known when target.start starts the service".into()),
                }
            } else {
                let values = match &mut values {
                    Some(v) => v,
                    None => values.insert(fields(sc)?),
                };
                out.push_str(&field(values, name)?);
            }
            at = close;
        }
        out.push_str(&template[at..]);
        Ok(out)
    }

    /// The health URL's template: `health_url`, or `url`'s scheme and authority + `/health`.
    pub fn health_template(&self) -> String {
        self.health_url.clone().unwrap_or_else(|| {
            let after = self.url.find("://").map_or(0, |i| i + 3);
            let end = self.url[after..].find('/').map_or(self.url.len(), |i| after + i);
            format!("{}/health", &self.url[..end])
        })
    }

    /// Checks the section: the method, the timeouts, every placeholder names a field, and
    /// `{port}` only with `start`.
    pub(super) fn validate(&self, sc: &Scenario) -> Result<(), ScenarioError> {
        let bad = |field: &str, m: String| Err(ScenarioError::invalid(field, m));
        let values = fields(sc).map_err(|m| ScenarioError::invalid("target", m))?;
        if !["GET", "POST", "PUT"].contains(&self.method.as_str()) {
            return bad("target.method", format!("must be GET, POST or PUT, got {:?}", self.method));
        }
        if self.method == "GET" && self.body.is_some() {
            return bad("target.body", "must not be given with method GET".into());
        }
        if !self.url.starts_with("http://") {
            return bad("target.url", format!("must start with http:// (plain HTTP), got {:?}", self.url));
        }
        for (field, v, lo, hi) in [
            ("target.ready_timeout_s", self.ready_timeout_s, 0.1, 3600.0),
            ("target.stop_timeout_s", self.stop_timeout_s, 0.1, 600.0),
        ] {
            if !(lo..=hi).contains(&v) {
                return bad(field, format!("must be in {lo}..={hi} s, got {v}"));
            }
        }
        for (at, t) in self.templates() {
            for (_, _, name) in placeholders(t) {
                if name == PORT || name == CPUS {
                    if self.start.is_none() {
                        return bad(
                            &at,
                            format!(
                                "uses {{{name}}}, which only a target.start command gets; give the \
                                 running service's own values, or a start command"
                            ),
                        );
                    }
                } else if let Err(m) = field(&values, name) {
                    return bad(&at, format!("placeholder {{{name}}}: {m}"));
                }
            }
            if let Some(name) = unknown_placeholder(t, at == "target.body") {
                let hint = meant(name, &values)
                    .filter(|m| m != name)
                    .map(|m| format!(" (did you mean {{{m}}}?)"))
                    .unwrap_or_default();
                let only = if name == "i" {
                    "; {i}, the request's number, is filled in target.body only"
                } else {
                    ""
                };
                return bad(
                    &at,
                    format!(
                        ": {{{name}}} is not a placeholder{hint}{only}; placeholders are {{port}}, {{cpus}}, \
                         {{i}} in the body, and scenario fields such as {{worker.threads}}"
                    ),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(toml: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(toml, Path::new("t.toml"), Path::new("."), &[])
    }

    const TARGET: &str = r#"
        [system]
        workers = 2
        [worker]
        handler = "async-offload"
        [target]
        url = "http://127.0.0.1:{port}/{worker.handler}"
        body = '{"prompt": "r{i}", "n": {workload.prompt_chars}}'
        start = "taskset -c {cpus} uvicorn app:app --port {port} --workers {system.workers}"
        env = { THREADS = "{worker.threads}" }
    "#;

    #[test]
    fn templates_fill_ports_and_scenario_fields_and_leave_json_braces() {
        let sc = scenario(TARGET).unwrap();
        let t = sc.target.as_ref().unwrap();
        assert_eq!(
            TargetSpec::render(&t.url, &sc, &Vars { port: Some(8123), cpus: None }).unwrap(),
            "http://127.0.0.1:8123/async-offload"
        );
        assert_eq!(
            TargetSpec::render(
                t.start.as_deref().unwrap(),
                &sc,
                &Vars { port: Some(1), cpus: Some("0-1".into()) }
            )
            .unwrap(),
            "taskset -c 0-1 uvicorn app:app --port 1 --workers 2"
        );
        assert_eq!(
            TargetSpec::render(t.body.as_deref().unwrap(), &sc, &Vars::default()).unwrap(),
            r#"{"prompt": "r{i}", "n": 40}"#,
            "{{i}} is the load generator's"
        );
        assert_eq!(t.health_template(), "http://127.0.0.1:{port}/health");
        assert_eq!(
            t.knobs(),
            ["system.cores", "system.workers", "worker.handler", "worker.threads", "workload.prompt_chars"]
        );
    }

    #[test]
    fn a_knob_without_a_placeholder_is_refused_by_name() {
        let sc = scenario(TARGET).unwrap();
        let t = sc.target.as_ref().unwrap();
        for ok in ["system.workers", "system.cores", "worker.threads", "clients.users", "run.requests"] {
            assert!(t.check_settable(ok).is_ok(), "{ok}");
        }
        let e = t.check_settable("worker.lock").unwrap_err().to_string();
        assert!(e.contains("worker.lock") && e.contains("placeholder"), "{e}");
    }

    #[test]
    fn bad_sections_name_the_field() {
        for (toml, needle) in [
            ("[target]\nurl = \"https://x/\"", "target.url"),
            ("[target]\nurl = \"http://127.0.0.1:{port}/\"", "only a target.start"),
            ("[target]\nurl = \"http://127.0.0.1:1/\"\nmethod = \"PATCH\"", "target.method"),
            ("[target]\nurl = \"http://127.0.0.1:1/\"\nstart = \"x {worker.nope}\"", "{worker.nope}"),
            ("[target]\nurl = \"http://127.0.0.1:1/\"\nready_timeout_s = 0", "target.ready_timeout_s"),
            ("[target]\nurl = \"http://127.0.0.1:1/\"\nstrat = \"x\"", "strat"),
        ] {
            let e = scenario(toml).unwrap_err().to_string();
            assert!(e.contains(needle), "{toml}: {e}");
        }
    }
}
