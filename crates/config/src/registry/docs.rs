//! docs/options.md, written from the registry (a test fails when the file is stale).

use std::fmt::Write;

use super::{OPTIONS, Part, uwsgi_only_names};

/// The whole of docs/options.md.
pub fn render_markdown() -> String {
    let mut out = String::new();
    out.push_str("# liege options\n\n");
    out.push_str(
        "Generated from the option registry (`crates/config/src/registry/defs.rs`) by \
         `cargo run -p liege -- docs options > docs/options.md`; a test fails when this file is \
         stale. Every option can be written in any notation (ini, xml, yaml, json) or on the \
         command line as `--name value`.\n\n",
    );
    let mut parts: Vec<Part> = OPTIONS.iter().map(|s| s.part).collect();
    parts.sort();
    parts.dedup();
    for part in parts {
        let _ = writeln!(out, "## {}\n", part.title());
        out.push_str("| option | value | default | uWSGI equivalent | what it does |\n");
        out.push_str("| --- | --- | --- | --- | --- |\n");
        for spec in OPTIONS.iter().filter(|s| s.part == part) {
            let mut name = format!("`{}`", spec.name);
            for alias in spec.aliases {
                let _ = write!(name, ", `{alias}`");
            }
            let mut kind = spec.kind.describe().to_owned();
            if spec.repeatable {
                kind.push_str(", repeatable");
            }
            let uwsgi = match spec.uwsgi {
                Some(u) if u == spec.name => "same".to_owned(),
                Some(u) => format!("`{u}`"),
                None => "none (liege's own)".to_owned(),
            };
            let default = spec.default.map_or(String::from("-"), |d| format!("`{d}`"));
            let _ = writeln!(
                out,
                "| {name} | {kind} | {default} | {uwsgi} | {} |",
                spec.doc.replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    let others = uwsgi_only_names();
    let _ = writeln!(out, "## uWSGI options liege does not implement yet\n");
    let _ = writeln!(
        out,
        "liege knows the {} other options of uWSGI 2.0 (core and plugins), so a migrated file is \
         never misread: `liege config` warns about each one it finds, and an instance whose \
         options include one refuses to start and names it. They are:\n",
        others.len()
    );
    let list: Vec<String> = others.iter().map(|n| format!("`{n}`")).collect();
    out.push_str(&list.join(", "));
    out.push('\n');
    out
}
