//! `liege`: the core binary. It builds the options list from uWSGI-style command lines and
//! config files (`liege config` shows it) and runs an instance's master (crate `liege_master`),
//! which starts the language workers beside this binary; the emperor and the gateways come with
//! their issues.

mod cli;
mod gateway;
mod host;
mod request;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cli::run(&args)
}
