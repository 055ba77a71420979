//! The whole expansion engine (magic variables, logic, includes, placeholders, the `$ @ %`
//! passes) on any bytes as the main file, with two other files to include: it resolves or
//! gives an error; it never panics, loops or blows up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_config::{Context, HostFacts, MemoryAccess, resolve_file};

fn env(name: &str) -> Option<String> {
    (name == "HOME").then(|| "/home/x".to_owned())
}

fuzz_target!(|data: &[u8]| {
    let access = MemoryAccess::new()
        .with("main.ini", data.to_vec())
        .with("inc.ini", "[uwsgi]\na = %(b)\nb = $(HOME)\n")
        .with("inc.json", "{\"uwsgi\": {\"c\": [\"%n\", 1]}}")
        .with("lines.txt", "one\ntwo\n");
    let ctx = Context { access: &access, env: &env, host: HostFacts::for_tests("/mem"), is_reload: false };
    let _ = resolve_file("main.ini", &ctx);
});
