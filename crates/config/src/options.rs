//! The options list: everything liege is told, in order, with where each entry came from.

use crate::origin::Origin;

/// One `key = value` entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// The ordered list of options. Keys repeat and keep their order: a list option (`socket`,
/// `cron`, `hook-*`...) takes every entry, a scalar option the last one, and a `%(name)`
/// placeholder the first one, exactly as uWSGI does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    entries: Vec<Opt>,
}

impl Options {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>, origin: Origin) {
        self.entries.push(Opt {
            key: key.into(),
            value: value.into(),
            origin,
        });
    }

    /// Every entry, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Opt> {
        self.entries.iter()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry named `key` (how uWSGI resolves `%(key)`).
    pub fn first(&self, key: &str) -> Option<&Opt> {
        self.entries.iter().find(|o| o.key == key)
    }

    /// The last entry named `key` (the value a scalar option takes).
    pub fn last(&self, key: &str) -> Option<&Opt> {
        self.entries.iter().rev().find(|o| o.key == key)
    }

    /// Every entry named `key`, in order (the values a list option takes).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Opt> + 'a {
        self.entries.iter().filter(move |o| o.key == key)
    }

    /// Whether a boolean option is on: uWSGI's rule, where any value but `false`, `off`, `no`
    /// or `0` (in any case) is true, and an empty value too.
    pub fn flag(&self, key: &str) -> bool {
        self.last(key).is_some_and(|o| is_true(&o.value))
    }
}

/// uWSGI's truth rule for a boolean option's value (`uwsgi_opt_true`).
pub fn is_true(value: &str) -> bool {
    !["false", "off", "no", "0"]
        .iter()
        .any(|f| value.eq_ignore_ascii_case(f))
}

impl<'a> IntoIterator for &'a Options {
    type Item = &'a Opt;
    type IntoIter = std::slice::Iter<'a, Opt>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl Options {
    pub(crate) fn entries_mut(&mut self) -> &mut Vec<Opt> {
        &mut self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_keep_order_and_scalars_take_the_last() {
        let mut o = Options::new();
        o.push("socket", "a", Origin::Builtin);
        o.push("processes", "2", Origin::Builtin);
        o.push("socket", "b", Origin::Builtin);
        o.push("processes", "4", Origin::Builtin);
        let sockets: Vec<_> = o.all("socket").map(|o| o.value.as_str()).collect();
        assert_eq!(sockets, ["a", "b"]);
        assert_eq!(o.last("processes").map(|o| o.value.as_str()), Some("4"));
        assert_eq!(o.first("processes").map(|o| o.value.as_str()), Some("2"));
    }

    #[test]
    fn truth_follows_uwsgi() {
        for t in ["", "1", "true", "yes", "anything"] {
            assert!(is_true(t), "{t}");
        }
        for f in ["false", "OFF", "No", "0"] {
            assert!(!is_true(f), "{f}");
        }
    }
}
