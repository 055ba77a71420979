//! liege's options, each defined once. Keep them grouped by part and in a sensible reading
//! order: docs/options.md lists them in this order (`cargo run -p liege -- docs options` writes it).

use super::{Arg, Kind, Part, Spec};

const fn opt(name: &'static str, part: Part, kind: Kind, doc: &'static str) -> Spec {
    let arg = match kind {
        Kind::Flag => Arg::None,
        _ => Arg::Required,
    };
    Spec {
        name,
        aliases: &[],
        arg,
        kind,
        default: None,
        part,
        uwsgi: Some(name),
        repeatable: false,
        immediate: false,
        doc,
    }
}

impl Spec {
    const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    const fn immediate(mut self) -> Self {
        self.immediate = true;
        self
    }
    const fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }
    const fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }
    const fn own(mut self) -> Self {
        self.uwsgi = None;
        self
    }
    const fn optional_arg(mut self) -> Self {
        self.arg = Arg::Optional;
        self
    }
}

use Kind::*;
use Part::*;

/// Every option liege implements.
pub static OPTIONS: &[Spec] = &[
    // Loading files.
    opt("ini", Config, Path, "Read options from an ini file (`file.ini:section` picks a section; `:section` re-reads the last ini file) at this point of the list").immediate().repeatable(),
    opt("xml", Config, Path, "Read options from an xml file (`file.xml:id` picks `<uwsgi id=\"id\">`) at this point").aliases(&["xmlconfig"]).immediate().repeatable(),
    opt("yaml", Config, Path, "Read options from a yaml file (`file.yaml:section` picks a mapping) at this point").aliases(&["yml"]).immediate().repeatable(),
    opt("json", Config, Path, "Read options from a json file (`file.json:section` picks an object) at this point").aliases(&["js"]).immediate().repeatable(),
    opt("include", Config, Path, "Read another file, in the notation its extension names, at this point of the list").immediate().repeatable(),
    opt("inherit", Config, Path, "Read a template file after the list has been expanded: its options go at the end, and `$()`, `@()`, `%()` in it stay as written").repeatable(),
    opt("max-config-size", Config, Size, "Refuse a config file (or `@()` file, or `exec://` output) larger than this, by its size, before reading it").own().default("4m").immediate(),
    opt("strict", Config, Flag, "Make every later key that is no option an error, instead of a placeholder").immediate(),
    // Placeholders.
    opt("set", Config, Assignment, "Add `name = value` to the list (an option or a placeholder)").immediate().repeatable(),
    opt("set-placeholder", Config, Assignment, "Add a placeholder `name = value` that is not an option, for `%(name)`; its value is not expanded").aliases(&["set-ph"]).immediate().repeatable(),
    // Logic, evaluated while the file is read, on the raw value (only magic variables applied).
    opt("for", Config, Logic, "Repeat each following line, up to `endfor`, once per space-separated item, with `%(_)` as the item; line by line").immediate().repeatable(),
    opt("for-glob", Config, Logic, "Like `for`, over the paths a glob pattern matches (directories end in `/`; no match: the pattern)").immediate().repeatable(),
    opt("for-times", Config, Logic, "Like `for`, over the numbers 1 to N").immediate().repeatable(),
    opt("for-readline", Config, Logic, "Like `for`, over the lines of a file").immediate().repeatable(),
    opt("endfor", Config, Logic, "End a `for` block").aliases(&["end-for"]).optional_arg().immediate().repeatable(),
    opt("if-env", Config, Logic, "Keep the following lines, up to `endif`, when the environment variable is set (`NAME=VALUE`: has that value); `%(_)` is its value").aliases(&["ifenv"]).immediate().repeatable(),
    opt("if-not-env", Config, Logic, "Keep the following lines when the environment variable is not set (`NAME=VALUE`: has not that value)").immediate().repeatable(),
    opt("if-exists", Config, Logic, "Keep the following lines when the path exists; `%(_)` is the path").aliases(&["ifexists"]).immediate().repeatable(),
    opt("if-not-exists", Config, Logic, "Keep the following lines when the path does not exist").immediate().repeatable(),
    opt("if-file", Config, Logic, "Keep the following lines when the path is a regular file").immediate().repeatable(),
    opt("if-not-file", Config, Logic, "Keep the following lines when the path is not a regular file").immediate().repeatable(),
    opt("if-dir", Config, Logic, "Keep the following lines when the path is a directory").aliases(&["ifdir", "if-directory"]).immediate().repeatable(),
    opt("if-not-dir", Config, Logic, "Keep the following lines when the path is not a directory").immediate().repeatable(),
    opt("if-opt", Config, Logic, "Keep the following lines when an option (or placeholder) was set before (`NAME=VALUE`: to that value); `%(_)` is its value").immediate().repeatable(),
    opt("if-not-opt", Config, Logic, "Keep the following lines when an option was not set before (`NAME=VALUE`: not to that value)").immediate().repeatable(),
    opt("if-reload", Config, Logic, "Keep the following lines when the instance is reloading").optional_arg().immediate().repeatable(),
    opt("if-not-reload", Config, Logic, "Keep the following lines when the instance is starting, not reloading").optional_arg().immediate().repeatable(),
    opt("if-hostname", Config, Logic, "Keep the following lines when the host is named so").immediate().repeatable(),
    opt("if-not-hostname", Config, Logic, "Keep the following lines when the host is not named so").immediate().repeatable(),
    opt("endif", Config, Logic, "End an `if-*` block").aliases(&["end-if"]).optional_arg().immediate().repeatable(),
    // The command.
    opt("help", Command, Flag, "Print the options liege knows, grouped by the part that uses them").aliases(&["usage"]),
    opt("version", Command, Flag, "Print liege's version"),
];
