//! Listening sockets for the store's RESP and admin ports and the operator's admin port.
//!
//! The default address, `::`, listens on IPv6 and IPv4 both, so one default works in IPv4-only,
//! dual-stack and IPv6-only clusters. It is one dual-stack socket with `IPV6_V6ONLY` turned off
//! explicitly: the kernel's default comes from `net.ipv6.bindv6only`, which some hosts set, and
//! neither std nor tokio can set the option before `bind` (socket2 can, and is already in the
//! dependency tree through hyper-util and tonic). Redis 7 reaches the same end with two
//! sockets (`bind * -::*`: IPv4, and IPv6-only when available); one socket keeps one accept
//! loop, and IPv4 clients still show as IPv4 (see [`canonical`]).
//!
//! On a host without IPv6 (the kernel booted with `ipv6.disable=1`), `::` falls back to every
//! IPv4 address, `0.0.0.0`, with a logged notice, as Redis skips its optional `-::*`. Any
//! other address is bound exactly as given, and failing to bind it is an error.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// The default listening address: every address, IPv6 and IPv4.
pub const ALL_ADDRESSES: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// tokio's (mio's) backlog for `TcpListener::bind`, kept so that nothing changes for the
/// addresses bound as before.
const BACKLOG: i32 = 1024;

/// Listens on `ip`:`port`; [`ALL_ADDRESSES`] is dual-stack, or IPv4 only on a host without
/// IPv6. `what` names the listener in the fallback notice. Call it inside the tokio runtime.
pub fn listen(ip: IpAddr, port: u16, what: &str) -> io::Result<TcpListener> {
    if ip != ALL_ADDRESSES {
        return bind(SocketAddr::new(ip, port), None);
    }
    match bind(SocketAddr::new(ip, port), Some(false)) {
        Err(error) if ipv6_unavailable(&error) => {
            tracing::info!(%error, listener = what, port, "no IPv6 on this host: listening on IPv4 only (0.0.0.0)");
            bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port), None)
        }
        bound => bound,
    }
}

/// A listening socket as tokio's `TcpListener::bind` makes one (address reuse, so a restart
/// need not wait for old connections in TIME_WAIT; close-on-exec, which socket2 sets), plus
/// IPV6_V6ONLY when `only_v6` says.
fn bind(address: SocketAddr, only_v6: Option<bool>) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(only_v6) = only_v6 {
        socket.set_only_v6(only_v6)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Whether binding `::` failed because the host has no IPv6, the errors Redis treats as an
/// unavailable address family (`listenToPort` in Redis 7's server.c).
fn ipv6_unavailable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::EAFNOSUPPORT
                | libc::EPFNOSUPPORT
                | libc::EPROTONOSUPPORT
                | libc::ESOCKTNOSUPPORT
                | libc::EADDRNOTAVAIL
        )
    )
}

/// `address` with an IPv4-mapped IPv6 address (`::ffff:10.0.0.7`, how a dual-stack socket
/// reports an IPv4 peer) written as the IPv4 address, as clients and logs expect.
pub fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_address_family_falls_back() {
        for errno in [libc::EAFNOSUPPORT, libc::EADDRNOTAVAIL] {
            assert!(ipv6_unavailable(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [libc::EADDRINUSE, libc::EACCES] {
            assert!(!ipv6_unavailable(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
    }

    #[test]
    fn mapped_ipv4_addresses_read_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.7]:6379".parse().unwrap();
        assert_eq!(canonical(mapped), "10.0.0.7:6379".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:6379".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    // Dual-stack listening is tested on the real processes (tests/server_lifecycle.rs,
    // tests/operator_process.rs); here, that an explicit address stays what it was.
    #[tokio::test]
    async fn a_given_address_is_bound_as_given() {
        let listener = listen(Ipv4Addr::LOCALHOST.into(), 0, "test").unwrap();
        assert_eq!(listener.local_addr().unwrap().ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
        let port = listener.local_addr().unwrap().port();
        assert!(tokio::net::TcpStream::connect((Ipv6Addr::LOCALHOST, port)).await.is_err());
    }
}
