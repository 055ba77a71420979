//! `liege-ruby`: the Ruby (Rack) worker executable, run by the master (never by hand: it reads
//! the master's handoff, crate `liege_proto::handoff`).

fn main() -> std::process::ExitCode {
    liege_worker::main(liege_ruby::Ruby::new())
}
