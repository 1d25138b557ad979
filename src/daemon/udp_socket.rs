//! Binding a SIP UDP listener with socket buffers sized for bursts.
//!
//! The kernel's default receive buffer (~208 KiB, about a hundred small
//! datagrams on loopback once the kernel's per-packet overhead is counted)
//! holds a few milliseconds of traffic at a few thousand calls per second:
//! one scheduling stall of the reader overflows it, drops turn into
//! retransmissions and the rate collapses. Kamailio asks for 4 MiB (`-b`);
//! so do we. As root (CAP_NET_ADMIN) the size is forced past
//! `net.core.rmem_max`; otherwise the kernel caps it there, and the size
//! we got is logged so an operator can raise the sysctl.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::{info, warn};

/// What we ask for, each direction.
pub const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// A bound, non-blocking UDP socket on `addr` with large buffers.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    grow_buffers(&sock);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    let got = sock.recv_buffer_size().unwrap_or(0);
    // Linux reports twice what was set (its bookkeeping share included).
    if got < UDP_BUFFER_BYTES {
        warn!(
            %addr,
            receive_buffer = got,
            wanted = UDP_BUFFER_BYTES,
            "SIP UDP receive buffer is small: raise net.core.rmem_max (bursts may be dropped)"
        );
    } else {
        info!(%addr, receive_buffer = got, "SIP UDP listener");
    }
    UdpSocket::from_std(sock.into())
}

fn grow_buffers(sock: &Socket) {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        let forced = setsockopt(sock, sockopt::RcvBufForce, &UDP_BUFFER_BYTES).is_ok()
            && setsockopt(sock, sockopt::SndBufForce, &UDP_BUFFER_BYTES).is_ok();
        if forced {
            return;
        }
    }
    // Unprivileged: capped by net.core.rmem_max / wmem_max.
    let _ = sock.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = sock.set_send_buffer_size(UDP_BUFFER_BYTES);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_gets_more_than_the_default_receive_buffer() {
        let sock = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let s = socket2::SockRef::from(&sock);
        let got = s.recv_buffer_size().expect("size");
        // The default is net.core.rmem_default (212992 on Debian); asking
        // for 4 MiB gets at least the sysctl cap, which is above it here
        // and in CI (root forces it).
        assert!(got > 212_992, "receive buffer {got}");
    }
}
