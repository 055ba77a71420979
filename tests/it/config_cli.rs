//! `liege config` and instance command lines, through the real binary: output, warnings, and a
//! clear error with file and line (exit 2) for every kind of bad input.

use std::path::Path;

use crate::common::{Run, run_in};

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent).expect("mkdir");
    }
    fs_err::write(path, content).expect("write");
}

fn config(dir: &Path, file: &str) -> Run {
    run_in(dir, &["config", file])
}

#[test]
fn prints_the_resolved_list_in_order_and_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "app.ini",
        "[uwsgi]\nbase = /srv/%n\nsocket = %(base)/a.sock\nsocket = %(base)/b.sock\nmaster\n",
    );
    let run = config(dir.path(), "app.ini");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "base = /srv/app\nsocket = /srv/app/a.sock\nsocket = /srv/app/b.sock\nmaster = \n"
    );
    let run = run_in(dir.path(), &["config", "--json", "app.ini"]);
    let pairs: Vec<(String, String)> = serde_json::from_str(&run.stdout).expect("json pairs");
    assert_eq!(
        pairs[1],
        ("socket".to_owned(), "/srv/app/a.sock".to_owned())
    );
    assert_eq!(pairs.len(), 4);
}

#[test]
fn sections_and_every_notation_resolve() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.ini", "[uwsgi]\nx = 1\n[web]\nx = 2\n");
    write(dir.path(), "a.xml", "<uwsgi><x>3</x><master/></uwsgi>");
    write(
        dir.path(),
        "a.yaml",
        "uwsgi:\n  x: 4\n  env:\n    - A=1\n    - B=2\n",
    );
    write(
        dir.path(),
        "a.json",
        "{\"uwsgi\": {\"x\": 5, \"env\": [\"A=1\", \"B=2\"]}}",
    );
    assert_eq!(config(dir.path(), "a.ini:web").stdout, "x = 2\n");
    assert_eq!(config(dir.path(), "a.xml").stdout, "x = 3\nmaster = 1\n");
    assert_eq!(
        config(dir.path(), "a.yaml").stdout,
        "x = 4\nenv = A=1\nenv = B=2\n"
    );
    assert_eq!(
        config(dir.path(), "a.json").stdout,
        "x = 5\nenv = A=1\nenv = B=2\n"
    );
}

/// Each malformed file gives exactly one error line naming file and line, exit 2, no panic.
#[test]
fn bad_input_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "section.ini",
            b"[uwsgi]\na = 1\n[uwsgi\n",
            "section.ini:3: unclosed section header `[uwsgi`",
        ),
        (
            "loop.ini",
            b"[uwsgi]\ninclude = loop2.ini\n",
            "loop2.ini:2: `loop.ini` includes itself (through loop.ini -> loop2.ini -> loop.ini)",
        ),
        (
            "missing.ini",
            b"[uwsgi]\n\ninclude = nowhere.ini\n",
            "missing.ini:3: cannot read `nowhere.ini`: No such file or directory",
        ),
        (
            "for.ini",
            b"[uwsgi]\nfor = a b\nx = %(_)\n",
            "for.ini:2: `for` is never closed",
        ),
        (
            "if.ini",
            b"[uwsgi]\nif-not-env = LIEGE_T_NOPE\nx = 1\n",
            "if.ini:2: `if-not-env` is never closed",
        ),
        (
            "utf8.ini",
            b"[uwsgi]\na = \xc3\x28\n",
            "utf8.ini:2: `utf8.ini` is not valid UTF-8",
        ),
        (
            "binary.ini",
            b"\x7fELF\x02\x01\x01\x00\x00",
            "binary.ini:1: `binary.ini` is a binary file, not a config file",
        ),
        (
            "broken.xml",
            b"<uwsgi>\n<a>1</a>\n<b>\n</uwsgi>\n",
            "broken.xml:4: invalid xml",
        ),
        (
            "broken.json",
            b"{\"uwsgi\": {\n\"a\": 1,\n}}",
            "broken.json:3: invalid json: expected a key in double quotes",
        ),
        (
            "broken.yaml",
            b"uwsgi:\n  a: 1\n  b: \"open\n",
            "broken.yaml:",
        ),
        (
            "nested.ini",
            b"[uwsgi]\nfor = a\nfor = b\n",
            "nested.ini:3: `for` inside the `for` block opened at nested.ini:2: blocks do not nest",
        ),
        (
            "strict.ini",
            b"[uwsgi]\nstrict = true\nprocesess = 2\n",
            "strict.ini:3: unknown option `procesess` (strict mode); did you mean `processes`?",
        ),
    ];
    write(d, "loop2.ini", "[uwsgi]\ninclude = loop.ini\n");
    for (name, content, want) in cases {
        write(d, name, content);
        let run = config(d, name);
        assert_eq!(run.code, Some(2), "{name}: {run:?}");
        assert!(
            run.stderr.starts_with(want),
            "{name}: want `{want}`, got `{}`",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{name}: nothing on stdout on error");
    }
}

#[test]
fn a_huge_file_is_refused_by_its_size_before_it_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 100 MB, sparse: it costs no disk, and reading it would be slow.
    let file = fs_err::File::create(dir.path().join("huge.ini")).expect("create");
    file.set_len(100 << 20).expect("set_len");
    let run = config(dir.path(), "huge.ini");
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("`huge.ini` is 104857600 bytes, more than max-config-size (4194304 bytes)"),
        "{}",
        run.stderr
    );
}

#[test]
fn lenient_spots_are_warned_about_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "w.ini",
        "[uwsgi]\nprocesse = 2\nlog = /var/log/%Y.log\nidle = 30\n",
    );
    let run = config(dir.path(), "w.ini");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "processe = 2\nlog = /var/log/.log\nidle = 30\n");
    for want in [
        "w.ini:2: warning: `processe` is no option (taken as a placeholder); did you mean `processes`?",
        "w.ini:3: warning: `%Y` is no magic variable",
        "w.ini:4: warning: `idle` is a uWSGI option that liege does not implement yet",
    ] {
        assert!(
            run.stderr.contains(want),
            "want `{want}` in `{}`",
            run.stderr
        );
    }
}

#[test]
fn an_instance_refuses_unimplemented_uwsgi_options_and_names_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "v.ini",
        "[uwsgi]\nbase = /srv\nevil-reload-on-rss = 512\nidle = 30\n",
    );
    for args in [&["--ini", "v.ini"][..], &["v.ini"][..]] {
        let run = run_in(dir.path(), args);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(
            run.stderr.contains(
                "v.ini:3: `evil-reload-on-rss` is a uWSGI option that liege does not implement yet"
            ),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("v.ini:4: `idle`"), "{}", run.stderr);
    }
    let run = run_in(dir.path(), &["--idle", "30", "--ini", "v.ini"]);
    assert!(
        run.stderr.contains("command line argument 1: `idle`"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_instance_without_a_socket_says_so_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "ok.ini", "[uwsgi]\nbase = /srv\nset-ph = x=1\n");
    let run = run_in(dir.path(), &["ok.ini"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("no socket to listen on (set `http-socket` or `socket`)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_master_option_names_its_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "bad.ini",
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nprocesses = many\n",
    );
    let run = run_in(dir.path(), &["bad.ini"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("bad.ini:3"), "{}", run.stderr);
    assert!(run.stderr.contains("processes"), "{}", run.stderr);
}

#[test]
fn command_line_errors_name_the_argument() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(dir.path(), &["--socket", ":80", "--procesess", "2"]);
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr.trim(),
        "command line argument 3: unknown option `--procesess`; did you mean `--processes`?"
    );
}

#[test]
fn help_groups_options_and_version_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(dir.path(), &["--help"]);
    assert_eq!(run.code, Some(0));
    assert!(
        run.stdout
            .contains("Config files, includes, placeholders and logic:"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("--include PATH"), "{}", run.stdout);
    let run = run_in(dir.path(), &["--version"]);
    assert_eq!(run.stdout, format!("liege {}\n", env!("CARGO_PKG_VERSION")));
}
