//! `chown-socket USER[:GROUP]`: user and group names looked up in /etc/passwd and /etc/group
//! (the files are read, not NSS: the master may run in a jail with only those files), or
//! numbers.

use std::path::Path;

/// Who a socket file is given to; `None` leaves that id as it is (uWSGI's `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Why `USER[:GROUP]` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OwnerError {
    #[error("no user `{name}` in {file}")]
    NoUser { name: String, file: String },
    #[error("no group `{name}` in {file}")]
    NoGroup { name: String, file: String },
    #[error("expected USER[:GROUP]")]
    Empty,
}

/// The id of `name` in a passwd- or group-style file (`name:x:id:...`).
fn id_of(file: &Path, name: &str) -> Option<u32> {
    let text = fs_err::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        let _password = f.next()?;
        f.next()?.parse().ok()
    })
}

impl Owner {
    /// Reads `USER[:GROUP]` against the system's /etc/passwd and /etc/group.
    pub fn parse(value: &str) -> Result<Owner, OwnerError> {
        Self::parse_with(value, Path::new("/etc/passwd"), Path::new("/etc/group"))
    }

    /// Reads `USER[:GROUP]` against the given passwd and group files.
    pub fn parse_with(value: &str, passwd: &Path, group: &Path) -> Result<Owner, OwnerError> {
        let value = value.trim();
        let (user, grp) = match value.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (value, None),
        };
        if user.is_empty() && grp.is_none_or(str::is_empty) {
            return Err(OwnerError::Empty);
        }
        let lookup = |name: &str, file: &Path, missing: fn(String, String) -> OwnerError| {
            if name.is_empty() {
                return Ok(None);
            }
            if let Ok(n) = name.parse::<u32>() {
                return Ok(Some(n));
            }
            id_of(file, name)
                .map(Some)
                .ok_or_else(|| missing(name.to_string(), file.display().to_string()))
        };
        Ok(Owner {
            uid: lookup(user, passwd, |name, file| OwnerError::NoUser { name, file })?,
            gid: match grp {
                Some(g) => lookup(g, group, |name, file| OwnerError::NoGroup { name, file })?,
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        fs_err::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n",
        )
        .unwrap();
        fs_err::write(&group, "root:x:0:\nwww-data:x:33:\nstaff:x:50:\n").unwrap();
        let p = |v| Owner::parse_with(v, &passwd, &group);
        assert_eq!(
            p("www-data").unwrap(),
            Owner {
                uid: Some(33),
                gid: None
            }
        );
        assert_eq!(
            p("www-data:staff").unwrap(),
            Owner {
                uid: Some(33),
                gid: Some(50)
            }
        );
        assert_eq!(
            p("1000:1001").unwrap(),
            Owner {
                uid: Some(1000),
                gid: Some(1001)
            }
        );
        assert_eq!(
            p(":staff").unwrap(),
            Owner {
                uid: None,
                gid: Some(50)
            }
        );
        assert_eq!(
            p("nobody-here").unwrap_err().to_string(),
            format!("no user `nobody-here` in {}", passwd.display())
        );
        assert!(matches!(
            p("root:nogroup").unwrap_err(),
            OwnerError::NoGroup { .. }
        ));
        assert_eq!(p("").unwrap_err(), OwnerError::Empty);
    }
}
