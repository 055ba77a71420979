//! yaml, as uWSGI built with libyaml reads it (`core/yaml.c`): a token-level walk, not a
//! document model. Inside the mapping named after the section, each `key: scalar` is an option
//! and each `key: [list]` or block list repeats the key; parsing stops where that mapping ends.
//! The walk below follows uWSGI's state machine token by token.

use yaml_rust2::scanner::{Scanner, TokenType};

use super::{Parsed, RawEntry, SyntaxError};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    None,
    Key,
    Value,
    Sequence,
}

fn line_no(line: usize) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

pub(super) fn parse(text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    let mut parsed = Parsed::default();
    let mut scanner = Scanner::new(text.chars());
    let mut status = Status::None;
    // Nesting depth inside the section's mapping; 0 = not in it.
    let mut depth: u32 = 0;
    let mut key: Option<(String, u32)> = None;
    let mut ignored_nested = false;
    for token in scanner.by_ref() {
        let line = line_no(token.0.line());
        match token.1 {
            TokenType::StreamEnd => break,
            TokenType::Key => status = Status::Key,
            TokenType::Value => status = Status::Value,
            TokenType::FlowSequenceStart | TokenType::BlockSequenceStart => {
                if depth > 0 {
                    depth += 1;
                }
                status = Status::Sequence;
            }
            TokenType::FlowEntry | TokenType::BlockEntry => status = Status::Sequence,
            TokenType::BlockMappingStart => {
                if depth > 0 {
                    depth += 1;
                    if !ignored_nested {
                        ignored_nested = true;
                        parsed.warnings.push((
                            line,
                            "a nested mapping inside the section: uWSGI reads its keys as options too".into(),
                        ));
                    }
                } else if key.as_ref().is_some_and(|(k, _)| k == section) {
                    depth = 1;
                    parsed.found_section = true;
                }
            }
            TokenType::BlockEnd | TokenType::FlowSequenceEnd => {
                if depth > 0 {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(parsed);
                    }
                }
                key = None;
                status = Status::None;
            }
            TokenType::Scalar(_, value) => match status {
                Status::Key => key = Some((value, line)),
                Status::Value | Status::Sequence => {
                    if depth > 0
                        && let Some((k, _)) = &key
                    {
                        parsed.entries.push(RawEntry {
                            key: k.clone(),
                            value,
                            line,
                        });
                    }
                    if status == Status::Value {
                        key = None;
                        status = Status::None;
                    }
                }
                Status::None => {
                    if depth > 0 {
                        parsed.warnings.push((line, format!("unexpected scalar `{value}`: the rest of the file is ignored, as uWSGI does")));
                    }
                    return Ok(parsed);
                }
            },
            TokenType::FlowMappingStart if depth > 0 => {
                parsed.warnings.push((
                    line,
                    "a flow mapping `{...}` inside the section: uWSGI reads its keys as options too".into(),
                ));
                status = Status::None;
            }
            _ => status = Status::None,
        }
    }
    if let Some(err) = scanner.get_error() {
        return Err(SyntaxError::new(
            line_no(err.marker().line()),
            format!("invalid yaml: {}", err.info()),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str, section: &str) -> Vec<(String, String, u32)> {
        parse(text, section)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    #[test]
    fn scalars_and_lists_of_the_section() {
        let text = "other:\n  a: 0\nuwsgi:\n  socket: a\n  env:\n    - X=1\n    - Y=2\n  cron: [b, c]\n  master: true\nafter:\n  z: 1\n";
        assert_eq!(
            kv(text, "uwsgi"),
            [
                ("socket".into(), "a".into(), 4),
                ("env".into(), "X=1".into(), 6),
                ("env".into(), "Y=2".into(), 7),
                ("cron".into(), "b".into(), 8),
                ("cron".into(), "c".into(), 8),
                ("master".into(), "true".into(), 9),
            ]
        );
        assert_eq!(kv(text, "after"), [("z".into(), "1".into(), 11)]);
    }

    #[test]
    fn indentless_lists_repeat_too() {
        let text = "uwsgi:\n  env:\n  - A=1\n  - B=2\n  master: 1\n";
        let got: Vec<_> = kv(text, "uwsgi").into_iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(
            got,
            [
                ("env".into(), "A=1".into()),
                ("env".into(), "B=2".into()),
                ("master".into(), "1".into())
            ]
        );
    }

    #[test]
    fn broken_yaml_names_its_line() {
        let err = parse("uwsgi:\n  a: 1\n  b: \"unclosed\n", "uwsgi").unwrap_err();
        assert!(err.message.starts_with("invalid yaml"), "{}", err.message);
        assert!(err.line >= 3, "{}", err.line);
    }
}
