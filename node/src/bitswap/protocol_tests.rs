//! Tests of the bitswap codec: round trips per version, limits at limit and limit+1,
//! tolerance of unknown fields, strictness elsewhere, and no panic on any input.

use super::*;
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use proptest::prelude::*;

fn raw_block(data: &[u8]) -> Block {
    let cid = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(data).unwrap());
    Block::new(cid, Bytes::copy_from_slice(data)).unwrap()
}

fn v0_block(data: &[u8]) -> Block {
    let cid = Cid::new_v0(HashFn::Sha2_256.digest(data).unwrap()).unwrap();
    Block::new(cid, Bytes::copy_from_slice(data)).unwrap()
}

fn sample(version: ProtocolVersion) -> Message {
    let b1 = if version == ProtocolVersion::V1_0_0 {
        v0_block(b"hello")
    } else {
        raw_block(b"hello")
    };
    let b2 = v0_block(b"world");
    Message {
        wantlist: Some(Wantlist {
            entries: vec![
                WantEntry::want_block(*b1.cid(), 7, true),
                WantEntry::want_have(*b2.cid(), -3, false),
                WantEntry::cancel(v0_block(b"gone").cid().to_owned()),
            ],
            full: true,
        }),
        blocks: vec![b1.clone(), b2.clone()],
        presences: vec![
            BlockPresence {
                cid: *b1.cid(),
                kind: PresenceType::Have,
            },
            BlockPresence {
                cid: *b2.cid(),
                kind: PresenceType::DontHave,
            },
        ],
        pending_bytes: -5,
    }
}

#[test]
fn round_trip_1_2_0() {
    let m = sample(ProtocolVersion::V1_2_0);
    let back =
        Message::decode(&m.encode(ProtocolVersion::V1_2_0), ProtocolVersion::V1_2_0).unwrap();
    assert_eq!(back, m);
}

#[test]
fn frame_parts_are_the_frame_with_block_data_shared_not_copied() {
    for v in ProtocolVersion::ALL {
        let m = sample(v);
        let parts = m.encode_frame_parts(v);
        assert_eq!(parts.concat(), m.encode_frame(v), "{v:?}");
        // Every block's data is a part of its own, the very bytes of the block.
        for b in &m.blocks {
            assert!(
                parts
                    .iter()
                    .any(|p| p.as_ptr() == b.data().as_ptr() && p.len() == b.data().len()),
                "{v:?}: a block's data was copied"
            );
        }
        // The frame decodes back: its length prefix, then the message.
        let frame = parts.concat();
        let (len, at) = read_length_prefix(&frame).unwrap().unwrap();
        assert_eq!(len, frame.len() - at);
        let back = Message::decode(&frame[at..], v).unwrap();
        assert_eq!(back, Message::decode(&m.encode(v), v).unwrap(), "{v:?}");
    }
    // A message without blocks is one part.
    let wants = Message {
        blocks: Vec::new(),
        ..sample(ProtocolVersion::V1_2_0)
    };
    assert_eq!(wants.encode_frame_parts(ProtocolVersion::V1_2_0).len(), 1);
}

#[test]
fn round_trip_1_1_0_drops_have_features() {
    let v = ProtocolVersion::V1_1_0;
    let m = sample(v);
    let back = Message::decode(&m.encode(v), v).unwrap();
    let wl = back.wantlist.clone().unwrap();
    assert!(wl.full);
    assert_eq!(wl.entries.len(), 3);
    assert!(wl
        .entries
        .iter()
        .all(|e| e.want_type == WantType::Block && !e.send_dont_have));
    assert_eq!(wl.entries[0].priority, 7);
    assert_eq!(wl.entries[1].priority, -3);
    assert!(wl.entries[2].cancel);
    assert_eq!(back.blocks, m.blocks);
    assert!(back.presences.is_empty());
    assert_eq!(back.pending_bytes, 0);
}

#[test]
fn round_trip_1_0_0_blocks_are_cidv0() {
    let v = ProtocolVersion::V1_0_0;
    let m = sample(v);
    let bytes = m.encode(v);
    let back = Message::decode(&bytes, v).unwrap();
    assert_eq!(back.blocks, m.blocks);
    assert_eq!(
        back.wantlist.as_ref().unwrap().entries[0].cid,
        *m.blocks[0].cid()
    );
    // A raw block sent to a 1.0 peer arrives as the CIDv0 of the same multihash.
    let raw = raw_block(b"raw bytes");
    let m = Message {
        blocks: vec![raw.clone()],
        ..Message::default()
    };
    let back = Message::decode(&m.encode(v), v).unwrap();
    assert_eq!(back.blocks[0].cid().hash(), raw.cid().hash());
    assert_eq!(back.blocks[0].cid().version(), Version::V0);
}

#[test]
fn frames_stream_and_wait_for_more() {
    let v = ProtocolVersion::V1_2_0;
    let a = sample(v);
    let b = Message {
        blocks: vec![raw_block(b"second")],
        ..Message::default()
    };
    let mut stream = a.encode_frame(v);
    stream.extend(b.encode_frame(v));
    for cut in 0..a.encode_frame(v).len() {
        assert_eq!(decode_frame(&stream[..cut], v).unwrap(), None, "cut {cut}");
    }
    let (m1, n1) = decode_frame(&stream, v).unwrap().unwrap();
    assert_eq!(m1, a);
    let (m2, n2) = decode_frame(&stream[n1..], v).unwrap().unwrap();
    assert_eq!(m2, b);
    assert_eq!(n1 + n2, stream.len());
}

#[test]
fn frame_length_limit_plus_one() {
    let mut at = Vec::new();
    put_varint(&mut at, MESSAGE_BYTES_MAX as u64);
    assert_eq!(
        read_length_prefix(&at).unwrap(),
        Some((MESSAGE_BYTES_MAX, at.len()))
    );
    assert_eq!(decode_frame(&at, ProtocolVersion::V1_2_0).unwrap(), None);
    let mut over = Vec::new();
    put_varint(&mut over, MESSAGE_BYTES_MAX as u64 + 1);
    assert!(matches!(
        decode_frame(&over, ProtocolVersion::V1_2_0),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
    // Refused from the first prefix bytes that already exceed the limit.
    assert!(matches!(
        read_length_prefix(&[0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
    // A message body over the limit is refused by decode too.
    let body = vec![0u8; MESSAGE_BYTES_MAX + 1];
    assert!(matches!(
        Message::decode(&body, ProtocolVersion::V1_2_0),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
}

#[test]
fn block_size_limit_plus_one() {
    let at = vec![1u8; BLOCK_SIZE_BYTES_MAX];
    let over = vec![1u8; BLOCK_SIZE_BYTES_MAX + 1];
    for v in [ProtocolVersion::V1_0_0, ProtocolVersion::V1_2_0] {
        let ok = Message {
            blocks: vec![raw_block(&at)],
            ..Message::default()
        };
        assert_eq!(Message::decode(&ok.encode(v), v).unwrap().blocks.len(), 1);
        let bad = if v == ProtocolVersion::V1_0_0 {
            let mut m = Vec::new();
            put_bytes_field(&mut m, 2, &over);
            m
        } else {
            payload(&cid_prefix(raw_block(b"x").cid()), &over)
        };
        assert!(matches!(
            Message::decode(&bad, v),
            Err(ProtocolError::BlockTooLarge { .. })
        ));
    }
}

fn cid_with_digest(code: u64, len: usize) -> Vec<u8> {
    let mut b = Vec::new();
    put_varint(&mut b, 1);
    put_varint(&mut b, RAW_CODEC);
    put_varint(&mut b, code);
    put_varint(&mut b, len as u64);
    b.extend(std::iter::repeat_n(7u8, len));
    b
}

#[test]
fn cid_digest_bounds() {
    assert!(parse_cid(&cid_with_digest(0x12, DIGEST_BYTES_MIN)).is_ok());
    assert!(matches!(
        parse_cid(&cid_with_digest(0x12, DIGEST_BYTES_MIN - 1)),
        Err(ProtocolError::DigestLength { len: 19, .. })
    ));
    assert!(parse_cid(&cid_with_digest(0x13, DIGEST_BYTES_MAX)).is_ok());
    assert!(matches!(
        parse_cid(&cid_with_digest(0x13, DIGEST_BYTES_MAX + 1)),
        Err(ProtocolError::DigestLength { len: 65, .. })
    ));
    assert!(matches!(
        parse_cid(&cid_with_digest(0x13, 128)),
        Err(ProtocolError::DigestLength { .. })
    ));
}

#[test]
fn cid_length_limit_plus_one() {
    // A CID of exactly CID_BYTES_MAX bytes passes the length check (and then fails on content),
    // one byte more is refused by length before parsing.
    let mut long = cid_with_digest(0x12, 32);
    long.resize(CID_BYTES_MAX + 1, 0);
    assert!(matches!(
        parse_cid(&long),
        Err(ProtocolError::CidTooLong {
            size_bytes: 169,
            ..
        })
    ));
    long.truncate(CID_BYTES_MAX);
    assert!(matches!(parse_cid(&long), Err(ProtocolError::BadCid(_))));
    assert!(matches!(
        parse_cid(b"\x01\x55"),
        Err(ProtocolError::BadCid(_))
    ));
}

fn entries_message(n: usize) -> Vec<u8> {
    let cid = *raw_block(b"e").cid();
    Message {
        wantlist: Some(Wantlist {
            entries: vec![WantEntry::want_have(cid, 1, true); n],
            full: false,
        }),
        ..Message::default()
    }
    .encode(ProtocolVersion::V1_2_0)
}

#[test]
fn entries_per_message_limit_plus_one() {
    let v = ProtocolVersion::V1_2_0;
    let ok = Message::decode(&entries_message(MESSAGE_ENTRIES_MAX), v).unwrap();
    assert_eq!(ok.wantlist.unwrap().entries.len(), MESSAGE_ENTRIES_MAX);
    assert!(matches!(
        Message::decode(&entries_message(MESSAGE_ENTRIES_MAX + 1), v),
        Err(ProtocolError::TooMany {
            what: "wantlist entry",
            ..
        })
    ));
}

#[test]
fn presences_per_message_limit_plus_one() {
    let v = ProtocolVersion::V1_2_0;
    let p = BlockPresence {
        cid: *raw_block(b"p").cid(),
        kind: PresenceType::DontHave,
    };
    let msg = |n| Message {
        presences: vec![p.clone(); n],
        ..Message::default()
    };
    assert_eq!(
        Message::decode(&msg(MESSAGE_PRESENCES_MAX).encode(v), v)
            .unwrap()
            .presences
            .len(),
        MESSAGE_PRESENCES_MAX
    );
    assert!(matches!(
        Message::decode(&msg(MESSAGE_PRESENCES_MAX + 1).encode(v), v),
        Err(ProtocolError::TooMany {
            what: "block presence",
            ..
        })
    ));
}

#[test]
fn blocks_per_message_limit_plus_one() {
    let v = ProtocolVersion::V1_1_0;
    let b = raw_block(b"");
    let msg = |n| Message {
        blocks: vec![b.clone(); n],
        ..Message::default()
    };
    assert_eq!(
        Message::decode(&msg(MESSAGE_BLOCKS_MAX).encode(v), v)
            .unwrap()
            .blocks
            .len(),
        MESSAGE_BLOCKS_MAX
    );
    assert!(matches!(
        Message::decode(&msg(MESSAGE_BLOCKS_MAX + 1).encode(v), v),
        Err(ProtocolError::TooMany { what: "block", .. })
    ));
}

#[test]
fn unknown_fields_are_skipped_at_every_level() {
    let v = ProtocolVersion::V1_2_0;
    let cid = *raw_block(b"u").cid();
    // Entry with unknown fields of each skippable wire type.
    let mut entry = Vec::new();
    put_bytes_field(&mut entry, 1, &cid.to_bytes());
    put_varint_field(&mut entry, 20, 5);
    put_key(&mut entry, 21, 1);
    entry.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    put_key(&mut entry, 22, 5);
    entry.extend([1, 2, 3, 4]);
    put_bytes_field(&mut entry, 23, b"future");
    put_varint_field(&mut entry, 4, 1);
    let mut wl = Vec::new();
    put_bytes_field(&mut wl, 1, &entry);
    put_varint_field(&mut wl, 9, 1);
    let mut msg = Vec::new();
    put_bytes_field(&mut msg, 1, &wl);
    put_bytes_field(&mut msg, 42, b"unknown message field");
    let m = Message::decode(&msg, v).unwrap();
    let e = &m.wantlist.unwrap().entries[0];
    assert_eq!(e.cid, cid);
    assert_eq!(e.want_type, WantType::Have);
}

#[test]
fn strict_where_it_matters() {
    let v = ProtocolVersion::V1_2_0;
    // Groups (wire types 3, 4) are not skipped.
    assert!(matches!(
        Message::decode(&[(9 << 3) | 3], v),
        Err(ProtocolError::UnsupportedWireType(3))
    ));
    // A known field with the wrong wire type.
    assert!(matches!(
        Message::decode(&[(1 << 3), 1], v),
        Err(ProtocolError::WrongWireType { field: 1, .. })
    ));
    // Truncated length.
    assert!(matches!(
        Message::decode(&[(1 << 3) | 2, 5, 1], v),
        Err(ProtocolError::BadLength(5))
    ));
    assert!(matches!(
        Message::decode(&[0x80], v),
        Err(ProtocolError::Truncated)
    ));
    // Unknown enum values.
    let mut entry = Vec::new();
    put_bytes_field(&mut entry, 1, &raw_block(b"x").cid().to_bytes());
    put_varint_field(&mut entry, 4, 2);
    let mut wl = Vec::new();
    put_bytes_field(&mut wl, 1, &entry);
    let mut msg = Vec::new();
    put_bytes_field(&mut msg, 1, &wl);
    assert!(matches!(
        Message::decode(&msg, v),
        Err(ProtocolError::BadEnum {
            what: "WantType",
            value: 2
        })
    ));
    // An entry without a CID.
    let mut wl = Vec::new();
    put_bytes_field(&mut wl, 1, &[]);
    let mut msg = Vec::new();
    put_bytes_field(&mut msg, 1, &wl);
    assert!(matches!(
        Message::decode(&msg, v),
        Err(ProtocolError::MissingField(_))
    ));
}

fn payload(prefix: &[u8], data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_bytes_field(&mut b, 1, prefix);
    put_bytes_field(&mut b, 2, data);
    let mut msg = Vec::new();
    put_bytes_field(&mut msg, 3, &b);
    msg
}

fn prefix(version: u64, codec: u64, code: u64, len: u64) -> Vec<u8> {
    let mut p = Vec::new();
    for x in [version, codec, code, len] {
        put_varint(&mut p, x);
    }
    p
}

#[test]
fn block_cids_are_rebuilt_from_prefix_and_hash() {
    let v = ProtocolVersion::V1_2_0;
    // blake3 raw block.
    let m = Message::decode(&payload(&prefix(1, RAW_CODEC, 0x1e, 32), b"abc"), v).unwrap();
    let b = &m.blocks[0];
    assert_eq!(b.cid().hash().code(), 0x1e);
    ipfs_kit_blockstore::hash::verify(b.cid(), b.data()).unwrap();
    // Truncated sha2-256 digest (20 bytes).
    let m = Message::decode(&payload(&prefix(1, RAW_CODEC, 0x12, 20), b"abc"), v).unwrap();
    assert_eq!(m.blocks[0].cid().hash().size(), 20);
    ipfs_kit_blockstore::hash::verify(m.blocks[0].cid(), b"abc").unwrap();
    // Errors.
    let err = |p: Vec<u8>| Message::decode(&payload(&p, b"abc"), v).unwrap_err();
    assert_eq!(
        err(prefix(1, RAW_CODEC, 0x99, 32)),
        ProtocolError::UnsupportedHash(0x99)
    );
    assert_eq!(
        err(prefix(1, RAW_CODEC, 0x00, 3)),
        ProtocolError::UnsupportedHash(0)
    );
    assert!(matches!(
        err(prefix(0, RAW_CODEC, 0x12, 32)),
        ProtocolError::BadPrefix(_)
    ));
    assert!(matches!(
        err(prefix(2, RAW_CODEC, 0x12, 32)),
        ProtocolError::BadPrefix(_)
    ));
    assert!(matches!(
        err(prefix(1, RAW_CODEC, 0x12, 33)),
        ProtocolError::BadPrefix(_)
    ));
    assert!(matches!(
        err(prefix(1, RAW_CODEC, 0x12, 19)),
        ProtocolError::DigestLength { .. }
    ));
    assert!(matches!(
        err(prefix(1, RAW_CODEC, 0x13, 65)),
        ProtocolError::DigestLength { .. }
    ));
    let mut trailing = prefix(1, RAW_CODEC, 0x12, 32);
    trailing.push(0);
    assert!(matches!(err(trailing), ProtocolError::BadPrefix(_)));
    assert!(matches!(
        err(vec![1u8; PREFIX_BYTES_MAX + 1]),
        ProtocolError::BadPrefix(_)
    ));
    // No prefix at all.
    let mut b = Vec::new();
    put_bytes_field(&mut b, 2, b"abc");
    let mut msg = Vec::new();
    put_bytes_field(&mut msg, 3, &b);
    assert_eq!(
        Message::decode(&msg, v).unwrap_err(),
        ProtocolError::MissingField("prefix")
    );
}

/// The blocks of one message are hashed together, SHA-256 ones two at a time: each still
/// gets its own digest and CID whatever its neighbours' functions, lengths and order.
#[test]
fn blocks_of_a_message_hashed_together_keep_their_own_cids() {
    let v = ProtocolVersion::V1_2_0;
    let datas: Vec<Vec<u8>> = [0usize, 1, 64, 262_144, 262_158, 100_000, 7]
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (j * 7 + i) as u8).collect())
        .collect();
    let mut msg = Vec::new();
    let mut want = Vec::new();
    for (i, d) in datas.iter().enumerate() {
        let (codec, f) = match i % 3 {
            0 => (RAW_CODEC, HashFn::Sha2_256),
            1 => (DAG_PB_CODEC, HashFn::Sha2_256),
            _ => (RAW_CODEC, HashFn::Blake3),
        };
        let p = prefix(1, codec, f.code(), 32);
        msg.extend(payload(&p, d));
        want.push(Cid::new_v1(codec, f.digest(d).unwrap()));
    }
    let m = Message::decode(&msg, v).unwrap();
    let got: Vec<Cid> = m.blocks.iter().map(|b| *b.cid()).collect();
    assert_eq!(got, want);
    for (b, d) in m.blocks.iter().zip(&datas) {
        assert_eq!(&b.data()[..], &d[..]);
    }
    // 1.0: every block a CIDv0, in pairs too.
    let mut msg = Vec::new();
    for d in &datas[..3] {
        put_bytes_field(&mut msg, 2, d);
    }
    let m = Message::decode(&msg, ProtocolVersion::V1_0_0).unwrap();
    for (b, d) in m.blocks.iter().zip(&datas) {
        assert_eq!(*b.cid(), v0_block(d).cid().to_owned());
    }
}

#[test]
fn protocol_names() {
    for v in ProtocolVersion::ALL {
        assert_eq!(
            ProtocolVersion::from_protocol_name(v.protocol_name()),
            Some(v)
        );
    }
    assert_eq!(ProtocolVersion::from_protocol_name("/ipfs/bitswap"), None);
    assert!(ProtocolVersion::V1_2_0.supports_have());
    assert!(!ProtocolVersion::V1_1_0.supports_have());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for v in ProtocolVersion::ALL {
            let _ = Message::decode(&bytes, v);
            let _ = decode_frame(&bytes, v);
        }
    }

    #[test]
    fn decode_never_panics_on_mutated_messages(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        for v in ProtocolVersion::ALL {
            let mut bytes = sample(v).encode_frame(v);
            for (i, b) in &flips {
                let n = bytes.len();
                bytes[i % n] ^= b;
            }
            let n = bytes.len();
            bytes.truncate(cut % (n + 1));
            let _ = decode_frame(&bytes, v);
            let _ = Message::decode(&bytes, v);
        }
    }
}
