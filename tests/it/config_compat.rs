//! `liege config` resolves every file of tests/config-corpus/ to the same options list as
//! uWSGI 2.0.31 itself (tests/compat/uwsgi-resolve runs it in fresh namespaces and prints its
//! `--show-config`). Where liege differs on purpose, [`DIFFERENCES`] names the case and why.
//!
//! tests/compat/build-uwsgi builds the reference once into /var/cache/liege (it is idempotent
//! and quick when built); this test calls it, so it never passes without having compared.

use std::path::Path;
use std::process::Command;

use crate::common::{Run, repo};

/// A case where liege deliberately differs from uWSGI; docs/config.md lists them with reasons.
struct Difference {
    case: &'static str,
    why: &'static str,
    how: How,
}

enum How {
    /// Both lists are put through this before they are compared.
    Normalize(fn(&str) -> String),
    /// uWSGI accepts the file; liege refuses it with an error that starts so.
    Refused(&'static str),
    /// These lines of uWSGI's list stand in liege's as the second form.
    Lines(&'static [(&'static str, &'static str)]),
}

/// `%b` is the path of the running binary: uWSGI's there, liege's here.
fn binary_path(list: &str) -> String {
    list.lines()
        .map(|l| match l.split_once(" = ") {
            Some((k, v)) if v.ends_with("/uwsgi") || v.ends_with("/liege") => {
                format!("{k} = <binary>")
            }
            _ => l.to_owned(),
        })
        .map(|l| l + "\n")
        .collect()
}

/// `%V` is the version of the program reading the file.
fn version(list: &str) -> String {
    list.replace("2.0.31", "<version>")
        .replace(env!("CARGO_PKG_VERSION"), "<version>")
}

const DIFFERENCES: &[Difference] = &[
    Difference {
        case: "ini-magic-binary.ini",
        why: "%b is the running binary: uWSGI's path there, liege's here",
        how: How::Normalize(binary_path),
    },
    Difference {
        case: "ini-magic-version.ini",
        why: "%V is the version of the program reading the file",
        how: How::Normalize(version),
    },
    Difference {
        case: "ini-for-unclosed.ini",
        why: "a block opened in an included file must end there: uWSGI lets it run on into the including file",
        how: How::Refused("inc/for-unclosed.ini:2: `for` is never closed"),
    },
    Difference {
        case: "yaml-unclosed.yaml",
        why: "a block must be closed in the file that opens it",
        how: How::Refused("yaml-unclosed.yaml:2: `for` is never closed"),
    },
    Difference {
        case: "json-dupkeys.json",
        why: "a key written twice in one json object: jansson keeps the last value silently",
        how: How::Refused(
            "json-dupkeys.json:4: `socket` is written twice in one object (first at line 2)",
        ),
    },
    Difference {
        case: "json-numbers.json",
        why: "uWSGI squeezes json integers through a 32-bit int and an 11-byte buffer",
        how: How::Lines(&[
            ("big = 1", "big = 4294967297"),
            ("over-int-max = -214748364", "over-int-max = 2147483648"),
        ]),
    },
    Difference {
        case: "xml-id-inherit.xml",
        why: "uWSGI puts the `:` of `file.xml:id` back one byte too far, so %X reads `:lpha` afterwards",
        how: How::Lines(&[("tpl-X = [:lpha]", "tpl-X = [alpha]")]),
    },
    Difference {
        case: "ini-sections-unclosed.ini",
        why: "`[weird` is an unclosed header: uWSGI drops its last character and reads section `weir`",
        how: How::Refused("ini-sections-unclosed.ini:4: unclosed section header `[weird`"),
    },
];

fn corpus() -> std::path::PathBuf {
    repo().join("tests/config-corpus")
}

/// Builds (once) and returns nothing; panics with the build's output when it fails.
fn ensure_oracle() {
    let out = Command::new("bash")
        .arg(repo().join("tests/compat/build-uwsgi"))
        .output()
        .expect("run build-uwsgi");
    assert!(
        out.status.success(),
        "tests/compat/build-uwsgi failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One line of a manifest: the file (with its section) and the environment it runs with.
fn manifest(name: &str) -> Vec<(String, Vec<(String, String)>)> {
    let text = fs_err::read_to_string(corpus().join(name)).expect("manifest");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let file = words.next().unwrap_or_default().to_owned();
            let env = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (file, env)
        })
        .collect()
}

fn run(program: &Path, args: &[&str], env: &[(String, String)]) -> Run {
    let mut cmd = Command::new(program);
    cmd.current_dir(corpus()).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("LIEGE_T_") || k.starts_with("UWSGI_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("run").into()
}

#[test]
fn liege_config_agrees_with_uwsgi_on_the_corpus() {
    ensure_oracle();
    let oracle = repo().join("tests/compat/uwsgi-resolve");
    let liege = Path::new(env!("CARGO_BIN_EXE_liege"));
    let cases = manifest("cases.txt");
    assert!(
        cases.len() >= 40,
        "the corpus has {} cases, fewer than 40",
        cases.len()
    );
    let mut failures = Vec::new();
    for (case, env) in &cases {
        let theirs = run(&oracle, &[case], env);
        assert_eq!(
            theirs.code,
            Some(0),
            "uWSGI refused {case}: {}",
            theirs.stderr
        );
        let ours = run(liege, &["config", case], env);
        let file = case.split(':').next().unwrap_or(case);
        let difference = DIFFERENCES.iter().find(|d| d.case == file);
        if let Some(Difference {
            how: How::Refused(want),
            ..
        }) = difference
        {
            if ours.code != Some(2) || !ours.stderr.starts_with(want) {
                failures.push(format!(
                    "{case}: liege should refuse it with `{want}`, got {ours:?}"
                ));
            }
            continue;
        }
        if ours.code != Some(0) {
            failures.push(format!("{case}: liege failed: {}", ours.stderr));
            continue;
        }
        let (a, b) = match difference {
            Some(Difference {
                how: How::Normalize(f),
                ..
            }) => (f(&theirs.stdout), f(&ours.stdout)),
            Some(Difference {
                how: How::Lines(lines),
                ..
            }) => {
                let mut a = theirs.stdout.clone();
                for (uwsgi, liege) in *lines {
                    assert!(
                        a.lines().any(|l| l == *uwsgi),
                        "{case}: uWSGI no longer prints `{uwsgi}`"
                    );
                    a = a
                        .lines()
                        .map(|l| {
                            if l == *uwsgi {
                                format!("{liege}\n")
                            } else {
                                format!("{l}\n")
                            }
                        })
                        .collect();
                }
                (a, ours.stdout.clone())
            }
            _ => (theirs.stdout.clone(), ours.stdout.clone()),
        };
        if a != b {
            failures.push(format!("{case}:\n--- uWSGI\n{a}--- liege\n{b}"));
        }
    }
    for d in DIFFERENCES {
        assert!(
            cases
                .iter()
                .any(|(c, _)| c.split(':').next() == Some(d.case)),
            "difference for a missing case {}: {}",
            d.case,
            d.why
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Files uWSGI refuses are refused by liege too, with one error naming the file (and the
/// line, where there is one). errors.txt: `CASE [ENV...] | EXIT | MESSAGE`.
#[test]
fn liege_refuses_what_uwsgi_refuses() {
    ensure_oracle();
    let oracle = repo().join("tests/compat/uwsgi-resolve");
    let liege = Path::new(env!("CARGO_BIN_EXE_liege"));
    let text = fs_err::read_to_string(corpus().join("errors.txt")).expect("errors.txt");
    let mut count = 0;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut words = line.split('|').next().unwrap_or("").split_whitespace();
        let case = words.next().unwrap_or_default().to_owned();
        let env: Vec<(String, String)> = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let theirs = run(&oracle, &[&case], &env);
        assert_ne!(theirs.code, Some(0), "uWSGI accepted {case}");
        let ours = run(liege, &["config", &case], &env);
        assert_eq!(ours.code, Some(2), "{case}: {ours:?}");
        let first = ours.stderr.lines().next().unwrap_or_default();
        let located = first.split(": ").next().is_some_and(|at| {
            at.rsplit_once(':')
                .is_some_and(|(_, l)| l.parse::<u32>().is_ok())
        });
        let file = case.split(':').next().unwrap_or_default();
        assert!(
            located || first.contains(file),
            "{case}: the error names neither file:line nor the file: {first}"
        );
        assert!(!ours.stderr.contains("panicked"), "{case}: {}", ours.stderr);
        count += 1;
    }
    assert!(count >= 10, "errors.txt has {count} cases");
}
