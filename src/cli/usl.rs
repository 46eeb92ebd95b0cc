//! `servesim fit-usl`.

use clap::Args;
use servesim::experiment::{fit_usl_csv, read_csv};
use std::path::{Path, PathBuf};

/// Fit the Universal Scalability Law to a throughput-vs-concurrency table.
///
/// X(N) = λN / (1 + σ(N−1) + κN(N−1)): σ is contention (a serial fraction), κ coherency
/// (crosstalk that makes throughput fall past a peak at N* = √((1−σ)/κ)). Reads any CSV with
/// a concurrency and a throughput column — `servesim sweep` output (`clients.users`,
/// `throughput_rps`) works as is — and prints λ, σ, κ with 95% confidence intervals, R² and
/// the peak.
///
/// Reading σ: for a lock held a fraction s of each request's work, Amdahl's law gives σ ≈ s
/// as long as the lock's hand-offs are free. Where the USL misleads: a closed system with a
/// lock does not follow its curve — throughput climbs to 1/(lock-held time) and stays flat,
/// which the USL can only imitate with a κ that predicts a fall that never comes; hand-off
/// costs and convoys show up as κ; and points past saturation with think time bend the fit.
/// Use the simulator for such systems, and the USL as a summary.
///
/// One curve at a time: a CSV in which another parameter varies besides the concurrency (a
/// column named like a scenario field, `worker.threads`, or a validation `suite`) holds
/// several curves, and is refused with the columns that vary and how to keep one curve.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    servesim sweep models/seed-sync.toml --sweep clients.users=1,2,4,8,16,32,64 --out plots/users\n  \
    servesim fit-usl plots/users/sweep.csv")]
pub struct UslArgs {
    /// CSV file with a header row.
    csv: PathBuf,

    /// Concurrency column (default: clients.users, users, concurrency, n or N).
    #[arg(long)]
    x: Option<String>,

    /// Throughput column (default: throughput_rps, throughput, x or X).
    #[arg(long)]
    y: Option<String>,

    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `servesim fit-usl`.
pub fn run(args: UslArgs) -> anyhow::Result<()> {
    // The concurrency column that would be fitted: the only default that names a scenario
    // field is `clients.users` (the others, `users`, `n`…, are never parameter columns).
    let x = args.x.as_deref().unwrap_or("clients.users");
    let (header, rows) = read_csv(&args.csv)?;
    if let Some(message) = mixed_curves(&args.csv, &header, &rows, x) {
        anyhow::bail!(message);
    }
    let r = fit_usl_csv(&args.csv, args.x.as_deref(), args.y.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.summary());
    }
    Ok(())
}

/// Scenario sections: a column `section.field` is a parameter (sweep and validation CSVs
/// give each swept one its own column).
const SECTIONS: [&str; 7] = ["system", "worker", "clients", "workload", "cost", "batching", "run"];

fn is_parameter(column: &str) -> bool {
    column == "suite" || column.split_once('.').is_some_and(|(s, _)| SECTIONS.contains(&s))
}

/// Parameter columns other than `x` that take more than one value: each with its index and
/// its values in order of appearance.
fn varying(
    header: &csv::StringRecord,
    rows: &[csv::StringRecord],
    x: &str,
) -> Vec<(usize, String, Vec<String>)> {
    let mut out = Vec::new();
    for (i, name) in header.iter().enumerate().filter(|(_, h)| *h != x && is_parameter(h)) {
        let mut values: Vec<String> = Vec::new();
        for v in rows.iter().map(|r| r.get(i).unwrap_or("").trim()) {
            if !values.iter().any(|seen| seen == v) {
                values.push(v.to_string());
            }
        }
        if values.len() > 1 {
            out.push((i, name.to_string(), values));
        }
    }
    out
}

/// Why `file` (its `header` and `rows`) cannot be fitted as one curve, if other parameters
/// vary in it.
fn mixed_curves(
    file: &Path,
    header: &csv::StringRecord,
    rows: &[csv::StringRecord],
    x: &str,
) -> Option<String> {
    let vary = varying(header, rows, x);
    if vary.is_empty() {
        return None;
    }
    let list: Vec<String> = vary
        .iter()
        .map(|(_, name, values)| {
            let shown: Vec<&str> = values.iter().take(4).map(String::as_str).collect();
            let more = if values.len() > 4 { ", …" } else { "" };
            format!("{name} takes the values {}{more}", shown.join(", "))
        })
        .collect();
    // awk fields count from 1; a CSV from `servesim sweep` quotes no parameter value.
    let keep: Vec<String> = vary.iter().map(|(i, _, v)| format!("${} == \"{}\"", i + 1, v[0])).collect();
    let path = file.display();
    Some(format!(
        "{path} holds several curves: besides the concurrency ({x}), {}. One USL fit would mix \
         them; fit one curve at a time: keep one combination's rows, e.g. \
         awk -F, 'NR == 1 || ({})' {path} > one-curve.csv, or sweep the concurrency alone (pin \
         the rest with --set). If {x} is not the concurrency column, name it with --x.",
        list.join(" and "),
        keep.join(" && ")
    ))
}
