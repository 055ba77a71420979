//! Vassal files as the emperor reads them: who may write which options (trust, tyrant), and a
//! thousand files of which a third are broken.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use super::guard::Emperor;
use crate::server::get;

const LONG: Duration = Duration::from_secs(60);

fn chown(path: &std::path::Path, uid: u32) {
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(uid)),
    )
    .unwrap();
}

#[test]
fn a_customers_file_runs_as_its_owner_and_may_not_hold_root_options() {
    let e = Emperor::start(&[]);
    // Owned by uid 10001: it runs as 10001, without asking.
    let tmp = e.dir().join("mine.ini");
    fs_err::write(&tmp, e.app_ini("mine", "shell.py", "")).unwrap();
    chown(&tmp, 10001);
    fs_err::rename(&tmp, e.vassals.join("mine.ini")).unwrap();
    e.wait_serving("mine");
    let info: serde_json::Value =
        serde_json::from_str(&get(&e.addr("mine"), "/info").unwrap().text()).unwrap();
    assert_eq!(info["uid"], 10001, "{info}");
    // The same customer tries a limit of their own choosing: refused, with the line.
    let tmp = e.dir().join("greedy.ini");
    fs_err::write(
        &tmp,
        e.app_ini("greedy", "hello.py", "memory-limit = 100g\n"),
    )
    .unwrap();
    chown(&tmp, 10001);
    fs_err::rename(&tmp, e.vassals.join("greedy.ini")).unwrap();
    e.eventually(LONG, "the refusal", || {
        e.log_text().contains("greedy.ini:6")
    });
    let v = e.vassal("greedy").unwrap();
    assert_eq!(v["state"], "broken", "{v}");
    assert!(
        v["last_error"].as_str().unwrap().contains("memory-limit"),
        "{v}"
    );
    // A root file that others can write would run as root: refused whole.
    let tmp = e.dir().join("loose.ini");
    fs_err::write(&tmp, e.app_ini("loose", "hello.py", "uid = 0\n")).unwrap();
    fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
    fs_err::rename(&tmp, e.vassals.join("loose.ini")).unwrap();
    e.eventually(LONG, "the refusal", || {
        e.log_text()
            .contains("loose.ini`: a root-owned vassal file is read and run with root's rights, but it is writable by its group and others")
    });
    assert_eq!(e.vassal("loose").unwrap()["state"], "broken");
}

#[test]
fn tyrant_mode_takes_the_identity_from_the_file_owner_and_refuses_root_files() {
    let e = Emperor::start(&["--emperor-tyrant"]);
    let tmp = e.dir().join("t.ini");
    fs_err::write(&tmp, e.app_ini("t", "shell.py", "")).unwrap();
    chown(&tmp, 10003);
    fs_err::rename(&tmp, e.vassals.join("t.ini")).unwrap();
    e.wait_serving("t");
    let info: serde_json::Value =
        serde_json::from_str(&get(&e.addr("t"), "/info").unwrap().text()).unwrap();
    assert_eq!(
        (info["uid"].as_u64(), info["gid"].as_u64()),
        (Some(10003), Some(10003))
    );
    e.write_vassal("rooty.ini", &e.app_ini("rooty", "hello.py", ""));
    e.eventually(LONG, "the refusal of a root-owned file", || {
        e.vassal("rooty").is_some_and(|v| v["state"] == "broken")
    });
}

/// How many vassal files the big test writes (a third of them broken).
const FLEET: usize = 1000;

#[test]
fn a_thousand_files_with_a_third_broken_all_good_ones_serve() {
    let e = Emperor::start(&[]);
    // Written all at once, before the emperor looks: the good ones share one app.
    let mut good = Vec::new();
    for i in 0..FLEET {
        let name = format!("v{i:04}");
        let text = if i % 3 == 0 {
            format!(
                "[uwsgi]\nhttp-socket = {}\nprocesses = many\n",
                e.sock_path(&name).display()
            )
        } else {
            good.push(name.clone());
            e.app_ini(&name, "hello.py", "")
        };
        e.write_vassal(&format!("{name}.ini"), &text);
    }
    e.eventually(
        Duration::from_secs(600),
        "every good vassal accepting",
        || {
            // A read may time out while the emperor is busiest: try again.
            let Some(s) = e.try_stats() else {
                return false;
            };
            let list = s["vassals"].as_array().cloned().unwrap_or_default();
            list.iter().filter(|v| v["state"] == "accepting").count() == good.len()
        },
    );
    let s = e.stats();
    let broken = s["vassals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["state"] == "broken")
        .count();
    assert_eq!(broken, FLEET.div_ceil(3));
    for name in good.iter().step_by(50) {
        assert_eq!(get(&e.addr(name), "/").unwrap().status, 200, "{name}");
    }
    assert!(e.log_text().contains("v0003.ini:3"));
}
