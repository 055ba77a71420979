//! The line format of `crates/jail/seccomp/*.policy`, parsed by `build.rs` (which compiles the
//! rules with libseccomp) and by the crate's tests (which check the compiled programs against
//! the rules). Plain std only: `build.rs` includes this file with `#[path]`.
//!
//! ```text
//! # why the rule exists (a comment line above each rule, or above a group of rules for one call)
//! eperm mount
//! eperm clone arg0 &0x10000000 ==0x10000000
//! eperm socket arg0 &0xffffffff ==16 arg2 !=0
//! enosys clone3
//! eperm open_tree_attr=467
//! ```
//!
//! A rule is `ACTION SYSCALL [CONDITION]...`. ACTION is `eperm` or `enosys` (the call fails with
//! that errno; there is no kill action). SYSCALL is a name, or `NAME=NR` for a call the build's
//! libseccomp does not know yet. A CONDITION is `argN OPVALUE` (OP one of `==` `!=` `<` `<=` `>`
//! `>=`) or `argN &MASK ==VALUE`; values are decimal or `0x` hexadecimal, `_` allowed, compared
//! as the 64-bit register. The conditions of a rule are AND'ed, the rules for one call OR'ed;
//! anything no rule matches is allowed. A rule may test each argument once (a libseccomp limit).

use std::fmt;

/// What a matching call gets: it fails with this errno, unexecuted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `EPERM` (1): "operation not permitted", what callers expect of a refused privilege.
    Eperm,
    /// `ENOSYS` (38): "not implemented", which makes glibc fall back (clone3 to clone).
    Enosys,
}

impl Action {
    /// The errno number on x86_64 Linux.
    pub(crate) fn errno(self) -> u16 {
        match self {
            Action::Eperm => 1,
            Action::Enosys => 38,
        }
    }

    fn parse(word: &str) -> Option<Action> {
        match word {
            "eperm" => Some(Action::Eperm),
            "enosys" => Some(Action::Enosys),
            _ => None,
        }
    }
}

/// How an argument is compared with a rule's value (64-bit, unsigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `arg & mask == value`.
    MaskedEq(u64),
}

/// One condition of a rule: `arg<index> <op> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cond {
    pub(crate) arg: u8,
    pub(crate) op: Op,
    pub(crate) value: u64,
}

impl Cond {
    /// Whether an argument register holding `arg` satisfies the condition.
    pub(crate) fn holds(&self, arg: u64) -> bool {
        let v = self.value;
        match self.op {
            Op::Eq => arg == v,
            Op::Ne => arg != v,
            Op::Lt => arg < v,
            Op::Le => arg <= v,
            Op::Gt => arg > v,
            Op::Ge => arg >= v,
            Op::MaskedEq(mask) => arg & mask == v,
        }
    }
}

/// One rule of a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// Its line in the file, from 1.
    pub(crate) line: usize,
    pub(crate) action: Action,
    pub(crate) syscall: String,
    /// The number written after `=`, for a call the build's libseccomp may not know.
    pub(crate) nr: Option<u32>,
    pub(crate) conds: Vec<Cond>,
}

impl Rule {
    /// Whether a call with these argument registers matches the rule.
    pub(crate) fn matches(&self, args: &[u64; 6]) -> bool {
        self.conds.iter().all(|c| c.holds(args[usize::from(c.arg)]))
    }
}

/// A line of a policy file that does not parse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// The line, from 1.
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses a policy file's text into its rules, in file order.
pub(crate) fn parse(text: &str) -> Result<Vec<Rule>, ParseError> {
    let mut rules: Vec<Rule> = Vec::new();
    // What the previous line was: a comment may head a rule, a rule may be followed by more
    // rules for the same call (a group under one comment).
    let mut commented = false;
    let mut previous_syscall: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| ParseError { line, message };
        let content = raw.trim();
        if content.is_empty() {
            commented = false;
            previous_syscall = None;
            continue;
        }
        if content.starts_with('#') {
            commented = true;
            previous_syscall = None;
            continue;
        }
        let rule = parse_rule(content, line).map_err(err)?;
        let in_group = previous_syscall.as_deref() == Some(rule.syscall.as_str());
        if !commented && !in_group {
            return Err(ParseError {
                line,
                message: format!(
                    "the rule for `{}` has no `#` comment line above it saying why",
                    rule.syscall
                ),
            });
        }
        if let Some(other) = rules
            .iter()
            .find(|r| r.syscall == rule.syscall && r.nr != rule.nr)
        {
            return Err(ParseError {
                line,
                message: format!(
                    "`{}` is given another number than on line {}",
                    rule.syscall, other.line
                ),
            });
        }
        previous_syscall = Some(rule.syscall.clone());
        commented = false;
        rules.push(rule);
    }
    Ok(rules)
}

fn parse_rule(content: &str, line: usize) -> Result<Rule, String> {
    let mut words = content.split_whitespace();
    let action_word = words.next().unwrap_or_default();
    let action = Action::parse(action_word)
        .ok_or_else(|| format!("unknown action `{action_word}` (expected `eperm` or `enosys`)"))?;
    let call = words
        .next()
        .ok_or_else(|| format!("`{action_word}` needs a system call name"))?;
    let (syscall, nr) = match call.split_once('=') {
        Some((name, nr)) => {
            let nr = parse_number(nr)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("bad system call number `{nr}` in `{call}`"))?;
            (name, Some(nr))
        }
        None => (call, None),
    };
    if syscall.is_empty()
        || !syscall
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!("bad system call name `{syscall}`"));
    }
    let mut conds: Vec<Cond> = Vec::new();
    while let Some(word) = words.next() {
        let arg = word
            .strip_prefix("arg")
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| *n < 6)
            .ok_or_else(|| format!("expected an argument `arg0`..`arg5`, found `{word}`"))?;
        if conds.iter().any(|c| c.arg == arg) {
            return Err(format!(
                "`arg{arg}` is tested twice in one rule (libseccomp takes one test per argument: \
                 split the rule, or use a mask)"
            ));
        }
        let test = words
            .next()
            .ok_or_else(|| format!("`arg{arg}` needs a test, such as `==3` or `&0xf ==3`"))?;
        let cond = if let Some(mask) = test.strip_prefix('&') {
            let mask = parse_number(mask).ok_or_else(|| format!("bad mask `{test}`"))?;
            let value_word = words
                .next()
                .ok_or_else(|| format!("the mask `{test}` needs a `==VALUE` after it"))?;
            let value = value_word
                .strip_prefix("==")
                .and_then(parse_number)
                .ok_or_else(|| format!("a mask is followed by `==VALUE`, found `{value_word}`"))?;
            if mask == 0 {
                return Err(format!("the mask `{test}` is zero"));
            }
            if value & !mask != 0 {
                return Err(format!(
                    "`{value_word}` has bits outside the mask `{test}`: the rule never matches"
                ));
            }
            Cond {
                arg,
                op: Op::MaskedEq(mask),
                value,
            }
        } else {
            let (op, rest) = split_op(test).ok_or_else(|| {
                format!(
                    "expected a test `==`, `!=`, `<`, `<=`, `>`, `>=` or `&MASK`, found `{test}`"
                )
            })?;
            let value = parse_number(rest).ok_or_else(|| format!("bad value in `{test}`"))?;
            Cond { arg, op, value }
        };
        conds.push(cond);
    }
    Ok(Rule {
        line,
        action,
        syscall: syscall.to_owned(),
        nr,
        conds,
    })
}

fn split_op(test: &str) -> Option<(Op, &str)> {
    // Two-character operators first, so `<=` is not read as `<` and `=...`.
    for (text, op) in [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ] {
        if let Some(rest) = test.strip_prefix(text) {
            return Some((op, rest));
        }
    }
    None
}

/// A decimal or `0x` hexadecimal number, with `_` separators allowed.
fn parse_number(text: &str) -> Option<u64> {
    let digits: String = text.chars().filter(|c| *c != '_').collect();
    if let Some(hex) = digits.strip_prefix("0x") {
        if hex.is_empty() {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    } else {
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Rule {
        let rules = parse(text).unwrap();
        assert_eq!(rules.len(), 1, "{rules:?}");
        rules.into_iter().next().unwrap()
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_rule_with_its_comment() {
        let rule = one("# why\neperm mount\n");
        assert_eq!(
            rule,
            Rule {
                line: 2,
                action: Action::Eperm,
                syscall: "mount".into(),
                nr: None,
                conds: vec![],
            }
        );
    }

    #[test]
    fn conditions_masks_and_numbers() {
        let rule = one("# why\neperm socket arg0 &0xffff_ffff ==16 arg2 !=0 arg1 >=0x10\n");
        assert_eq!(
            rule.conds,
            vec![
                Cond {
                    arg: 0,
                    op: Op::MaskedEq(0xffff_ffff),
                    value: 16
                },
                Cond {
                    arg: 2,
                    op: Op::Ne,
                    value: 0
                },
                Cond {
                    arg: 1,
                    op: Op::Ge,
                    value: 16
                },
            ]
        );
        assert!(rule.matches(&[0x1_0000_0010, 16, 9, 0, 0, 0]));
        assert!(!rule.matches(&[0x10, 16, 0, 0, 0, 0]));
        assert!(!rule.matches(&[0x11, 16, 9, 0, 0, 0]));
        let rule = one("# why\nenosys open_tree_attr=467 arg5 <3\n");
        assert_eq!((rule.action, rule.nr), (Action::Enosys, Some(467)));
        assert_eq!(rule.conds[0].op, Op::Lt);
        let rule = one("# why\neperm x arg3 <=7 arg4 >18446744073709551615\n");
        assert_eq!(rule.conds[0].op, Op::Le);
        assert_eq!((rule.conds[1].op, rule.conds[1].value), (Op::Gt, u64::MAX));
    }

    #[test]
    fn a_group_shares_one_comment_and_a_blank_line_ends_it() {
        let rules = parse("# why\neperm clone arg0 &1 ==1\neperm clone arg0 &2 ==2\n").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            error("# why\neperm clone\neperm unshare\n"),
            "line 3: the rule for `unshare` has no `#` comment line above it saying why"
        );
        assert_eq!(
            error("# why\neperm clone\n\neperm clone\n"),
            "line 4: the rule for `clone` has no `#` comment line above it saying why"
        );
    }

    #[test]
    fn what_does_not_parse_is_named_with_its_line() {
        let cases = [
            (
                "kill mount",
                "line 2: unknown action `kill` (expected `eperm` or `enosys`)",
            ),
            ("eperm", "line 2: `eperm` needs a system call name"),
            ("eperm Mount", "line 2: bad system call name `Mount`"),
            ("eperm x=y", "line 2: bad system call number `y` in `x=y`"),
            (
                "eperm x arg6 ==1",
                "line 2: expected an argument `arg0`..`arg5`, found `arg6`",
            ),
            (
                "eperm x arg0",
                "line 2: `arg0` needs a test, such as `==3` or `&0xf ==3`",
            ),
            (
                "eperm x arg0 =1",
                "line 2: expected a test `==`, `!=`, `<`, `<=`, `>`, `>=` or `&MASK`, found `=1`",
            ),
            ("eperm x arg0 ==0xg", "line 2: bad value in `==0xg`"),
            ("eperm x arg0 ==", "line 2: bad value in `==`"),
            (
                "eperm x arg0 &0x3",
                "line 2: the mask `&0x3` needs a `==VALUE` after it",
            ),
            (
                "eperm x arg0 &0x3 !=1",
                "line 2: a mask is followed by `==VALUE`, found `!=1`",
            ),
            ("eperm x arg0 &0 ==0", "line 2: the mask `&0` is zero"),
            (
                "eperm x arg0 &0x3 ==4",
                "line 2: `==4` has bits outside the mask `&0x3`: the rule never matches",
            ),
            (
                "eperm x arg0 >1 arg0 <9",
                "line 2: `arg0` is tested twice in one rule (libseccomp takes one test per \
                 argument: split the rule, or use a mask)",
            ),
            (
                "eperm x arg0 ==18446744073709551616",
                "line 2: bad value in `==18446744073709551616`",
            ),
        ];
        for (rule, message) in cases {
            assert_eq!(error(&format!("# why\n{rule}\n")), message, "{rule}");
        }
        assert_eq!(
            error("# a\neperm x=3\n# b\neperm x=4\n"),
            "line 4: `x` is given another number than on line 2"
        );
    }
}
