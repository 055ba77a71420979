//! `liege-python`: the Python worker executable, run by the master.

use std::io::Write;
use std::process::ExitCode;

// TODO(runtime): becomes `liege_worker::main(liege_python::Python::new())` once the worker
// runtime provides `main`.
fn main() -> ExitCode {
    let _language = liege_python::Python::new();
    let _ = writeln!(
        std::io::stderr(),
        "liege-python: the worker runtime (liege_worker::main) is not there yet"
    );
    ExitCode::FAILURE
}
