//! Free TCP ports for tests, shared by the test binaries (included with `#[path]`).

/// A port on 127.0.0.1 that was free a moment ago.
///
/// Not port 0: the kernel hands those out from the ephemeral range, where the client side of any
/// other test's connection may take the same port before the instance binds it. Ports below the
/// ephemeral range (32768 and up here) are only ever taken by binding them on purpose, so each
/// test process walks its own stretch of 20000..32000, checking each port is free.
pub(crate) fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let start = (std::process::id() % 600) * 20;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = u16::try_from(20_000 + (start + n) % 12_000).expect("port");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
