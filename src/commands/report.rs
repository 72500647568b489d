//! `td3-sweep report`: re-classify stored results and re-render the report, without training.

use crate::cli::ReportArgs;
use crate::report::{generate, ReportOptions};

/// Renders `VALIDATION_<name>.md` for a results folder; the exit code is the verdict's.
pub fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let opts = ReportOptions {
        template: args.template.clone(),
        junit: args.junit.clone(),
        criteria: args.criteria.clone(),
        stable: args.stable,
        ..Default::default()
    };
    let out = generate(&args.dir, &opts)?;
    println!("{}", out.overview);
    println!("report: {}", out.report_path.display());
    if let Some(j) = &args.junit {
        println!("junit:  {}", j.display());
    }
    Ok(out.exit_code())
}
