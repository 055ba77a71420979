//! docs/options.md is generated from the option registry and must not go stale.

use crate::common::{repo, run_in};

#[test]
fn options_md_is_what_the_registry_generates() {
    let run = run_in(&repo(), &["docs", "options"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let on_disk = fs_err::read_to_string(repo().join("docs/options.md")).expect("docs/options.md");
    assert!(
        on_disk == run.stdout,
        "docs/options.md is stale: run `cargo run -p liege -- docs options > docs/options.md`"
    );
    assert!(
        run.stdout.contains("| `include` |"),
        "the registry's options are listed"
    );
    assert!(
        run.stdout.contains("`harakiri`"),
        "uWSGI's unimplemented options are listed"
    );
}
