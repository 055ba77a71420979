//! The command line, as uWSGI's getopt_long reads it: `--key value`, `--key=value`, `--flag`,
//! one-letter forms (`-s :8000`, `-M`, bundled `-Mp 2`), `--` to end the options. Plain words
//! are config files, read after the options, in the notation their extension names.

use crate::error::ConfigError;
use crate::notation::Notation;
use crate::origin::Origin;
use crate::registry::{self, Arg, Known};

/// One option from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgOption {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// The value a flag written without one takes (what uWSGI's `--show-config` prints for it).
pub const FLAG_VALUE: &str = "true";

fn arg_of(name: &str) -> Option<Arg> {
    match registry::lookup(name) {
        Known::Liege(spec) => Some(spec.arg),
        Known::Uwsgi { arg } => Some(arg),
        Known::Unknown => None,
    }
}

fn position(i: usize) -> Origin {
    Origin::Argv {
        position: u32::try_from(i + 1).unwrap_or(u32::MAX),
    }
}

fn unknown(name: &str, at: Origin) -> ConfigError {
    let hint = registry::suggest(name)
        .map(|s| format!("; did you mean `--{s}`?"))
        .unwrap_or_default();
    ConfigError::UnknownArgument {
        origin: at,
        name: format!("--{name}"),
        hint,
    }
}

/// Reads `args` (without the program name) into options, in uWSGI's order: every option in the
/// order written, then the config files named as plain words.
pub fn parse(args: &[String]) -> Result<Vec<ArgOption>, ConfigError> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let at = position(i);
        if a == "--" {
            files.extend((i + 1..args.len()).map(|j| (j, args[j].clone())));
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let Some(arg) = arg_of(name) else {
                return Err(unknown(name, at));
            };
            let value = match (arg, inline) {
                (_, Some(v)) => v.to_owned(),
                (Arg::Required, None) => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| ConfigError::MissingArgument {
                            origin: at.clone(),
                            name: format!("--{name}"),
                        })?
                }
                (Arg::None | Arg::Optional, None) => FLAG_VALUE.to_owned(),
            };
            out.push(ArgOption {
                key: name.to_owned(),
                value,
                origin: at,
            });
        } else if let Some(shorts) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let chars: Vec<char> = shorts.chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                let Some(name) = registry::short_form(c) else {
                    return Err(ConfigError::UnknownArgument {
                        origin: at,
                        name: format!("-{c}"),
                        hint: String::new(),
                    });
                };
                let arg = arg_of(name).unwrap_or(Arg::Required);
                if arg == Arg::Required {
                    let rest: String = chars[k + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| ConfigError::MissingArgument {
                                origin: at.clone(),
                                name: format!("-{c}"),
                            })?
                    } else {
                        rest
                    };
                    out.push(ArgOption {
                        key: name.to_owned(),
                        value,
                        origin: at.clone(),
                    });
                    break;
                }
                out.push(ArgOption {
                    key: name.to_owned(),
                    value: FLAG_VALUE.to_owned(),
                    origin: at.clone(),
                });
                k += 1;
            }
        } else {
            files.push((i, a.clone()));
        }
        i += 1;
    }
    for (j, file) in files {
        let at = position(j);
        let (path, _) = file
            .rsplit_once(':')
            .filter(|(p, _)| Notation::from_path(p).is_some())
            .unwrap_or((&file, ""));
        let Some(notation) = Notation::from_path(path) else {
            return Err(ConfigError::UnknownNotation {
                origin: at,
                path: file,
            });
        };
        out.push(ArgOption {
            key: notation.to_string(),
            value: file,
            origin: at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(args: &[&str]) -> Vec<(String, String)> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        parse(&args)
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.value))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn long_forms() {
        assert_eq!(
            kv(&[
                "--socket",
                ":80",
                "--master",
                "--processes=4",
                "--ini",
                "a.ini"
            ]),
            pairs(&[
                ("socket", ":80"),
                ("master", "true"),
                ("processes", "4"),
                ("ini", "a.ini")
            ])
        );
    }

    #[test]
    fn short_forms_and_bundles() {
        assert_eq!(
            kv(&["-s", ":80", "-Mp", "2", "-w", "app:application", "-H/venv"]),
            pairs(&[
                ("socket", ":80"),
                ("master", "true"),
                ("processes", "2"),
                ("module", "app:application"),
                ("home", "/venv")
            ])
        );
    }

    #[test]
    fn plain_words_are_files_read_after_the_options() {
        assert_eq!(
            kv(&["app.yaml", "--socket", ":80", "b.ini:web"]),
            pairs(&[
                ("socket", ":80"),
                ("yaml", "app.yaml"),
                ("ini", "b.ini:web")
            ])
        );
    }

    #[test]
    fn unknown_options_and_missing_values_are_errors() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let err = parse(&args(&["--procesess", "2"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command line argument 1: unknown option `--procesess`; did you mean `--processes`?"
        );
        let err = parse(&args(&["--socket"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command line argument 1: `--socket` needs a value"
        );
        let err = parse(&args(&["app.conf"])).unwrap_err();
        assert!(
            err.to_string().contains("cannot tell the notation"),
            "{err}"
        );
    }
}
