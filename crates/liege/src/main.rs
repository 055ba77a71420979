//! `liege`: the core binary. For now it builds the options list from uWSGI-style command lines
//! and config files (`liege config` shows it); the emperor, the master and the gateways come
//! with their issues.

mod cli;
mod host;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cli::run(&args)
}
