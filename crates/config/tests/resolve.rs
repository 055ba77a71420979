//! The expansion rules, end to end through the loader, on files held in memory.

use liege_config::{ConfigError, Context, HostFacts, MemoryAccess, Resolved, resolve_file};

fn env(name: &str) -> Option<String> {
    match name {
        "LIEGE_T_HOME" => Some("/home/t".into()),
        "LIEGE_T_MODE" => Some("prod".into()),
        _ => None,
    }
}

fn resolve(access: &MemoryAccess, file: &str) -> Result<Resolved, ConfigError> {
    let ctx = Context {
        access,
        env: &env,
        host: HostFacts::for_tests("/mem"),
        is_reload: false,
    };
    resolve_file(file, &ctx)
}

fn pairs(r: &Resolved) -> Vec<String> {
    r.options
        .iter()
        .map(|o| format!("{} = {}", o.key, o.value))
        .collect()
}

fn ok(files: &[(&str, &str)], main: &str) -> Vec<String> {
    let access = files
        .iter()
        .fold(MemoryAccess::new(), |a, (p, c)| a.with(p, *c));
    pairs(&resolve(&access, main).unwrap_or_else(|e| panic!("{e}")))
}

fn err(files: &[(&str, &str)], main: &str) -> String {
    let access = files
        .iter()
        .fold(MemoryAccess::new(), |a, (p, c)| a.with(p, *c));
    resolve(&access, main)
        .map(|r| pairs(&r))
        .unwrap_err()
        .to_string()
}

#[test]
fn placeholders_take_the_first_definition_even_when_it_comes_later() {
    let got = ok(
        &[(
            "a.ini",
            "[uwsgi]\nsocket = %(base)/s\nbase = /srv/one\nbase = /srv/two\n",
        )],
        "a.ini",
    );
    assert_eq!(
        got,
        ["socket = /srv/one/s", "base = /srv/one", "base = /srv/two"]
    );
}

#[test]
fn for_expands_line_by_line() {
    let got = ok(
        &[(
            "a.ini",
            "[uwsgi]\nfor = x y\na = %(_)\nb = %(_)\nendfor =\n",
        )],
        "a.ini",
    );
    assert_eq!(
        got,
        ["for = x y", "a = x", "a = y", "b = x", "b = y", "endfor = "]
    );
}

#[test]
fn conditions_test_the_raw_value_before_expansion() {
    let files = [(
        "a.ini",
        "[uwsgi]\nbase = /mem\nif-exists = %(base)/a.ini\nseen = yes\nendif =\nif-exists = /mem/a.ini\nfound = %(_)\nendif =\n",
    )];
    let got = ok(&files, "a.ini");
    assert!(!got.contains(&"seen = yes".to_owned()), "{got:?}");
    assert!(got.contains(&"found = /mem/a.ini".to_owned()), "{got:?}");
}

#[test]
fn env_conditions_and_references() {
    let text = "[uwsgi]\nif-env = LIEGE_T_MODE=prod\nmode = %(_)\nendif =\nif-not-env = LIEGE_T_NOPE\nunset = yes\nendif =\nhome = $(LIEGE_T_HOME)/app\nkept = $(LIEGE_T_NOPE)\n";
    let got = ok(&[("a.ini", text)], "a.ini");
    for want in [
        "mode = prod",
        "unset = yes",
        "home = /home/t/app",
        "kept = $(LIEGE_T_NOPE)",
    ] {
        assert!(got.contains(&want.to_owned()), "{want} not in {got:?}");
    }
}

#[test]
fn includes_splice_at_their_position_in_any_notation() {
    let files = [
        ("a.ini", "[uwsgi]\nfirst = 1\ninclude = b.json\nlast = 4\n"),
        (
            "b.json",
            "{\"uwsgi\": {\"two\": 2, \"more\": [\"x\", true]}}",
        ),
    ];
    assert_eq!(
        ok(&files, "a.ini"),
        [
            "first = 1",
            "include = b.json",
            "two = 2",
            "more = x",
            "more = 1",
            "last = 4"
        ]
    );
}

#[test]
fn inherit_comes_last_and_is_not_expanded() {
    let files = [
        ("a.ini", "[uwsgi]\ninherit = t.ini\nname = %n\n"),
        ("t.ini", "[uwsgi]\nfrom = %n\nraw = %(name)\n"),
    ];
    assert_eq!(
        ok(&files, "a.ini"),
        ["inherit = t.ini", "name = a", "from = t", "raw = %(name)"]
    );
}

#[test]
fn set_placeholder_is_not_expanded_and_cannot_name_an_option() {
    let got = ok(
        &[(
            "a.ini",
            "[uwsgi]\nset-ph = p=$(LIEGE_T_HOME)\nset = q=$(LIEGE_T_HOME)\n",
        )],
        "a.ini",
    );
    assert_eq!(
        got,
        [
            "set-ph = p=$(LIEGE_T_HOME)",
            "p = $(LIEGE_T_HOME)",
            "set = q=$(LIEGE_T_HOME)",
            "q = /home/t"
        ]
    );
    let e = err(
        &[("a.ini", "[uwsgi]\nset-placeholder = socket=x\n")],
        "a.ini",
    );
    assert_eq!(
        e,
        "a.ini:2: `socket` is an option, it cannot be used as a placeholder"
    );
}

#[test]
fn magic_variables_describe_the_file_they_are_in() {
    let files = [
        ("app.ini", "[uwsgi]\ninclude = inc/part.ini\nhere = %n %d\n"),
        ("inc/part.ini", "[uwsgi]\nthere = %n %c %N\n"),
    ];
    assert_eq!(
        ok(&files, "app.ini"),
        [
            "include = inc/part.ini",
            "there = part inc app",
            "here = app /mem/"
        ]
    );
}

#[test]
fn bad_input_names_the_file_and_line() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("a.ini", "[uwsgi]\nfor = a b\nx = %(_)\n")],
            "a.ini:2: `for` is never closed\nhint: end it with `endfor`",
        ),
        (
            &[("a.ini", "[uwsgi]\nif-env = LIEGE_T_MODE\nfor = a\n")],
            "a.ini:3: `for` inside the `if-env` block opened at a.ini:2: blocks do not nest",
        ),
        (
            &[
                ("a.ini", "[uwsgi]\ninclude = b.ini\n"),
                ("b.ini", "[uwsgi]\ninclude = a.ini\n"),
            ],
            "b.ini:2: `a.ini` includes itself (through a.ini -> b.ini -> a.ini)",
        ),
        (
            &[("a.ini", "[uwsgi]\ninclude = missing.ini\n")],
            "a.ini:2: cannot read `missing.ini`: entity not found",
        ),
        (
            &[("a.ini", "[uwsgi]\nstrict\nprocesess = 2\n")],
            "a.ini:3: unknown option `procesess` (strict mode); did you mean `processes`?",
        ),
        (
            &[("a.ini", "[uwsgi]\nx = @(exec://id)\n")],
            "a.ini:2: `exec://` is not allowed here (`id`)",
        ),
        (
            &[("a.ini", "[uwsgi]\nx = y\n\u{0}")],
            "a.ini:3: `a.ini` is a binary file, not a config file",
        ),
        (
            &[("a.ini", "[uwsgi]\nself = x%(self)\n")],
            "a.ini:2: expanding `self` does not end (a placeholder that refers to itself?)",
        ),
        (
            &[("a.ini", "[uwsgi]\nset = novalue\n")],
            "a.ini:2: `set` takes `name=value`, not `novalue`",
        ),
        (
            &[("a.ini", "[uwsgi]\nif-plugin = python\n")],
            "a.ini:2: `if-plugin` is not supported by liege: liege has no plugins: its language workers are chosen by the app options",
        ),
    ];
    for (files, want) in cases {
        assert_eq!(&err(files, "a.ini"), want);
    }
}

#[test]
fn a_list_that_explodes_is_refused() {
    let text = "[uwsgi]\nfor-times = 10000\na = %(_)\nb = %(_)\nc = %(_)\nd = %(_)\ne = %(_)\nf = %(_)\ng = %(_)\nh = %(_)\ni = %(_)\nj = %(_)\nk = %(_)\nendfor =\n";
    assert_eq!(
        err(&[("a.ini", text)], "a.ini"),
        "a.ini:12: more than 100000 options"
    );
}

#[test]
fn invalid_utf8_names_its_line() {
    let access = MemoryAccess::new().with("a.ini", b"[uwsgi]\nok = 1\nbad = \xff\n".to_vec());
    let e = resolve(&access, "a.ini").unwrap_err().to_string();
    assert_eq!(e, "a.ini:3: `a.ini` is not valid UTF-8");
}

#[test]
fn a_file_over_max_config_size_is_refused() {
    let big = "[uwsgi]\nmax-config-size = 100\ninclude = b.ini\n";
    let access = MemoryAccess::new()
        .with("a.ini", big)
        .with("b.ini", vec![b'#'; 200]);
    let e = resolve(&access, "a.ini").unwrap_err().to_string();
    assert_eq!(
        e,
        "a.ini:3: `b.ini` is 200 bytes, more than max-config-size (100 bytes)"
    );
}

#[test]
fn warnings_name_typos_and_unknown_magic() {
    let access = MemoryAccess::new().with(
        "a.ini",
        "[uwsgi]\nprocesse = 2\nbase = /x\nsock = %(base)/%Y\n",
    );
    let r = resolve(&access, "a.ini").unwrap();
    let w: Vec<String> = r.warnings.iter().map(ToString::to_string).collect();
    assert!(w.contains(&"a.ini:4: warning: `%Y` is no magic variable: it becomes empty, as in uWSGI (write `%%` for a percent sign)".to_owned()), "{w:?}");
    assert!(w.contains(&"a.ini:2: warning: `processe` is no option (taken as a placeholder); did you mean `processes`?".to_owned()), "{w:?}");
    assert!(
        !w.iter().any(|x| x.contains("`base`")),
        "a placeholder in use is no typo: {w:?}"
    );
}
