//! liege's whole-process tests: each module runs the real `liege` binary.
//!
//! - `config_cli`: `liege config`, `--help`, `--version`, instance command lines, bad input.
//! - `config_compat`: `liege config` against uWSGI 2.0.31 itself on tests/config-corpus/.
//! - `docs`: docs/options.md is what the registry generates.

mod common;
mod config_cli;
mod config_compat;
mod docs;
