//! Builds the C shim (csrc/rack.c) against Debian's libruby, with the flags Ruby itself reports
//! (`RbConfig::CONFIG`): no bindgen, no libclang. `RUBY` names another `ruby` to build against.

use std::process::Command;

fn config(ruby: &str, keys: &[&str]) -> Vec<String> {
    let script = format!(
        "puts {}",
        keys.iter()
            .map(|k| format!("RbConfig::CONFIG[{k:?}].to_s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let out = Command::new(ruby)
        .args(["-e", &script])
        .output()
        .unwrap_or_else(|e| panic!("liege-ruby needs `{ruby}` (Debian: ruby-dev): {e}"));
    assert!(
        out.status.success(),
        "`{ruby} -e {script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("RbConfig values are UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=csrc/rack.c");
    println!("cargo:rerun-if-env-changed=RUBY");
    let ruby = std::env::var("RUBY").unwrap_or_else(|_| "ruby".to_string());
    let c = config(
        &ruby,
        &["rubyhdrdir", "rubyarchhdrdir", "libdir", "RUBY_SO_NAME"],
    );
    let [hdr, archhdr, libdir, so_name] = &c[..] else {
        panic!("unexpected RbConfig output: {c:?}");
    };
    cc::Build::new()
        .file("csrc/rack.c")
        .include(hdr)
        .include(archhdr)
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(true)
        .compile("liege_rack");
    println!("cargo:rustc-link-search=native={libdir}");
    println!("cargo:rustc-link-lib=dylib={so_name}");
}
