//! `td3-sweep validate`: check sweep files, run nothing.

use crate::cli::ValidateArgs;
use crate::diag::Diagnostics;

/// Loads every file and its criteria; prints each file's verdict; all problems together, exit 2.
pub fn run(args: ValidateArgs) -> anyhow::Result<i32> {
    let mut all = Diagnostics::default();
    for f in &args.files {
        match crate::spec::load_sweep(f)
            .and_then(|plan| super::sweep::load_criteria(&plan.spec).map(|_| plan))
        {
            Ok(plan) => println!("{}: ok ({} runs)", f.display(), plan.runs.len()),
            Err(d) => all.0.extend(d.0),
        }
    }
    if all.is_empty() {
        Ok(0)
    } else {
        Err(all.into())
    }
}
