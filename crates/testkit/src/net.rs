//! Local ports for the servers and peers a test starts.

/// A TCP port on 127.0.0.1 that was free a moment ago (for tools that want a port number).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
