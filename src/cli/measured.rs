//! The measured commands — measure, calibrate, validate — run against a real service (see
//! the library's `experiment` module); `servesim` lists them among its own subcommands.

#[cfg(feature = "plot")]
mod calibrate;
mod measure;
#[cfg(feature = "plot")]
mod validate;

use clap::Subcommand;

/// A progress bar on stderr with `template`, its length set by the first report.
#[cfg(feature = "plot")]
fn bar(template: &str) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    )
}

/// What a long run calls after each step, `(done, total, what)`, moving `bar`.
#[cfg(feature = "plot")]
fn track(bar: &indicatif::ProgressBar) -> impl FnMut(usize, usize, &str) + '_ {
    |done, total, what| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(what.to_owned());
    }
}

// As in `cli::Command`, each variant gives only its one-line `about`.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(about = "Measure a scenario on the real server with the load generator.")]
    Measure(measure::MeasureArgs),
    #[command(about = "Measure the real server's own costs on this machine (a calibration file).")]
    #[cfg(feature = "plot")]
    Calibrate(calibrate::CalibrateArgs),
    #[command(about = "Check predictions against the real server over a sweep (default: the main suite).")]
    #[cfg(feature = "plot")]
    Validate(validate::ValidateArgs),
}

/// Runs a measured subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Measure(args) => measure::run(args),
        #[cfg(feature = "plot")]
        Command::Calibrate(args) => calibrate::run(args),
        #[cfg(feature = "plot")]
        Command::Validate(args) => validate::run(args),
    }
}
