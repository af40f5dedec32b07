// SPDX-License-Identifier: AGPL-3.0-or-later
//! Sending a batch of datagrams on a connected UDP socket with one `sendmmsg(2)`: on
//! loopback a `send` per HEP packet cost about 5 µs, most of it the system call's way in and
//! out, which kept UDP export far below the offline pipeline's rate.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams handed to the kernel in one call at most (Linux's `UIO_MAXIOV` is 1,024).
pub const BATCH: usize = 64;

/// What sending a batch came to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Errors met: each a datagram the destination refused (an ICMP error coming back) or
    /// the kernel would not send.
    pub refused: usize,
    /// The last error, for the warning.
    pub error: Option<io::Error>,
}

/// Sends every datagram of `packets`, [`BATCH`] at a time, each tried once.
///
/// `sendmmsg` reports only the first datagram's error: one met later in the batch (on
/// loopback the ICMP refusal of the datagram before arrives at once) stops the batch and is
/// lost. A batch that stops short although the socket had room is such a lost error: the
/// datagram before it, counted as sent, is counted as refused instead. Each datagram is then
/// either sent or refused.
pub async fn send_all(socket: &UdpSocket, packets: &[Arc<[u8]>]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut at = 0;
    let mut stopped_short = false;
    while at < packets.len() {
        let batch = &packets[at..packets.len().min(at + BATCH)];
        match send_some(socket, batch).await {
            Ok((n, waited)) => {
                if stopped_short && !waited {
                    // The refusal is of a datagram counted as sent (the one before).
                    outcome.sent = outcome.sent.saturating_sub(1);
                    outcome.refused += 1;
                    outcome.error = Some(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        "a datagram was refused (sendmmsg does not say why)",
                    ));
                }
                stopped_short = n < batch.len();
                outcome.sent += n;
                at += n;
            }
            Err(e) => {
                outcome.refused += 1;
                outcome.error = Some(e);
                stopped_short = false;
                at += 1;
            }
        }
    }
    outcome
}

/// Sends the first datagrams of `batch` (at most [`BATCH`]); returns how many went and
/// whether it had to wait for room. An error is the first datagram's.
async fn send_some(socket: &UdpSocket, batch: &[Arc<[u8]>]) -> io::Result<(usize, bool)> {
    let mut waited = false;
    loop {
        socket.writable().await?;
        match socket.try_io(Interest::WRITABLE, || sendmmsg(socket, batch)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => waited = true,
            result => return result.map(|n| (n, waited)),
        }
    }
}

/// One `sendmmsg(2)` of `packets` (at most [`BATCH`]) on the connected `socket`.
fn sendmmsg(socket: &UdpSocket, packets: &[Arc<[u8]>]) -> io::Result<usize> {
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: `mmsghdr` is a plain C struct; all zeroes is a valid (empty) value of it.
    let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for ((packet, iovec), header) in packets.iter().zip(&mut iovecs).zip(&mut headers) {
        // The kernel only reads from the buffer (`sendmmsg` takes it as `const` data).
        iovec.iov_base = packet.as_ptr().cast_mut().cast();
        iovec.iov_len = packet.len();
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `headers[..n]` each point at one `iovec` of `iovecs`, which point into
    // `packets`; all of them outlive the call, and the socket is connected, so no address is
    // needed. `n` is at most BATCH, which fits in c_uint.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            packets.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_each_datagram_whole_and_in_order() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("a socket");
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
        sender
            .connect(receiver.local_addr().expect("address"))
            .await
            .expect("connected");
        let packets: Vec<Arc<[u8]>> = (0..100u8)
            .map(|i| Arc::from(vec![i; 1 + usize::from(i)].as_slice()))
            .collect();
        let outcome = send_all(&sender, &packets).await;
        assert_eq!((outcome.sent, outcome.refused), (100, 0));
        let mut buffer = [0u8; 256];
        for want in &packets {
            let n = receiver.recv(&mut buffer).expect("received");
            assert_eq!(&buffer[..n], &want[..]);
        }
    }

    #[tokio::test]
    async fn counts_refusals_the_batch_call_does_not_report() {
        // Nothing listens on the port: loopback answers each datagram with an ICMP refusal,
        // which the next send meets.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port");
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
        sender.connect(port).await.expect("connected");
        let packets: Vec<Arc<[u8]>> = vec![Arc::from(&b"x"[..]); 10];
        let outcome = send_all(&sender, &packets).await;
        assert!(outcome.refused >= 4, "{outcome:?}");
        assert_eq!(outcome.sent + outcome.refused, 10, "{outcome:?}");
        assert_eq!(
            outcome.error.map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
    }
}
