//! `td3-sweep`: parse arguments, run the command, print the error chain, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use td3_sweep::cli::Cli;

fn main() -> ExitCode {
    td3_sweep::sys::tune_allocator();
    let cli = Cli::parse();
    if cli.command.only_prints() {
        td3_sweep::sys::die_quietly_on_closed_pipe();
    }
    match td3_sweep::commands::run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            let code = td3_sweep::commands::exit_code_for(&err);
            if err.downcast_ref::<td3_sweep::diag::Diagnostics>().is_some() {
                // Each diagnostic already reads `file:line:col: error: ...`.
                eprintln!("{err}");
            } else {
                eprintln!("error: {err}");
            }
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(code.clamp(0, 255) as u8)
        }
    }
}
