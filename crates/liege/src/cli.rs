//! The command line: `liege config`, `liege request`, `liege --help`, `liege --version`, and
//! uWSGI-style instance command lines (`liege --ini app.ini`, `liege app.yaml`, `liege --socket ...`).

use std::io::Write;
use std::process::ExitCode;

use liege_config::registry::{self, Arg, Known, OPTIONS, Part};
use liege_config::{ConfigError, Context, HostAccess, Resolved, Warning, argv};

use crate::host;

const USAGE: &str = "\
usage: liege [OPTIONS] [FILE[:SECTION]...]    run an instance (uWSGI-style options and config files)
       liege config [--json] FILE[:SECTION]   print the options FILE resolves to, after every expansion
       liege docs options                     print docs/options.md, generated from the option registry
       liege request [--run-dir DIR] [--uwsgi] VASSAL SOCKET [PATH]
                                              GET PATH from a vassal's socket in its run dir, from the host
       liege --help | --version";

/// Exit status for a bad config or command line.
const BAD_CONFIG: u8 = 2;

pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`liege config f | head`) is not an error worth reporting.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

pub(crate) fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

fn report(warnings: &[Warning]) {
    for w in warnings {
        err(&w.to_string());
    }
}

fn fail(e: &ConfigError) -> ExitCode {
    err(&e.to_string());
    ExitCode::from(BAD_CONFIG)
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs the command line (without the program name).
pub(crate) fn run(args: &[String]) -> ExitCode {
    // Started by an emperor: the options come from it, not from the command line.
    if let Some(code) = vassal() {
        return code;
    }
    match args.first().map(String::as_str) {
        Some("config") => config(&args[1..]),
        Some("request") => crate::request::run(&args[1..]),
        // Not in the usage: the emperor (or a master) starts it, with its descriptors.
        Some(liege_master::gateway::SUBCOMMAND) => crate::gateway::run(&args[1..]),
        Some("docs") if args.get(1).map(String::as_str) == Some("options") => {
            out(&registry::render_markdown());
            ExitCode::SUCCESS
        }
        None => {
            err(USAGE);
            ExitCode::from(BAD_CONFIG)
        }
        Some(_) => instance(args),
    }
}

fn with_context<T>(f: impl FnOnce(&Context<'_>) -> T) -> T {
    with_context_of(false, f)
}

/// A context for resolving options; `is_reload` for the re-reads of a running instance.
fn with_context_of<T>(is_reload: bool, f: impl FnOnce(&Context<'_>) -> T) -> T {
    let host = host::facts();
    let access = HostAccess::trusted(std::path::PathBuf::from(&host.cwd));
    let ctx = Context {
        access: &access,
        env: &env_lookup,
        host,
        is_reload,
    };
    f(&ctx)
}

/// `liege config [--json] FILE[:SECTION]`
fn config(args: &[String]) -> ExitCode {
    let mut json = false;
    let mut file = None;
    for a in args {
        match a.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                out(&format!("{USAGE}\n"));
                return ExitCode::SUCCESS;
            }
            other if other.starts_with('-') => {
                err(&format!("liege config: unknown flag `{other}`\n{USAGE}"));
                return ExitCode::from(BAD_CONFIG);
            }
            other if file.is_none() => file = Some(other.to_owned()),
            other => {
                err(&format!(
                    "liege config: one file at a time (`{other}` is a second one)"
                ));
                return ExitCode::from(BAD_CONFIG);
            }
        }
    }
    let Some(file) = file else {
        err(&format!("liege config: name a file\n{USAGE}"));
        return ExitCode::from(BAD_CONFIG);
    };
    let resolved = match with_context(|ctx| liege_config::resolve_file(&file, ctx)) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    report(&resolved.warnings);
    out(&render(&resolved, json));
    ExitCode::SUCCESS
}

fn render(resolved: &Resolved, json: bool) -> String {
    if json {
        let pairs: Vec<[&str; 2]> = resolved
            .options
            .iter()
            .map(|o| [o.key.as_str(), o.value.as_str()])
            .collect();
        let mut s = serde_json::to_string_pretty(&pairs).unwrap_or_default();
        s.push('\n');
        s
    } else {
        resolved
            .options
            .iter()
            .map(|o| format!("{} = {}\n", o.key, o.value))
            .collect()
    }
}

/// The uWSGI options liege does not implement yet, first entry of each.
fn unimplemented(resolved: &Resolved) -> Vec<&liege_config::Opt> {
    let mut missing: Vec<&liege_config::Opt> = Vec::new();
    for o in resolved.options.iter() {
        if matches!(registry::lookup(&o.key), Known::Uwsgi { .. })
            && !missing.iter().any(|m| m.key == o.key)
        {
            missing.push(o);
        }
    }
    missing
}

/// Warnings worth showing for an instance (the unimplemented options are refused instead).
fn instance_warnings(resolved: &Resolved) -> Vec<Warning> {
    resolved
        .warnings
        .iter()
        .filter(|w| !w.message.contains("does not implement"))
        .cloned()
        .collect()
}

/// The folder of the running `liege`, where the worker executables are looked up first.
fn exe_dir() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_default()
}

/// A vassal's master, when the environment names the emperor's descriptors
/// (`LIEGE_EMPEROR_CONTROL_FD`, `LIEGE_EMPEROR_CONFIG_FD`): runs it with the options the emperor
/// resolved until it stops. `None` when no emperor started this process.
fn vassal() -> Option<ExitCode> {
    let vassal = match liege_master::Vassal::from_env() {
        Ok(v) => v?,
        Err(e) => {
            err(&format!("liege: {e}"));
            return Some(ExitCode::from(BAD_CONFIG));
        }
    };
    Some(match liege_master::run_vassal(vassal, &exe_dir()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            err(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    })
}

/// `liege --emperor DIR`: runs the emperor with the resolved options until it is stopped.
fn emperor(args: &[String], resolved: &Resolved) -> ExitCode {
    let missing = unimplemented(resolved);
    report(&instance_warnings(resolved));
    if !missing.is_empty() {
        for o in &missing {
            err(&format!(
                "{}: `{}` is a uWSGI option that liege does not implement yet",
                o.origin, o.key
            ));
        }
        err(&format!(
            "liege: refusing to start an emperor with {} unimplemented option(s)",
            missing.len()
        ));
        return ExitCode::from(BAD_CONFIG);
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            err(&format!("liege: cannot find the running binary: {e}"));
            return ExitCode::from(1);
        }
    };
    // SIGHUP reads the command line (and the files it names) again, for the router's options.
    let args = args.to_vec();
    let reload: liege_emperor::Reload = Box::new(move || {
        let parsed = argv::parse(&args).map_err(|e| e.to_string())?;
        let resolved = with_context_of(true, |ctx| liege_config::resolve_args(&parsed, ctx))
            .map_err(|e| e.to_string())?;
        Ok(resolved.options)
    });
    match liege_emperor::run(&resolved.options, &exe, host::facts(), Some(reload)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            err(&format!("liege: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}

/// `liege [OPTIONS] [FILES]`: resolves the options, then runs the instance (the master) until
/// it stops.
fn instance(args: &[String]) -> ExitCode {
    let parsed = match argv::parse(args) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if parsed.iter().any(|o| o.key == "help" || o.key == "usage") {
        out(&help());
        return ExitCode::SUCCESS;
    }
    if parsed.iter().any(|o| o.key == "version") {
        out(&format!("liege {}\n", env!("CARGO_PKG_VERSION")));
        return ExitCode::SUCCESS;
    }
    let resolved = match with_context(|ctx| liege_config::resolve_args(&parsed, ctx)) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if resolved.options.first("emperor").is_some() {
        return emperor(args, &resolved);
    }
    // `liege config` only warns about uWSGI options liege lacks; an instance refuses them, so a
    // migrated `evil-reload-on-rss` never silently does nothing.
    let missing = unimplemented(&resolved);
    report(&instance_warnings(&resolved));
    if !missing.is_empty() {
        for o in &missing {
            err(&format!(
                "{}: `{}` is a uWSGI option that liege does not implement yet",
                o.origin, o.key
            ));
        }
        err(&format!(
            "liege: refusing to start an instance with {} unimplemented option(s)",
            missing.len()
        ));
        return ExitCode::from(BAD_CONFIG);
    }
    // A reload re-reads the same command line (and so the files it names), with the same
    // checks; what fails is logged by the master, which keeps its options.
    let mut reload = || {
        let parsed = argv::parse(args).map_err(|e| e.to_string())?;
        let resolved = with_context_of(true, |ctx| liege_config::resolve_args(&parsed, ctx))
            .map_err(|e| e.to_string())?;
        report(&instance_warnings(&resolved));
        let missing = unimplemented(&resolved);
        if let Some(o) = missing.first() {
            return Err(format!(
                "{}: `{}` is a uWSGI option that liege does not implement yet",
                o.origin, o.key
            ));
        }
        Ok(resolved.options)
    };
    match liege_master::run(&resolved.options, &mut reload, &exe_dir()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            err(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

/// `liege --help`: every option liege implements, grouped by the part that uses it.
fn help() -> String {
    let mut s = format!("{USAGE}\n");
    let mut parts: Vec<Part> = OPTIONS.iter().map(|o| o.part).collect();
    parts.sort();
    parts.dedup();
    for part in parts {
        s.push_str(&format!("\n{}:\n", part.title()));
        for spec in OPTIONS.iter().filter(|o| o.part == part) {
            let flag = match spec.arg {
                Arg::Required => format!("--{} {}", spec.name, spec.kind.describe().to_uppercase()),
                Arg::Optional => format!("--{}[=VALUE]", spec.name),
                Arg::None => format!("--{}", spec.name),
            };
            s.push_str(&format!("  {flag:<34} {}\n", spec.doc));
        }
    }
    s.push_str(&format!(
        "\nliege also recognises the {} other options of uWSGI 2.0: `liege config` warns about them \
         and an instance refuses to start with them until liege implements them (docs/options.md).\n",
        registry::uwsgi_only_count()
    ));
    s
}
