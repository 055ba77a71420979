//! Builds the C shim against Debian's libperl, with the flags ExtUtils::Embed gives
//! (`perl -MExtUtils::Embed -e ccopts` / `ldopts`).

use std::process::Command;

fn embed(what: &str) -> Vec<String> {
    let out = Command::new("perl")
        .args(["-MExtUtils::Embed", "-e", what])
        .output()
        .unwrap_or_else(|e| panic!("running `perl -MExtUtils::Embed -e {what}` failed: {e}"));
    assert!(
        out.status.success(),
        "`perl -MExtUtils::Embed -e {what}` failed (is libperl-dev installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    let mut build = cc::Build::new();
    build.file("src/shim.c").warnings(false);
    for flag in embed("ccopts") {
        build.flag(&flag);
    }
    build.compile("liege_perl_shim");
    for flag in embed("ldopts") {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if flag.starts_with("-Wl,") {
            // `-Wl,-E`: XS modules (.so) loaded at run time resolve Perl's symbols in us.
            println!("cargo:rustc-link-arg={flag}");
        }
    }
}
