//! json, as uWSGI built with jansson reads it (`core/json.c`): an object of sections, `uwsgi`
//! by default; a string is the value, `true` is `1`, `false` and `null` are `0`, an integer is
//! itself, and an array repeats the key. uWSGI drops reals and nested objects silently: liege
//! drops them too and says so. A key written twice in one object is an error here (jansson keeps
//! one of them silently).
//!
//! A small parser of its own, because the options need the line each value stands on.

use super::{Parsed, RawEntry, SyntaxError};

/// Deeper nesting than this is refused (a config has two levels; this keeps the stack safe).
const MAX_DEPTH: u32 = 64;

#[derive(Debug)]
enum Value {
    Str(String),
    True,
    False,
    Null,
    Int(String),
    Real,
    Array(Vec<(Value, u32)>),
    Object(Vec<(String, Value, u32)>),
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    line: u32,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError::new(self.line, format!("invalid json: {}", message.into()))
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.text.get(self.pos) {
            match b {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return,
            }
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected `{}`", char::from(b))))
        }
    }

    fn value(&mut self, depth: u32) -> Result<(Value, u32), SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.skip_ws();
        let line = self.line;
        let v = match self.peek() {
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Value::Str(self.string()?),
            Some(b't') => self.word("true", Value::True)?,
            Some(b'f') => self.word("false", Value::False)?,
            Some(b'n') => self.word("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(c) => return Err(self.err(format!("unexpected `{}`", char::from(c)))),
            None => return Err(self.err("unexpected end of file")),
        };
        Ok((v, line))
    }

    fn word(&mut self, word: &str, v: Value) -> Result<Value, SyntaxError> {
        if self.text[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos > s
        };
        if !digits(self) {
            return Err(self.err("invalid number"));
        }
        let mut real = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            real = true;
            if !digits(self) {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            real = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.err("invalid number"));
            }
        }
        let s = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
        Ok(if real { Value::Real } else { Value::Int(s) })
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.err("unclosed string"));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err("unclosed string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                b'\n' => return Err(self.err("newline inside a string")),
                0..=0x1f => return Err(self.err("control character inside a string")),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("invalid UTF-8 in a string"))
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let h = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        let s = std::str::from_utf8(h).map_err(|_| self.err("invalid \\u escape"))?;
        let v = u32::from_str_radix(s, 16).map_err(|_| self.err("invalid \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, SyntaxError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.text[self.pos..].starts_with(b"\\u") {
                return Err(self.err("unpaired surrogate"));
            }
            self.pos += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("unpaired surrogate"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code)
            .filter(|&c| c != '\0')
            .ok_or_else(|| self.err("invalid \\u escape"))
    }

    fn array(&mut self, depth: u32) -> Result<Value, SyntaxError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: u32) -> Result<Value, SyntaxError> {
        self.pos += 1;
        let mut members: Vec<(String, Value, u32)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a key in double quotes"));
            }
            let line = self.line;
            let key = self.string()?;
            if let Some((_, _, first)) = members.iter().find(|(k, _, _)| *k == key) {
                return Err(SyntaxError::new(
                    line,
                    format!(
                        "`{key}` is written twice in one object (first at line {first}): repeat an option with an array"
                    ),
                ));
            }
            self.expect(b':')?;
            let (value, _) = self.value(depth + 1)?;
            members.push((key, value, line));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }
}

/// A scalar as uWSGI turns it into an option value, or why it is dropped.
fn scalar(v: &Value) -> Result<String, &'static str> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::True => Ok("1".into()),
        Value::False | Value::Null => Ok("0".into()),
        Value::Int(i) => Ok(i.clone()),
        Value::Real => Err("a real number"),
        Value::Array(_) => Err("an array inside an array"),
        Value::Object(_) => Err("an object"),
    }
}

pub(super) fn parse(text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    let mut p = Parser {
        text: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let (root, _) = p.value(0)?;
    p.skip_ws();
    if p.pos < p.text.len() {
        return Err(p.err("text after the end of the document"));
    }
    let not_found = || {
        SyntaxError::new(
            1,
            format!("there is no object named `{section}` in this json file"),
        )
    };
    let Value::Object(sections) = root else {
        return Err(not_found());
    };
    let Some((_, Value::Object(members), _)) = sections.into_iter().find(|(k, _, _)| k == section)
    else {
        return Err(not_found());
    };
    let mut parsed = Parsed {
        found_section: true,
        ..Parsed::default()
    };
    for (key, value, line) in members {
        let items = match value {
            Value::Array(items) => items,
            other => vec![(other, line)],
        };
        for (item, item_line) in items {
            match scalar(&item) {
                Ok(v) => parsed.entries.push(RawEntry {
                    key: key.clone(),
                    value: v,
                    line: item_line,
                }),
                Err(what) => parsed.warnings.push((
                    item_line,
                    format!("`{key}`: {what} is ignored, as uWSGI does"),
                )),
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_uwsgi_strings() {
        let text = "{\n \"uwsgi\": {\n  \"socket\": [\"a\", \"b\"],\n  \"master\": true,\n  \"x\": false,\n  \"n\": null,\n  \"p\": 4,\n  \"s\": \"\\u00e9\\n\"\n }\n}";
        let got: Vec<_> = parse(text, "uwsgi")
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect();
        assert_eq!(
            got,
            [
                ("socket".into(), "a".into(), 3),
                ("socket".into(), "b".into(), 3),
                ("master".into(), "1".into(), 4),
                ("x".into(), "0".into(), 5),
                ("n".into(), "0".into(), 6),
                ("p".into(), "4".into(), 7),
                ("s".into(), "é\n".into(), 8),
            ]
        );
    }

    #[test]
    fn reals_and_objects_are_dropped_with_a_warning() {
        let parsed = parse(
            "{\"uwsgi\": {\"a\": 1.5, \"b\": {}, \"c\": \"x\"}}",
            "uwsgi",
        )
        .unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.warnings.len(), 2);
    }

    #[test]
    fn errors_name_their_line() {
        let err = parse("{\n\"uwsgi\": {\n\"a\": 1,\n}\n}", "uwsgi").unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (4, "invalid json: expected a key in double quotes")
        );
        let err = parse("{\"uwsgi\": {\"a\": 1,\n \"a\": 2}}", "uwsgi").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse("{\"other\": {}}", "uwsgi").unwrap_err();
        assert_eq!(
            err.message,
            "there is no object named `uwsgi` in this json file"
        );
        let deep = "[".repeat(1000);
        assert!(parse(&deep, "uwsgi").is_err());
    }
}
