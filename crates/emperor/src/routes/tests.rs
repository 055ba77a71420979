use std::sync::Arc;

use super::*;

const RUN: &str = "/run/liege";

fn opts(file: &str, lines: &[(&str, &str)]) -> Options {
    let path: Arc<str> = Arc::from(file);
    let mut o = Options::new();
    for (i, (k, v)) in lines.iter().enumerate() {
        o.push(*k, *v, Origin::file(&path, u32::try_from(i).unwrap() + 2));
    }
    o
}

const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n";
const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n";

/// Reads the files a test names: `*.crt`, `*.key`, `keys.txt`; anything else is missing.
fn reader(path: &Path) -> Result<Vec<u8>, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.starts_with("missing") {
        Err("Permission denied (os error 13)".into())
    } else if name.ends_with(".crt") {
        Ok(PEM_CERT.into())
    } else if name.ends_with(".key") {
        Ok(PEM_KEY.into())
    } else if name == "keys.txt" {
        Ok(b"one.test\n# a comment\n\nTwo.Test\n".to_vec())
    } else {
        Err("No such file or directory (os error 2)".into())
    }
}

fn spec(name: &str, uid: u32, lines: &[(&str, &str)]) -> Result<RouteSpec, String> {
    spec_of(
        name,
        &opts(&format!("/v/{name}.ini"), lines),
        Some(uid),
        Path::new(RUN),
        Path::new("/home/c"),
        &reader,
    )
}

fn domains(s: &RouteSpec) -> Vec<&str> {
    s.claims.iter().map(|c| c.domain.as_str()).collect()
}

#[test]
fn domains_come_from_domain_and_uwsgi_subscriptions() {
    let s = spec(
        "shop",
        1000,
        &[
            ("domain", "Shop.Example.com, www.shop.example.com"),
            ("domain", "*.shop.example.com shop.example.com"),
            ("subscribe-to", "127.0.0.1:7000:blog.example.com,5"),
            ("st", "/tmp/sub.sock:Unix.Example.com"),
            ("subscribe", "web=127.0.0.1:7000:named.example.com"),
            ("subscribe-to", "127.0.0.1:7000:@keys.txt"),
            (
                "subscribe2",
                "server=127.0.0.1:7000,key=api.example.com:8080,modifier1=0",
            ),
            ("http-socket", "/run/liege/vassals/shop/http.sock"),
        ],
    )
    .unwrap();
    assert_eq!(
        domains(&s),
        [
            "shop.example.com",
            "www.shop.example.com",
            "*.shop.example.com",
            "blog.example.com",
            "unix.example.com",
            "named.example.com",
            "one.test",
            "two.test",
            "api.example.com",
        ]
    );
    assert_eq!(s.claims[3].origin.to_string(), "/v/shop.ini:4");
    assert_eq!(s.socket, Some(("http.sock".into(), NodeProto::Http)));
    assert_eq!(s.uid, 1000);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn the_socket_is_the_first_one_in_the_run_dir() {
    // Jailed: /run is its run dir.
    let s = spec(
        "a",
        1000,
        &[
            ("domain", "a.test"),
            ("http-socket", "127.0.0.1:8000"),
            ("socket", "/tmp/elsewhere.sock"),
            ("uwsgi-socket", "/run/app.sock"),
            ("http-socket", "/run/http.sock"),
            ("jail-root", "host"),
            ("limit-post", "1m"),
        ],
    )
    .unwrap();
    assert_eq!(s.socket, Some(("app.sock".into(), NodeProto::Uwsgi)));
    assert_eq!(s.limit_post, Some(1 << 20));
    // On the host, /run/app.sock is no run dir, and a sub-folder is not either.
    let s = spec(
        "a",
        1000,
        &[
            ("domain", "a.test"),
            ("socket", "/run/app.sock"),
            ("socket", "/run/liege/vassals/a/sub/app.sock"),
            ("socket", "/run/liege/vassals/b/app.sock"),
            ("limit-post", "0"),
        ],
    )
    .unwrap();
    assert_eq!(s.socket, None);
    assert_eq!(s.limit_post, None);
    assert_eq!(
        s.warnings,
        [
            "/v/a.ini:2: vassal `a` claims domains but has no `socket` or `http-socket` the router can reach: one in its run dir (`/run/NAME` in a jail, `/run/liege/vassals/a/NAME` on the host)"
        ]
    );
    // No domain, no warning.
    assert!(
        spec("a", 1000, &[("socket", "/tmp/a.sock")])
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn what_cannot_work_refuses_the_vassal_with_file_and_line() {
    let e = |lines: &[(&str, &str)]| spec("a", 1000, lines).unwrap_err();
    assert_eq!(
        e(&[("domain", "bad..domain")]),
        "/v/a.ini:2: `domain`: `bad..domain` is not a domain"
    );
    assert_eq!(
        e(&[
            ("socket", "/run/a.sock"),
            ("subscribe-to", "127.0.0.1:7000")
        ]),
        "/v/a.ini:3: `subscribe-to`: expected `ADDR:DOMAIN` (uWSGI's subscription syntax), got `127.0.0.1:7000`"
    );
    assert!(
        e(&[("subscribe2", "server=127.0.0.1:7000")])
            .starts_with("/v/a.ini:2: `subscribe2`: expected `key=DOMAIN")
    );
    assert!(e(&[("subscribe-to", "127.0.0.1:7000:@missing.txt")]).contains("/home/c/missing.txt"));
    assert_eq!(
        e(&[("http", ":8080")]),
        "/v/a.ini:2: `http` is an option of the instance that runs the HTTP router (the emperor), not of a vassal\nhint: the emperor's router reaches a vassal by its `domain` lines"
    );
    assert!(e(&[("sni", "a.test,a.crt")]).contains("expected `DOMAIN,CRT,KEY`"));
}

#[test]
fn router_tunables_in_a_vassal_are_warned_about_and_certificates_read_as_it() {
    let s = spec(
        "a",
        1000,
        &[
            ("domain", "a.test"),
            ("socket", "/run/liege/vassals/a/app.sock"),
            ("http-keepalive", ""),
            ("sni", "a.test,tls/a.crt,tls/a.key"),
            ("sni", "b.test,missing.crt,b.key"),
        ],
    )
    .unwrap();
    assert_eq!(s.sni.len(), 1);
    assert_eq!(s.sni[0].0.sni.as_deref(), Some("a.test"));
    assert_eq!(s.sni[0].0.vassal.as_deref(), Some("a"));
    assert_eq!(s.sni[0].1.to_string(), "/v/a.ini:5");
    assert_eq!(
        s.warnings,
        [
            "/v/a.ini:4: `http-keepalive` is not used: only the instance that runs the HTTP router (the emperor) reads it".to_owned(),
            "/v/a.ini:6: cannot read the certificate `/home/c/missing.crt`: Permission denied (os error 13) (as uid 1000)".to_owned(),
        ]
    );
}

fn owners(text: &str) -> Owners {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    fs_err::write(
        &passwd,
        "alice:x:1001:1001::/:/bin/false\nbob:x:1002:1002::/:/bin/false\n",
    )
    .unwrap();
    Owners::parse(text, "/etc/liege/owners", &passwd).unwrap()
}

#[test]
fn domain_owners_cover_subdomains_and_the_most_specific_wins() {
    let o = owners(
        "# who owns what\nexample.com alice\n\nshop.example.com bob # the shop\n*.wild.test 1003\n",
    );
    let who = |d: &str| o.owner_of(d).map(|(uid, origin)| (uid, origin.to_string()));
    assert_eq!(
        who("example.com"),
        Some((1001, "/etc/liege/owners:2".into()))
    );
    assert_eq!(
        who("www.example.com"),
        Some((1001, "/etc/liege/owners:2".into()))
    );
    assert_eq!(
        who("*.example.com"),
        Some((1001, "/etc/liege/owners:2".into()))
    );
    assert_eq!(
        who("shop.example.com"),
        Some((1002, "/etc/liege/owners:4".into()))
    );
    assert_eq!(
        who("a.shop.example.com"),
        Some((1002, "/etc/liege/owners:4".into()))
    );
    assert_eq!(who("notexample.com"), None);
    assert_eq!(
        who("a.wild.test"),
        Some((1003, "/etc/liege/owners:5".into()))
    );
    assert_eq!(
        who("*.wild.test"),
        Some((1003, "/etc/liege/owners:5".into()))
    );
    assert_eq!(who("wild.test"), None);
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    fs_err::write(&passwd, "").unwrap();
    let err = |text: &str| Owners::parse(text, "/o", &passwd).unwrap_err();
    assert_eq!(
        err("a.test\n"),
        "/o:1: expected `DOMAIN USER`, got `a.test`"
    );
    assert_eq!(err("\n-a.test 1\n"), "/o:2: `-a.test` is not a domain");
    assert_eq!(
        err("a.test carol\n"),
        format!("/o:1: no user `carol` in {}", passwd.display())
    );
}

fn claimant<'a>(name: &'a str, spec: &'a RouteSpec, state: Option<NodeState>) -> Claimant<'a> {
    Claimant { name, spec, state }
}

fn routed(t: &Table) -> Vec<(String, String)> {
    t.routes
        .iter()
        .map(|r| (r.domain.clone(), r.vassal.clone()))
        .collect()
}

fn sock(name: &str) -> (&'static str, &'static str) {
    let path = format!("/run/liege/vassals/{name}/app.sock");
    ("socket", Box::leak(path.into_boxed_str()))
}

#[test]
fn the_first_claimant_owns_a_domain_and_its_customer_shares_it() {
    let a = spec("a", 1001, &[("domain", "a.test shared.test"), sock("a")]).unwrap();
    let b = spec("b", 1001, &[("domain", "shared.test"), sock("b")]).unwrap();
    let c = spec(
        "c",
        1002,
        &[("domain", "c.test"), ("domain", "a.test"), sock("c")],
    )
    .unwrap();
    let up = Some(NodeState::Up);
    let t = table(
        &Owners::default(),
        &[
            claimant("a", &a, up),
            claimant("b", &b, Some(NodeState::Starting)),
            claimant("c", &c, up),
        ],
    );
    assert_eq!(
        routed(&t),
        [
            ("a.test".into(), "a".into()),
            ("shared.test".into(), "a".into()),
            ("shared.test".into(), "b".into()),
            ("c.test".into(), "c".into()),
        ]
    );
    assert_eq!(t.routes[2].state, NodeState::Starting);
    assert_eq!(t.routes[0].socket, "app.sock");
    assert_eq!(t.routes[0].uid, 1001);
    assert_eq!(
        t.refused["c"],
        [
            "/v/c.ini:3: domain `a.test` is refused: vassal `a` (uid 1001) claimed it first, and vassal `c` runs as uid 1002"
        ]
    );
    assert_eq!(t.refused.len(), 1);
    // Stopped, `a` keeps its domains while it exists: `c` is still refused, and nothing
    // routes to `a`.
    let t = table(
        &Owners::default(),
        &[claimant("a", &a, None), claimant("c", &c, up)],
    );
    assert_eq!(routed(&t), [("c.test".into(), "c".into())]);
    assert!(t.refused.contains_key("c"));
    // Once `a` is gone, `c`'s claim holds.
    let t = table(&Owners::default(), &[claimant("c", &c, up)]);
    assert_eq!(
        routed(&t),
        [("a.test".into(), "c".into()), ("c.test".into(), "c".into())]
    );
    assert!(t.refused.is_empty());
}

#[test]
fn domain_owners_decide_before_any_claim() {
    let o = owners("example.com bob\n");
    let a = spec(
        "a",
        1001,
        &[("domain", "www.example.com a.test"), sock("a")],
    )
    .unwrap();
    let b = spec("b", 1002, &[("domain", "www.example.com"), sock("b")]).unwrap();
    let up = Some(NodeState::Up);
    let t = table(&o, &[claimant("a", &a, up), claimant("b", &b, up)]);
    assert_eq!(
        routed(&t),
        [
            ("a.test".into(), "a".into()),
            ("www.example.com".into(), "b".into())
        ]
    );
    assert_eq!(
        t.refused["a"],
        [
            "/v/a.ini:2: domain `www.example.com` is refused: it belongs to uid 1002 (domain-owners /etc/liege/owners:1), and vassal `a` runs as uid 1001"
        ]
    );
}

#[test]
fn a_vassal_certificate_counts_only_for_its_own_domains() {
    let a = spec(
        "a",
        1001,
        &[
            ("domain", "a.test"),
            sock("a"),
            ("sni", "a.test,a.crt,a.key"),
            ("sni", "b.test,b.crt,b.key"),
        ],
    )
    .unwrap();
    let b = spec("b", 1002, &[("domain", "b.test"), sock("b")]).unwrap();
    let t = table(
        &Owners::default(),
        &[claimant("b", &b, None), claimant("a", &a, None)],
    );
    assert!(t.routes.is_empty());
    assert_eq!(t.certs.len(), 1);
    assert_eq!(t.certs[0].sni.as_deref(), Some("a.test"));
    assert_eq!(
        t.refused["a"],
        ["/v/a.ini:5: `sni` for `b.test` is not used: vassal `a` does not serve that domain"]
    );
}

#[test]
fn a_router_gives_vassal_sockets_to_its_group_unless_the_file_says() {
    let o = opts("/v/a.ini", &[("socket", "/run/a.sock")]);
    assert_eq!(
        socket_access(&o, Some(1001), 995),
        [
            ("chown-socket", "1001:995".to_owned()),
            ("chmod-socket", "660".to_owned())
        ]
    );
    assert_eq!(socket_access(&o, None, 995)[0].1, "0:995");
    let o = opts("/v/a.ini", &[("chmod-socket", "600")]);
    assert_eq!(
        socket_access(&o, Some(1001), 995),
        [("chown-socket", "1001:995".to_owned())]
    );
}
