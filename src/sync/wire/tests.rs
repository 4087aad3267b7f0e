//! Byte fixtures laid out from the kernel's structs (`ip_vs_sync.c`), the
//! encoder against them, and every malformed input a counted error.

use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One NAT TCP connection in ESTABLISHED, syncid 7: the header, then a
/// `struct ip_vs_sync_v4` field by field.
const ONE_V4: [u8; 44] = [
    0x00, 0x07, 0x00, 0x2c, 0x01, 0x01, 0x00,
    0x00, // reserved syncid size=44 nr=1 ver=1 spare
    0x00, 0x06, 0x00, 0x24, // type=0 proto=TCP ver_size=36
    0x00, 0x00, 0x00, 0x00, // flags: MASQ
    0x00, 0x01, 0xc3, 0x50, // state ESTABLISHED, cport 50000
    0x00, 0x50, 0x1f, 0x90, // vport 80, dport 8080
    0x00, 0x00, 0x00, 0x00, // fwmark
    0x00, 0x00, 0x03, 0x84, // timeout 900 s
    198, 18, 0, 2, // caddr
    198, 18, 1, 1, // vaddr
    198, 18, 2, 11, // daddr
];

fn one_v4_entry() -> Entry {
    Entry {
        protocol: IPPROTO_TCP,
        flags: flags::MASQ,
        state: 1,
        caddr: ip("198.18.0.2"),
        cport: 50000,
        vaddr: ip("198.18.1.1"),
        vport: 80,
        daddr: ip("198.18.2.11"),
        dport: 8080,
        fwmark: 0,
        timeout: 900,
        seq: None,
    }
}

/// Two entries: a NAT FTP control connection with SEQ_DATA (62 bytes, so
/// 2 bytes of padding follow), then a DR UDP one.
fn two_entries() -> Vec<u8> {
    let mut m = vec![0x00, 0x09, 0x00, 108, 0x02, 0x01, 0x00, 0x00];
    m.extend_from_slice(&[0x00, 0x06, 0x00, 62]);
    m.extend_from_slice(&(flags::MASQ | flags::IN_SEQ | flags::OUT_SEQ).to_be_bytes());
    m.extend_from_slice(&[0x00, 0x01, 0x9c, 0x40, 0x00, 0x15, 0x00, 0x15]);
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0x84]);
    m.extend_from_slice(&[198, 18, 0, 3, 198, 18, 1, 1, 198, 18, 2, 12]);
    m.extend_from_slice(&[opt::SEQ_DATA, 24]);
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // in_seq
    m.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0, 0, 0, 3, 0, 0, 0, 0]); // out_seq
    m.extend_from_slice(&[0, 0]); // padding to 4
    m.extend_from_slice(&[0x00, 0x11, 0x00, 0x24]);
    m.extend_from_slice(&flags::DROUTE.to_be_bytes());
    m.extend_from_slice(&[0x00, 0x00, 0x13, 0x88, 0x00, 0x35, 0x00, 0x35]);
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x05]);
    m.extend_from_slice(&[198, 18, 0, 4, 198, 18, 1, 2, 198, 18, 2, 13]);
    assert_eq!(m.len(), 108);
    m
}

fn two_expected() -> [Entry; 2] {
    [
        Entry {
            flags: flags::MASQ | flags::IN_SEQ | flags::OUT_SEQ,
            caddr: ip("198.18.0.3"),
            cport: 40000,
            vport: 21,
            daddr: ip("198.18.2.12"),
            dport: 21,
            seq: Some(SeqData {
                in_seq: SeqAdjust::default(),
                out_seq: SeqAdjust {
                    init_seq: 0x1122_3344,
                    delta: 3,
                    prev_delta: 0,
                },
            }),
            ..one_v4_entry()
        },
        Entry {
            protocol: IPPROTO_UDP,
            flags: flags::DROUTE,
            state: 0,
            caddr: ip("198.18.0.4"),
            cport: 5000,
            vaddr: ip("198.18.1.2"),
            vport: 53,
            daddr: ip("198.18.2.13"),
            dport: 53,
            fwmark: 0,
            timeout: 5,
            seq: None,
        },
    ]
}

fn decode(m: &[u8]) -> Result<Vec<Result<Entry, SyncError>>, SyncError> {
    Ok(Message::new_checked(m)?.entries().collect())
}

fn encode(syncid: u8, entries: &[Entry]) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let mut b = Builder::new(&mut buf, syncid, 1500).unwrap();
    for e in entries {
        b.push(e).unwrap();
    }
    b.bytes().to_vec()
}

#[test]
fn decodes_the_kernel_layout() {
    let m = Message::new_checked(&ONE_V4).unwrap();
    assert_eq!((m.syncid(), m.nr_conns(), m.len()), (7, 1, 44));
    assert_eq!(decode(&ONE_V4).unwrap(), vec![Ok(one_v4_entry())]);
    let got: Vec<_> = decode(&two_entries()).unwrap();
    assert_eq!(got, two_expected().map(Ok).to_vec());
}

#[test]
fn encodes_the_kernel_layout() {
    assert_eq!(encode(7, &[one_v4_entry()]), ONE_V4);
    assert_eq!(encode(9, &two_expected()), two_entries());
}

#[test]
fn hashed_is_not_sent() {
    let e = Entry {
        flags: flags::HASHED | flags::TUNNEL,
        ..one_v4_entry()
    };
    let m = encode(1, &[e]);
    let got = decode(&m).unwrap();
    assert_eq!(got[0].unwrap().flags, flags::TUNNEL);
}

#[test]
fn ipv6_round_trip() {
    let e = Entry {
        caddr: ip("2001:db8::2"),
        vaddr: ip("2001:db8:1::1"),
        daddr: ip("2001:db8:2::b"),
        seq: Some(SeqData::default()),
        ..one_v4_entry()
    };
    let m = encode(3, &[e, one_v4_entry()]);
    // 72 + 26 = 98, padded to 100, then 36.
    assert_eq!(m.len(), HEADER_LEN + 100 + 36);
    assert_eq!(m[HEADER_LEN], TYPE_F_INET6);
    assert_eq!(decode(&m).unwrap(), vec![Ok(e), Ok(one_v4_entry())]);
}

#[test]
fn builder_fills_to_maxlen_and_255() {
    let mut buf = [0u8; 200];
    let mut b = Builder::new(&mut buf, 1, 8 + 36 * 3 + 4).unwrap();
    for _ in 0..3 {
        b.push(&one_v4_entry()).unwrap();
    }
    assert_eq!(b.push(&one_v4_entry()), Err(EncodeError::Full));
    assert_eq!(b.count(), 3);
    b.clear();
    assert!(b.is_empty());
    assert_eq!(Message::new_checked(b.bytes()).unwrap().nr_conns(), 0);

    let mut big = vec![0u8; 65535];
    let mut b = Builder::new(&mut big, 1, 65535).unwrap();
    while b.push(&one_v4_entry()).is_ok() {}
    assert_eq!(b.count(), 255);
    assert_eq!(decode(b.bytes()).unwrap().len(), 255);

    let mixed = Entry {
        daddr: ip("2001:db8::1"),
        ..one_v4_entry()
    };
    let mut buf = [0u8; 100];
    let mut b = Builder::new(&mut buf, 1, 100).unwrap();
    assert_eq!(b.push(&mixed), Err(EncodeError::MixedFamily));
    assert!(Builder::new(&mut buf[..7], 1, 100).is_none());
}

fn err_of(m: &[u8]) -> SyncError {
    match decode(m) {
        Err(e) => e,
        Ok(v) => v.into_iter().find_map(|r| r.err()).expect("an error"),
    }
}

fn with_size(mut m: Vec<u8>) -> Vec<u8> {
    let n = m.len() as u16;
    if m.len() < 4 {
        return m;
    }
    m[2..4].copy_from_slice(&n.to_be_bytes());
    m
}

#[test]
fn header_errors() {
    assert_eq!(err_of(&ONE_V4[..7]), SyncError::TooShort);
    assert_eq!(err_of(&ONE_V4[..40]), SyncError::SizeMismatch);
    let mut m = ONE_V4;
    m[5] = 0; // version 0 layout
    assert_eq!(err_of(&m), SyncError::Version);
    let mut m = ONE_V4;
    m[0] = 1;
    assert_eq!(err_of(&m), SyncError::Version);
    let mut m = ONE_V4;
    m[7] = 1;
    assert_eq!(err_of(&m), SyncError::Version);
}

#[test]
fn entry_errors() {
    // More entries announced than present.
    let mut m = ONE_V4;
    m[4] = 2;
    let got = decode(&m).unwrap();
    assert_eq!(got, vec![Ok(one_v4_entry()), Err(SyncError::Truncated)]);
    // An entry longer than the datagram.
    let mut m = ONE_V4;
    m[11] = 40;
    assert_eq!(err_of(&m), SyncError::Truncated);
    // Version nibble.
    let mut m = ONE_V4;
    m[10] = 0x10;
    assert_eq!(err_of(&m), SyncError::EntryVersion);
    // Type 2.
    let mut m = ONE_V4;
    m[8] = 2;
    assert_eq!(err_of(&m), SyncError::EntryType);
    // Size below the fixed part, and zero.
    for s in [0u8, 20] {
        let mut m = ONE_V4;
        m[11] = s;
        assert_eq!(err_of(&m), SyncError::EntrySize);
    }
    // IPv6 type on 36 bytes.
    let mut m = ONE_V4;
    m[8] = 1;
    assert_eq!(err_of(&m), SyncError::EntrySize);
}

/// ONE_V4 with `opt` appended as options of its entry.
fn with_options(opt: &[u8]) -> Vec<u8> {
    let mut m = ONE_V4.to_vec();
    m.extend_from_slice(opt);
    let n = (36 + opt.len()) as u16;
    m[10..12].copy_from_slice(&n.to_be_bytes());
    with_size(m)
}

#[test]
fn option_errors() {
    assert_eq!(err_of(&with_options(&[1])), SyncError::OptionTruncated);
    assert_eq!(err_of(&with_options(&[1, 0])), SyncError::OptionLength);
    assert_eq!(
        err_of(&with_options(&[1, 4, 0])),
        SyncError::OptionTruncated
    );
    assert_eq!(
        err_of(&with_options(&[1, 4, 0, 0, 0, 0])),
        SyncError::OptionLength
    );
    let mut two = vec![1, 24];
    two.extend_from_slice(&[0; 24]);
    two.extend_from_slice(&two.clone());
    assert_eq!(err_of(&with_options(&two)), SyncError::OptionTwice);
    assert_eq!(
        err_of(&with_options(&[2, 1, 0, 2, 1, 0])),
        SyncError::OptionTwice
    );
    let mut long_name = vec![3, 17];
    long_name.extend_from_slice(&[b'a'; 17]);
    assert_eq!(err_of(&with_options(&long_name)), SyncError::OptionLength);
}

#[test]
fn skipped_entries_leave_the_rest() {
    // Unknown mandatory option: skipped; the same with F_PARAM: ignored.
    let m = with_options(&[5, 2, 0, 0]);
    assert_eq!(decode(&m).unwrap(), vec![Err(SyncError::UnknownOption)]);
    let m = with_options(&[5 | opt::F_PARAM, 2, 0, 0]);
    assert_eq!(decode(&m).unwrap(), vec![Ok(one_v4_entry())]);
    // Persistence-engine data.
    let m = with_options(&[2, 2, 0, 0, 3, 3, b's', b'i', b'p']);
    assert_eq!(decode(&m).unwrap(), vec![Err(SyncError::PersistenceEngine)]);

    // A bad protocol or state in the first entry, the second still read.
    let mut m = two_entries();
    m[9] = 47;
    let got = decode(&m).unwrap();
    assert_eq!(got, vec![Err(SyncError::Protocol), Ok(two_expected()[1])]);
    let mut m = two_entries();
    m[17] = 11;
    let got = decode(&m).unwrap();
    assert_eq!(got, vec![Err(SyncError::State), Ok(two_expected()[1])]);
    // Templates carry any state and protocol.
    let t = Entry {
        protocol: 0,
        flags: flags::TEMPLATE,
        state: 1,
        ..one_v4_entry()
    };
    assert_eq!(decode(&encode(1, &[t])).unwrap(), vec![Ok(t)]);
}

#[test]
fn errors_are_counted_and_named() {
    let mut c = SyncErrors::default();
    for e in SyncError::ALL {
        c.count(e);
    }
    assert_eq!(c.total(), SyncError::COUNT as u64);
    assert_eq!(c.get(SyncError::State), 1);
    let names: std::collections::BTreeSet<_> = SyncError::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(names.len(), SyncError::COUNT);
    for (i, e) in SyncError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
    }
}

/// Every prefix and every single-byte corruption of the fixtures decodes
/// without a panic, and what decodes re-encodes to a message that decodes
/// the same (the fuzz target's property, exhaustively on small inputs).
#[test]
fn corruptions_never_panic() {
    for base in [ONE_V4.to_vec(), two_entries()] {
        for n in 0..=base.len() {
            let _ = decode(&with_size(base[..n].to_vec()));
        }
        for i in 0..base.len() {
            for v in [0u8, 1, 2, 0x0f, 0x10, 0x40, 0x7f, 0x80, 0xff] {
                let mut m = base.clone();
                m[i] = v;
                let _ = decode(&m);
                let _ = decode(&with_size(m));
            }
        }
    }
}
