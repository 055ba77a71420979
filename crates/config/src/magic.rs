//! uWSGI's magic variables (`%n`, `%d`, `%p`...), substituted in the raw text of each config
//! file when it is read, so that they describe the file they are written in.

use crate::access::FileFacts;

/// Facts about the host and the process that some magic variables show. The caller gathers them
/// (this crate does no system calls), so tests can fix them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `%h`
    pub hostname: String,
    /// `%k`: online CPUs.
    pub cpus: usize,
    /// `%u`, `%U`, `%g`, `%G`
    pub uid: u32,
    pub user: String,
    pub gid: u32,
    pub group: String,
    /// `%v`: the working directory at start.
    pub cwd: String,
    /// `%b`: the path of the running binary.
    pub binary: String,
    /// `%t` and `%T`: start time in seconds and microseconds.
    pub start_secs: u64,
    pub start_micros: u64,
}

impl HostFacts {
    /// Fixed facts for tests.
    pub fn for_tests(cwd: &str) -> Self {
        HostFacts {
            hostname: "testhost".into(),
            cpus: 2,
            uid: 0,
            user: "root".into(),
            gid: 0,
            group: "root".into(),
            cwd: cwd.into(),
            binary: "/usr/bin/liege".into(),
            start_secs: 1_700_000_000,
            start_micros: 1_700_000_000_000_000,
        }
    }
}

/// The version `%V` shows.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The 256-entry table of uWSGI: every entry starts empty (so an unknown `%X` vanishes), `%%`
/// is a percent sign and `%(` is kept for placeholders.
#[derive(Debug, Clone)]
pub struct MagicTable {
    entries: Vec<String>,
}

/// The per-file variables that the uppercase forms (`%N`, `%D`...) copy from the first file.
const FIRST_FILE_VARS: &[(u8, u8)] = &[
    (b'O', b'o'),
    (b'D', b'd'),
    (b'S', b's'),
    (b'P', b'p'),
    (b'C', b'c'),
    (b'E', b'e'),
    (b'N', b'n'),
    (b'X', b'x'),
    (b'I', b'i'),
    (b'J', b'j'),
];

impl MagicTable {
    /// The table with the host's static variables set (`init_magic_table` then the statics of
    /// `uwsgi_setup`).
    pub fn new(host: &HostFacts) -> Self {
        let mut t = MagicTable {
            entries: vec![String::new(); 256],
        };
        t.set(b'%', "%");
        t.set(b'(', "%(");
        t.set(b'v', &host.cwd);
        t.set(b'h', &host.hostname);
        t.set(b't', &host.start_secs.to_string());
        t.set(b'T', &host.start_micros.to_string());
        t.set(b'V', VERSION);
        t.set(b'k', &host.cpus.to_string());
        t.set(b'[', "\x1b");
        t.set(b'u', &host.uid.to_string());
        t.set(b'U', &host.user);
        t.set(b'g', &host.gid.to_string());
        t.set(b'G', &host.group);
        t.set(b'b', &host.binary);
        t
    }

    fn set(&mut self, c: u8, v: &str) {
        self.entries[usize::from(c)] = v.to_owned();
    }

    /// The value of `%c`.
    pub fn get(&self, c: u8) -> &str {
        &self.entries[usize::from(c)]
    }

    /// Fills the per-file variables for the file named `given` (without its `:section`; uWSGI
    /// cuts it off before the text is read), as `config_magic_table_fill` does. `facts` is
    /// `None` for a scheme (`exec://`) or `-`, which set only `%o`. With `first`, the
    /// uppercase variables are set too.
    pub fn fill(
        &mut self,
        given: &str,
        section: Option<&str>,
        facts: Option<&FileFacts>,
        first: bool,
    ) {
        self.set(b'o', given);
        let Some(facts) = facts else { return };
        let p = facts.path.as_str();
        self.set(b'p', p);
        self.set(b'j', &djb33x_hex(p.as_bytes()));
        self.set(b'i', &facts.inode.to_string());
        let slash = p.rfind('/').map_or(0, |i| i + 1);
        let s = &p[slash..];
        let d = &p[..slash];
        self.set(b's', s);
        self.set(b'd', d);
        let trimmed = d.strip_suffix('/').unwrap_or(d);
        let c = trimmed.rfind('/').map_or("", |i| &trimmed[i + 1..]);
        self.set(b'c', c);
        for digit in b'0'..=b'9' {
            self.set(digit, "");
        }
        for (digit, part) in (b'0'..=b'9').zip(trimmed.split('/').filter(|p| !p.is_empty())) {
            self.set(digit, part);
        }
        match s.rfind('.') {
            Some(dot) => {
                self.set(b'e', &s[dot + 1..]);
                self.set(b'n', &s[..dot]);
            }
            None => {
                self.set(b'e', "");
                self.set(b'n', s);
            }
        }
        self.set(b'x', section.unwrap_or(""));
        if first {
            for &(upper, lower) in FIRST_FILE_VARS {
                let v = self.get(lower).to_owned();
                self.set(upper, &v);
            }
        }
    }

    /// Sets only `%x` (`ini = :section` re-reads the last file with the table it had).
    pub fn set_section(&mut self, section: &str) {
        self.set(b'o', "");
        self.set(b'x', section);
    }

    /// Substitutes every `%X` of `text` (`magic_sub`). Returns the new text and the letters
    /// that had no value (uWSGI turns them into nothing; liege warns about them).
    pub fn substitute(&self, text: &str) -> (String, Vec<char>) {
        let mut out = String::with_capacity(text.len());
        let mut unknown = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(ch) = chars.next() {
            if ch != '%' {
                out.push(ch);
                continue;
            }
            match chars.next() {
                None => out.push('%'),
                Some(next) => {
                    let known = u8::try_from(next).ok().map(|b| self.get(b));
                    match known {
                        Some(v) if !v.is_empty() => out.push_str(v),
                        Some(_) if is_per_file_var(next) => {}
                        _ => unknown.push(next),
                    }
                }
            }
        }
        (out, unknown)
    }
}

/// Variables that may be empty for a good reason (`%x` without a section, `%e` without an
/// extension, `%3` for a short path): no warning for those.
fn is_per_file_var(c: char) -> bool {
    matches!(
        c,
        'x' | 'X' | 'e' | 'E' | 'c' | 'C' | '0'
            ..='9'
                | 'i'
                | 'I'
                | 'j'
                | 'J'
                | 'o'
                | 'O'
                | 'p'
                | 'P'
                | 's'
                | 'S'
                | 'd'
                | 'D'
                | 'n'
                | 'N'
                | 'U'
                | 'G'
                | 'h'
                | 'v'
                | 'b'
    )
}

/// uWSGI's djb33x hash of a path, as the hex of its four bytes in memory order (`%j`).
pub fn djb33x_hex(data: &[u8]) -> String {
    let mut hash: u32 = 5381;
    for &b in data {
        // uWSGI hashes `char`, which is signed on x86: bytes >= 0x80 are sign-extended.
        let c = i32::from(b.cast_signed()).cast_unsigned();
        hash = (hash << 5).wrapping_add(hash) ^ c;
    }
    hash.to_le_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_for(path: &str, section: Option<&str>) -> MagicTable {
        let mut t = MagicTable::new(&HostFacts::for_tests("/work"));
        let facts = FileFacts {
            path: path.into(),
            inode: 42,
        };
        t.fill("given.ini", section, Some(&facts), true);
        t
    }

    #[test]
    fn per_file_variables_match_uwsgi() {
        let t = table_for("/etc/liege/vassals/app.prod.ini", Some("web"));
        let (s, unknown) = t.substitute("%p|%s|%n|%e|%d|%c|%0|%1|%2|%3|%x|%o|%i|%N|%%|%(x)");
        assert_eq!(
            s,
            "/etc/liege/vassals/app.prod.ini|app.prod.ini|app.prod|ini|/etc/liege/vassals/|vassals|etc|liege|vassals||web|given.ini|42|app.prod|%|%(x)"
        );
        assert!(unknown.is_empty());
    }

    #[test]
    fn an_unknown_letter_vanishes_and_is_reported() {
        let t = table_for("/a/b.ini", None);
        let (s, unknown) = t.substitute("x%Yz %");
        assert_eq!(s, "xz %");
        assert_eq!(unknown, ['Y']);
    }

    #[test]
    fn djb33x_matches_uwsgi() {
        // (5381 * 33) ^ 0x61 = 0x0002b5c4, shown as its little-endian bytes.
        assert_eq!(djb33x_hex(b"a"), "C4B50200");
    }
}
