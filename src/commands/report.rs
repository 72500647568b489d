//! `td3-sweep report`: reconcile a results folder, re-classify its stored results and re-render
//! the report, without training.

use super::BadInput;
use crate::cli::ReportArgs;
use crate::report::{generate, ReportError, ReportOptions};
use crate::results::ResultsDir;
use crate::schedule::reconcile::{reconcile, By};

/// Renders `VALIDATION_<name>.md` for a results folder, once it is reconciled (Slurm tasks nobody
/// watched settled, `summary.csv` brought up to date); the exit code is the verdict's.
pub fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let opts = ReportOptions {
        template: args.template.clone(),
        junit: args.junit.clone(),
        criteria: args.criteria.clone(),
        stable: args.stable,
        ..Default::default()
    };
    super::check_report_outputs(args.template.as_deref(), args.junit.as_deref())?;
    reconcile(&ResultsDir::new(&args.dir), By::Report);
    let out = generate(&args.dir, &opts).map_err(|e| -> anyhow::Error {
        match e {
            // Bad input (exit 2), each printed once: the diagnostics already name file:line:key.
            ReportError::Criteria(d) => d.into(),
            e @ ReportError::NotResults { .. } => BadInput(e.to_string()).into(),
            // A custom template that does not render is the user's file (the embedded one is
            // tested): bad input.
            e @ ReportError::Template { .. } if args.template.is_some() => {
                BadInput(e.to_string()).into()
            }
            e => e.into(),
        }
    })?;
    println!("{}", out.overview);
    println!("report: {}", out.report_path.display());
    if let Some(j) = &args.junit {
        println!("junit:  {}", j.display());
    }
    Ok(out.exit_code())
}
