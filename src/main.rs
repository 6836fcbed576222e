//! `hubspot-sync`: parse the command line, start telemetry, run the command, map the outcome to
//! an exit code. Everything else lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    hubspot_sync::cli::main()
}
