//! ADD_PROVIDER messages of the Kademlia protocol (`/ipfs/kad/1.0.0`, `ipfs/specs`
//! `src/routing/kad-dht.md`), encoded by hand: a `Message { type = ADD_PROVIDER, key,
//! providerPeers = [Peer { id, addrs }] }` protobuf behind an unsigned-varint length, the
//! framing every DHT implementation reads. Many such frames may follow each other on one
//! stream: receivers read messages until the stream ends.

use libp2p::{Multiaddr, PeerId};

use crate::net::behaviour::KAD_PACKET_BYTES_MAX;

/// `Message.MessageType.ADD_PROVIDER`.
const MESSAGE_TYPE_ADD_PROVIDER: u64 = 2;

/// Errors building a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("ADD_PROVIDER message of {len} bytes exceeds {max} bytes")]
    TooLarge { len: usize, max: usize },
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The protobuf body of one ADD_PROVIDER message for `key` (the multihash bytes) naming
/// `provider` at `addrs`.
pub fn add_provider_message(key: &[u8], provider: &PeerId, addrs: &[Multiaddr]) -> Vec<u8> {
    let mut peer = Vec::new();
    put_bytes(&mut peer, 1, &provider.to_bytes());
    for a in addrs {
        put_bytes(&mut peer, 2, &a.to_vec());
    }
    let mut msg = Vec::with_capacity(key.len() + peer.len() + 8);
    put_varint(&mut msg, 1 << 3); // field 1 (type), varint
    put_varint(&mut msg, MESSAGE_TYPE_ADD_PROVIDER);
    put_bytes(&mut msg, 2, key);
    put_bytes(&mut msg, 9, &peer);
    msg
}

/// One length-prefixed ADD_PROVIDER frame, refused beyond [`KAD_PACKET_BYTES_MAX`] (what
/// receivers accept).
pub fn add_provider_frame(
    key: &[u8],
    provider: &PeerId,
    addrs: &[Multiaddr],
) -> Result<Vec<u8>, WireError> {
    let msg = add_provider_message(key, provider, addrs);
    if msg.len() > KAD_PACKET_BYTES_MAX {
        return Err(WireError::TooLarge {
            len: msg.len(),
            max: KAD_PACKET_BYTES_MAX,
        });
    }
    let mut frame = Vec::with_capacity(msg.len() + 4);
    put_varint(&mut frame, msg.len() as u64);
    frame.extend_from_slice(&msg);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A minimal protobuf reader for the test: (field, wire type, bytes or varint).
    fn fields(mut b: &[u8]) -> Vec<(u64, Vec<u8>, u64)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let tag = varint(&mut b);
            if tag & 7 == 0 {
                out.push((tag >> 3, Vec::new(), varint(&mut b)));
            } else {
                let len = varint(&mut b) as usize;
                out.push((tag >> 3, b[..len].to_vec(), 0));
                b = &b[len..];
            }
        }
        out
    }

    #[test]
    fn frame_round_trips_through_a_protobuf_reader() {
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let key = vec![0x12, 0x20, 7, 7, 7];
        let frame = add_provider_frame(&key, &peer, &[addr.clone()]).unwrap();
        assert_eq!(frame[0] as usize, frame.len() - 1);
        let f = fields(&frame[1..]);
        assert_eq!(f[0], (1, vec![], 2));
        assert_eq!(f[1], (2, key, 0));
        assert_eq!(f[2].0, 9);
        let p = fields(&f[2].1);
        assert_eq!(p[0], (1, peer.to_bytes(), 0));
        assert_eq!(p[1], (2, addr.to_vec(), 0));
    }

    #[test]
    fn frame_over_the_kad_bound_is_refused() {
        let peer = PeerId::random();
        let addr: Multiaddr =
            "/dns4/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example/tcp/1"
                .parse()
                .unwrap();
        let per = add_provider_message(b"k", &peer, &[addr.clone()]).len()
            - add_provider_message(b"k", &peer, &[]).len();
        let base = add_provider_message(b"k", &peer, &[]).len();
        // Enough addresses to land exactly on the bound, then one byte of key more.
        let n = (KAD_PACKET_BYTES_MAX - base) / per;
        let addrs = vec![addr; n];
        let fits = add_provider_message(b"k", &peer, &addrs).len();
        let pad = KAD_PACKET_BYTES_MAX - fits;
        let key = vec![0u8; 1 + pad];
        // The key's length prefix may grow by a byte; trim so the message is exactly max.
        let mut key_at_max = key.clone();
        while add_provider_message(&key_at_max, &peer, &addrs).len() > KAD_PACKET_BYTES_MAX {
            key_at_max.pop();
        }
        let at_max = add_provider_message(&key_at_max, &peer, &addrs).len();
        assert_eq!(at_max, KAD_PACKET_BYTES_MAX);
        assert!(add_provider_frame(&key_at_max, &peer, &addrs).is_ok());
        key_at_max.push(0);
        let err = add_provider_frame(&key_at_max, &peer, &addrs).unwrap_err();
        assert_eq!(
            err,
            WireError::TooLarge {
                len: KAD_PACKET_BYTES_MAX + 1,
                max: KAD_PACKET_BYTES_MAX
            }
        );
    }
}
