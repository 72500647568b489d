//! The commands behind the CLI. Each takes validated arguments and returns an exit code.

mod devices;
mod external;
pub mod report;
mod run_one;
mod sweep;
mod train;
mod validate;

use crate::cli::{Cli, Command};
use crate::diag::Diagnostics;
use crate::results::exit;

/// Bad input that is not a located diagnostic (e.g. a huge sweep without `--yes`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Loads a sweep and parses its criteria: every check that runs before anything is created.
pub fn load_checked(
    path: &std::path::Path,
) -> Result<(crate::spec::SweepPlan, crate::verdict::Criteria), Diagnostics> {
    let plan = crate::spec::load_sweep(path)?;
    let criteria = sweep::load_criteria(&plan.spec)?;
    Ok((plan, criteria))
}

/// `--template` and `--junit` checked before anything runs (see [`report::check_outputs`]).
pub fn check_report_outputs(
    template: Option<&std::path::Path>,
    junit: Option<&std::path::Path>,
) -> Result<(), BadInput> {
    let problems = report::check_outputs(template, junit);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BadInput(problems.join("\n")))
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Devices => devices::run(),
        Command::Train(a) => train::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Report(a) => report::run(a),
        Command::RunOne(a) => run_one::run(a),
        Command::External(a) => external::run(a),
    }
}

/// Maps an error to its exit code ([`crate::results::exit`]): bad input, or a runtime error.
pub fn exit_code_for(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<Diagnostics>().is_some() || err.downcast_ref::<BadInput>().is_some() {
        exit::BAD_INPUT
    } else {
        exit::ERROR
    }
}
