//! `liege-python`: the Python worker. Filled in by the Python work.
fn main() {}
