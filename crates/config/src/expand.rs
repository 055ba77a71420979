//! The three expansion passes uWSGI runs once the whole list is assembled, in this order:
//! `$(NAME)` from the environment, `@(file)` from a file, `%(name)` from the list itself.
//!
//! [`scan`] is `uwsgi_apply_config_pass` character for character, quirks included: a
//! reference that cannot be resolved stays as written; after a substitution the scan starts
//! again at the second character, so a value whose first characters are a new reference keeps
//! it literally; parentheses nest inside a reference.

/// A pass that did not end: substitutions kept feeding new references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runaway;

/// At most this many substitutions in one value, and at most this many bytes, before the value
/// is declared runaway (uWSGI would loop until it runs out of memory). Each substitution
/// rescans the value, so these two bound the work one hostile value can cause.
const MAX_SUBSTITUTIONS: usize = 1_000;
const MAX_LEN: usize = 256 << 10;

/// Replaces every `SYMBOL(key)` of `value` by what `hook` returns for `key`.
pub fn scan(
    value: &str,
    symbol: u8,
    mut hook: impl FnMut(&str) -> Option<String>,
) -> Result<String, Runaway> {
    let mut v = value.as_bytes().to_vec();
    if !v.contains(&symbol) {
        return Ok(value.to_owned());
    }
    let mut has: usize = 0;
    let mut depth: usize = 0;
    let mut key_start: usize = 0;
    let mut substitutions = 0;
    let mut j = 0;
    while j < v.len() {
        let c = v[j];
        if c == symbol {
            has = 1;
        } else if c == b'(' && has == 1 {
            has = 2;
            depth = 0;
            key_start = j + 1;
        } else if has > 1 {
            if c == b'(' {
                has += 1;
                depth += 1;
            } else if c == b')' {
                if depth > 0 {
                    has += 1;
                    depth -= 1;
                    j += 1;
                    continue;
                }
                if has <= 2 {
                    has = 0;
                    j += 1;
                    continue;
                }
                let key_len = has - 2;
                let key = String::from_utf8_lossy(&v[key_start..key_start + key_len]).into_owned();
                has = 0;
                match hook(&key) {
                    None => {}
                    Some(found) => {
                        let mut next = Vec::with_capacity(v.len() + found.len());
                        next.extend_from_slice(&v[..key_start - 2]);
                        next.extend_from_slice(found.as_bytes());
                        next.extend_from_slice(&v[key_start + key_len + 1..]);
                        v = next;
                        substitutions += 1;
                        if substitutions > MAX_SUBSTITUTIONS || v.len() > MAX_LEN {
                            return Err(Runaway);
                        }
                        // uWSGI sets j = 0 and its loop increments it: the rescan starts at 1.
                        j = 1;
                        continue;
                    }
                }
            } else {
                has += 1;
            }
        } else {
            has = 0;
        }
        j += 1;
    }
    Ok(String::from_utf8_lossy(&v).into_owned())
}

/// `strtoll(s, NULL, 10)`: leading blanks, a sign, digits; saturating; 0 when there are none.
fn strtoll(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        let d = i64::from(b - b'0');
        n = match n.checked_mul(10).and_then(|n| {
            if neg {
                n.checked_sub(d)
            } else {
                n.checked_add(d)
            }
        }) {
            Some(n) => n,
            None => return if neg { i64::MIN } else { i64::MAX },
        };
    }
    n
}

/// `%(a + b * 2)`: uWSGI's left-to-right evaluation of space-separated tokens (numbers, option
/// names, `+ - * /`, `++`, `--`; side by side, tokens are concatenated). `lookup` gives the
/// first value of a name. `None` when only operators were written.
pub fn placeholder_math(
    expr: &str,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Option<String> {
    #[derive(Clone, Copy)]
    enum Op {
        Concat,
        Add,
        Sub,
        Mul,
        Div,
    }
    let mut state = Op::Concat;
    let mut current: Option<String> = None;
    for token in expr.split(' ').filter(|t| !t.is_empty()) {
        let value = match token {
            "+" => {
                state = Op::Add;
                continue;
            }
            "-" => {
                state = Op::Sub;
                continue;
            }
            "*" => {
                state = Op::Mul;
                continue;
            }
            "/" => {
                state = Op::Div;
                continue;
            }
            "++" | "--" => {
                if let Some(c) = &current {
                    let n = strtoll(c);
                    let n = if token == "++" {
                        n.wrapping_add(1)
                    } else {
                        n.wrapping_sub(1)
                    };
                    current = Some(n.to_string());
                }
                state = Op::Concat;
                continue;
            }
            t if t.bytes().all(|b| b.is_ascii_digit()) => t.to_owned(),
            name => lookup(name).unwrap_or_default(),
        };
        let a = current.as_deref().map_or(0, strtoll);
        let b = strtoll(&value);
        current = Some(match state {
            Op::Concat => format!("{}{}", current.as_deref().unwrap_or(""), value),
            Op::Add => a.wrapping_add(b).to_string(),
            Op::Sub => a.wrapping_sub(b).to_string(),
            Op::Mul => a.wrapping_mul(b).to_string(),
            Op::Div => if b == 0 { 0 } else { a.wrapping_div(b) }.to_string(),
        });
        state = Op::Concat;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("alpha".into()),
            "REF" => Some("$(A)".into()),
            "SELF" => Some("x$(SELF)".into()),
            _ => None,
        }
    }

    #[test]
    fn references_are_replaced_and_unknown_ones_kept() {
        assert_eq!(
            scan("a $(A) b $(NOPE) c", b'$', env).unwrap(),
            "a alpha b $(NOPE) c"
        );
        assert_eq!(scan("$()", b'$', env).unwrap(), "$()");
        assert_eq!(scan("no symbol (A)", b'$', env).unwrap(), "no symbol (A)");
    }

    #[test]
    fn substituted_text_is_scanned_again_but_not_from_its_first_character() {
        assert_eq!(scan("x$(REF)", b'$', env).unwrap(), "xalpha");
        // The rescan starts at index 1, so a reference at index 0 stays literal.
        assert_eq!(scan("$(REF)", b'$', env).unwrap(), "$(A)");
    }

    #[test]
    fn parentheses_nest_inside_a_reference() {
        let got = scan("%(a (b) c)", b'%', |k| Some(format!("<{k}>"))).unwrap();
        assert_eq!(got, "<a (b) c>");
    }

    #[test]
    fn a_self_feeding_reference_is_runaway() {
        assert_eq!(scan("y$(SELF)", b'$', env), Err(Runaway));
    }

    #[test]
    fn math_is_left_to_right_and_concatenates_side_by_side() {
        let look = |k: &str| match k {
            "processes" => Some("2".to_owned()),
            "cores" => Some("8".to_owned()),
            _ => None,
        };
        assert_eq!(
            placeholder_math("processes cores + 2", look).as_deref(),
            Some("30")
        );
        assert_eq!(
            placeholder_math("processes + 1 * 3", look).as_deref(),
            Some("9")
        );
        assert_eq!(placeholder_math("processes ++", look).as_deref(), Some("3"));
        assert_eq!(placeholder_math("7 / 0", look).as_deref(), Some("0"));
        assert_eq!(placeholder_math("nope + 1", look).as_deref(), Some("1"));
        assert_eq!(placeholder_math("+ -", look), None);
    }
}
