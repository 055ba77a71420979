//! uWSGI subscription packets on the subscription socket: a subscribed node serves its domain,
//! an unsubscribe withdraws it, and a domain the parent routes to a vassal is never taken over.

use std::time::Duration;

use liege_proto::{subscription, uwsgi};

use crate::support::{Router, get, named_node, ok, route, uwsgi_node};

fn packet(key: &str, address: &str, unsubscribe: bool) -> Vec<u8> {
    uwsgi::encode(
        subscription::MODIFIER1,
        u8::from(unsubscribe),
        &[(b"key", key.as_bytes()), (b"address", address.as_bytes())],
    )
    .unwrap()
}

/// Polls `GET /` for `host` until its status is `status`.
async fn until(r: &Router, host: &str, status: u16) -> String {
    for _ in 0..200 {
        let resp = get(r.plain, host).await;
        if resp.status == status {
            return resp.text();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{host} never answered {status}");
}

#[tokio::test]
async fn a_subscribed_node_serves_its_domain_until_it_unsubscribes() {
    let mut r = Router::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub.sock");
    let _node = uwsgi_node(&path, |_| ok(b"subscribed"));
    // A vassal routed by the parent holds taken.test.
    let _vassal = named_node(&r, "v");
    r.set_routes(vec![route("taken.test", "v")]).await;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = path.to_str().unwrap();
    udp.send_to(&packet("Sub.Test:80", address, false), r.subscription)
        .unwrap();
    udp.send_to(&packet("taken.test", address, false), r.subscription)
        .unwrap();
    assert!(until(&r, "sub.test", 200).await.contains("subscribed"));
    // The parent's route wins: the subscription never serves a vassal's domain.
    for _ in 0..5 {
        assert!(get(r.plain, "taken.test").await.text().contains('v'));
    }
    // A packet that is no subscription changes nothing.
    udp.send_to(b"\x00\x00\x00\x00", r.subscription).unwrap();
    assert_eq!(get(r.plain, "sub.test").await.status, 200);
    udp.send_to(&packet("sub.test", address, true), r.subscription)
        .unwrap();
    until(&r, "sub.test", 404).await;
    r.stop().await.unwrap();
}
