//! ini, as `core/ini.c` reads it: line based, no quoting, no escapes, no continuation lines,
//! whole-line `;` and `#` comments only, `[uwsgi]` by default, every section of the asked name.

use super::{Parsed, RawEntry, SyntaxError};

/// uWSGI trims blanks, tabs and carriage returns around lines, keys and values.
fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r'])
}

pub(super) fn parse(text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    let mut parsed = Parsed::default();
    let mut current: Option<&str> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let content = trim(raw);
        if content.is_empty() || content.starts_with(';') || content.starts_with('#') {
            continue;
        }
        if let Some(header) = content.strip_prefix('[') {
            // uWSGI drops the last character whatever it is; liege insists that it is `]`.
            let Some(name) = header.strip_suffix(']') else {
                return Err(SyntaxError::new(
                    line,
                    format!("unclosed section header `{content}`: a section is written `[name]`"),
                ));
            };
            current = Some(name);
            continue;
        }
        // A line without `=` is a key whose value is empty (uWSGI's bare boolean).
        let (key, value) = content.split_once('=').unwrap_or((content, ""));
        if current == Some(section) {
            parsed.found_section = true;
            parsed.entries.push(RawEntry {
                key: trim(key).to_owned(),
                value: trim(value).to_owned(),
                line,
            });
        }
    }
    let header = format!("[{section}]");
    if !parsed.found_section && text.lines().any(|l| trim(l) == header) {
        parsed.found_section = true;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str, section: &str) -> Vec<(String, String, u32)> {
        parse(text, section)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    #[test]
    fn keys_repeat_comments_are_whole_lines_and_bare_keys_are_empty() {
        let text = "[uwsgi]\nsocket = a\n; comment\n  # another\nsocket=b\nmaster\nx = b ; c\r\n";
        assert_eq!(
            entries(text, "uwsgi"),
            [
                ("socket".into(), "a".into(), 2),
                ("socket".into(), "b".into(), 5),
                ("master".into(), "".into(), 6),
                ("x".into(), "b ; c".into(), 7),
            ]
        );
    }

    #[test]
    fn every_section_of_the_name_is_read_and_others_skipped() {
        let text = "a = 0\n[uwsgi]\na = 1\n[other]\na = 2\n[uwsgi]\na = 3\n";
        let got: Vec<_> = entries(text, "uwsgi").into_iter().map(|e| e.1).collect();
        assert_eq!(got, ["1", "3"]);
        let got: Vec<_> = entries(text, "other").into_iter().map(|e| e.1).collect();
        assert_eq!(got, ["2"]);
    }

    #[test]
    fn an_unclosed_section_is_an_error_at_its_line() {
        let err = parse("[uwsgi]\na = 1\n[broken\n", "uwsgi").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(
            err.message,
            "unclosed section header `[broken`: a section is written `[name]`"
        );
    }

    #[test]
    fn a_missing_section_is_reported() {
        assert!(!parse("[other]\na = 1\n", "uwsgi").unwrap().found_section);
        assert!(parse("[uwsgi]\n", "uwsgi").unwrap().found_section);
    }

    #[test]
    fn the_first_equals_sign_splits() {
        assert_eq!(entries("[uwsgi]\nenv = A=B\n", "uwsgi")[0].1, "A=B");
    }
}
