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
    // The kernel stamps each datagram with its arrival: the reader tells
    // from it how long datagrams wait (`transport::BEHIND_AFTER`).
    #[cfg(target_os = "linux")]
    if let Err(e) =
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
    {
        warn!(%addr, error = %e, "no receive timestamps: overload is not detected on this listener");
    }
    UdpSocket::from_std(sock.into())
}

/// Reads one datagram without waiting: its length, its source and, when
/// the kernel stamped it, how long it waited in the socket's buffer.
#[cfg(target_os = "linux")]
pub fn recv_stamped(
    sock: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> std::io::Result<(usize, std::net::SocketAddr, Option<std::time::Duration>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let from = msg
        .address
        .as_ref()
        .and_then(socket_addr)
        .ok_or_else(|| std::io::Error::other("datagram without an IP source"))?;
    let mut waited = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                let at = std::time::UNIX_EPOCH
                    + std::time::Duration::new(
                        u64::try_from(ts.tv_sec()).unwrap_or(0),
                        u32::try_from(ts.tv_nsec()).unwrap_or(0),
                    );
                waited = std::time::SystemTime::now().duration_since(at).ok();
            }
        }
    }
    Ok((msg.bytes, from, waited))
}

#[cfg(target_os = "linux")]
fn socket_addr(a: &nix::sys::socket::SockaddrStorage) -> Option<std::net::SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(std::net::SocketAddrV4::from(*v4).into());
    }
    a.as_sockaddr_in6()
        .map(|v6| std::net::SocketAddrV6::from(*v6).into())
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
    async fn a_datagram_is_read_with_its_source_and_how_long_it_waited() {
        let sock = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let to = sock.local_addr().expect("addr");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        let mut buf = [0u8; 64];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        // The kernel turns arrival stamps on for everyone a moment after the
        // first socket asks (deferred work); until then a datagram is
        // stamped when it is read. So the first ones may show no wait.
        let mut seen = Vec::new();
        for _ in 0..20 {
            peer.send_to(b"OPTIONS", to).expect("send");
            std::thread::sleep(std::time::Duration::from_millis(30));
            let (n, from, waited) = recv_stamped(&sock, &mut buf, &mut cmsg).expect("read");
            assert_eq!(&buf[..n], b"OPTIONS");
            assert_eq!(from, peer.local_addr().expect("addr"));
            let waited = waited.expect("stamped");
            seen.push(waited);
            if waited >= std::time::Duration::from_millis(30) {
                break;
            }
        }
        let last = seen.last().copied().unwrap_or_default();
        assert!(last >= std::time::Duration::from_millis(30), "{seen:?}");
        let again = recv_stamped(&sock, &mut buf, &mut cmsg).expect_err("empty");
        assert_eq!(again.kind(), std::io::ErrorKind::WouldBlock);
    }

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
