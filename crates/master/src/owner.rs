//! Users and groups by name or number, looked up in /etc/passwd and /etc/group (the files are
//! read, not NSS: the master may run in a jail with only those files): for `chown-socket
//! USER[:GROUP]` and for `uid` / `gid`. The emperor uses the same lookups ([`user`], [`group`]).

use std::path::Path;

/// The system's user database.
pub const PASSWD: &str = "/etc/passwd";
/// The system's group database.
pub const GROUP: &str = "/etc/group";

/// Who a socket file is given to; `None` leaves that id as it is (uWSGI's `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A user, as `uid` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    /// The user's primary group from /etc/passwd; `None` for a number with no line there.
    pub gid: Option<u32>,
}

/// Why a user or group could not be found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OwnerError {
    #[error("no user `{name}` in {file}")]
    NoUser { name: String, file: String },
    #[error("no group `{name}` in {file}")]
    NoGroup { name: String, file: String },
    #[error("cannot read {file}: {error}")]
    Unreadable { file: String, error: String },
    #[error("expected USER[:GROUP]")]
    Empty,
}

/// The fields of the first line of a passwd- or group-style file (`name:x:id:...`) that
/// `pick` accepts.
fn find_line(
    file: &Path,
    pick: impl Fn(&[&str]) -> bool,
) -> Result<Option<Vec<String>>, OwnerError> {
    let text = fs_err::read_to_string(file).map_err(|e| OwnerError::Unreadable {
        file: file.display().to_string(),
        error: e.kind().to_string(),
    })?;
    Ok(text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 3 && pick(&fields))
            .then(|| fields.iter().map(|f| (*f).to_string()).collect())
    }))
}

/// A user by name or number, looked up in /etc/passwd.
pub fn user(name_or_number: &str) -> Result<User, OwnerError> {
    user_in(name_or_number, Path::new(PASSWD))
}

/// A user by name or number, looked up in `passwd`. A number needs no line there, but then
/// has no primary group.
pub fn user_in(name_or_number: &str, passwd: &Path) -> Result<User, OwnerError> {
    let name = name_or_number.trim();
    let missing = || OwnerError::NoUser {
        name: name.to_string(),
        file: passwd.display().to_string(),
    };
    if let Ok(uid) = name.parse::<u32>() {
        let line = find_line(passwd, |f| f[2].parse() == Ok(uid)).unwrap_or(None);
        let gid = line.and_then(|f| f.get(3)?.parse().ok());
        return Ok(User { uid, gid });
    }
    if name.is_empty() {
        return Err(missing());
    }
    let line = find_line(passwd, |f| f[0] == name)?.ok_or_else(missing)?;
    let uid = line[2].parse().map_err(|_| missing())?;
    let gid = line.get(3).and_then(|g| g.parse().ok());
    Ok(User { uid, gid })
}

/// A group by name or number, looked up in /etc/group.
pub fn group(name_or_number: &str) -> Result<u32, OwnerError> {
    group_in(name_or_number, Path::new(GROUP))
}

/// A group by name or number, looked up in `group` (a number is taken as it is).
pub fn group_in(name_or_number: &str, group: &Path) -> Result<u32, OwnerError> {
    let name = name_or_number.trim();
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let missing = || OwnerError::NoGroup {
        name: name.to_string(),
        file: group.display().to_string(),
    };
    if name.is_empty() {
        return Err(missing());
    }
    let line = find_line(group, |f| f[0] == name)?.ok_or_else(missing)?;
    line[2].parse().map_err(|_| missing())
}

impl Owner {
    /// Reads `USER[:GROUP]` against the system's /etc/passwd and /etc/group.
    pub fn parse(value: &str) -> Result<Owner, OwnerError> {
        Self::parse_with(value, Path::new(PASSWD), Path::new(GROUP))
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
        Ok(Owner {
            uid: match user {
                "" => None,
                u => Some(user_in(u, passwd)?.uid),
            },
            gid: match grp {
                None | Some("") => None,
                Some(g) => Some(group_in(g, group)?),
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

    #[test]
    fn users_and_groups_for_uid_and_gid() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        fs_err::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nodd:x:12\n",
        )
        .unwrap();
        fs_err::write(&group, "nogroup:x:65534:\nstaff:x:50:a,b\n").unwrap();
        let u = |v| user_in(v, &passwd);
        assert_eq!(
            u("nobody").unwrap(),
            User {
                uid: 65534,
                gid: Some(65534)
            }
        );
        // A number takes its primary group from its line, if it has one.
        assert_eq!(
            u("65534").unwrap(),
            User {
                uid: 65534,
                gid: Some(65534)
            }
        );
        assert_eq!(
            u("4242").unwrap(),
            User {
                uid: 4242,
                gid: None
            }
        );
        assert_eq!(u("odd").unwrap(), User { uid: 12, gid: None });
        assert_eq!(
            u("ghost").unwrap_err().to_string(),
            format!("no user `ghost` in {}", passwd.display())
        );
        assert_eq!(group_in("staff", &group), Ok(50));
        assert_eq!(group_in("77", &group), Ok(77));
        assert_eq!(
            group_in("ghosts", &group).unwrap_err().to_string(),
            format!("no group `ghosts` in {}", group.display())
        );
        let none = dir.path().join("none");
        assert_eq!(
            user_in("nobody", &none).unwrap_err().to_string(),
            format!("cannot read {}: entity not found", none.display())
        );
    }
}
