use super::*;

const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 11);

#[test]
fn pasv_reply_as_vsftpd_writes_it() {
    let p = b"227 Entering Passive Mode (198,18,2,11,195,80).\r\n";
    let Some(Reply::Pasv {
        addr,
        port,
        at,
        len,
    }) = reply(p)
    else {
        panic!("not parsed")
    };
    assert_eq!((addr, port), (RIP, 195 * 256 + 80));
    assert_eq!(&p[at..at + len], b"198,18,2,11");
}

#[test]
fn pasv_reply_without_parentheses_and_after_other_lines() {
    let p = b"200 ok\r\n227 =198,18,2,11,4,1\r\n";
    let Some(Reply::Pasv {
        addr,
        port,
        at,
        len,
    }) = reply(p)
    else {
        panic!("not parsed")
    };
    assert_eq!((addr, port), (RIP, 1025));
    assert_eq!(&p[at..at + len], b"198,18,2,11");
}

#[test]
fn epsv_reply() {
    assert_eq!(
        reply(b"229 Entering Extended Passive Mode (|||50001|)\r\n"),
        Some(Reply::Epsv { port: 50001 })
    );
    assert_eq!(
        reply(b"229 Entering Extended Passive Mode (!!!21!)\r\n"),
        Some(Reply::Epsv { port: 21 })
    );
    for bad in [
        &b"229 Entering Extended Passive Mode (||50001|)\r\n"[..],
        b"229 Entering Extended Passive Mode (|||50001!)\r\n",
        b"229 Entering Extended Passive Mode (|||70000|)\r\n",
        b"229 Entering Extended Passive Mode (|||0|)\r\n",
        b"229 Entering Extended Passive Mode (111500011)\r\n",
    ] {
        assert_eq!(reply(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

/// A 227 reply split over two segments: neither half is a complete line,
/// so neither is touched (the helper never holds a segment back).
#[test]
fn split_pasv_reply_is_left_alone() {
    let whole = b"227 Entering Passive Mode (198,18,2,11,195,80).\r\n";
    for cut in 1..whole.len() - 1 {
        let (a, b) = whole.split_at(cut);
        assert_eq!(reply(a), None, "first {cut} bytes");
        assert_eq!(reply(b), None, "rest after {cut}");
    }
    // The line must end in the segment, even without the '\r'.
    assert!(reply(&whole[..whole.len() - 1]).is_none());
    assert!(reply(b"227 (198,18,2,11,195,80)\n").is_some());
}

#[test]
fn hostile_replies_are_refused() {
    let huge = {
        let mut v = b"227 Entering Passive Mode (".to_vec();
        v.extend(std::iter::repeat_n(b'9', 4000));
        v.extend_from_slice(b",18,2,11,195,80)\r\n");
        v
    };
    let long_valid = {
        // A valid reply padded past MAX_LINE: not looked at.
        let mut v = b"227 ".to_vec();
        v.extend(std::iter::repeat_n(b' ', MAX_LINE));
        v.extend_from_slice(b"(198,18,2,11,195,80)\r\n");
        v
    };
    let no_newline = {
        let mut v = b"227 Entering Passive Mode (198,18,2,11,195,80)".to_vec();
        v.extend(std::iter::repeat_n(b'x', 10_000));
        v
    };
    for bad in [
        &huge[..],
        &long_valid,
        &no_newline,
        b"227 Entering Passive Mode (256,18,2,11,195,80)\r\n",
        b"227 Entering Passive Mode (198,18,2,11,195)\r\n",
        b"227 Entering Passive Mode (198,18,2,11,0,0)\r\n",
        b"227 Entering Passive Mode (0198,18,2,11,195,80)\r\n",
        b"227 Entering Passive Mode (198;18;2;11;195;80)\r\n",
        b"227 Entering Passive Mode (-1,18,2,11,195,80)\r\n",
        b"227 Entering Passive Mode ()\r\n",
        b"227 \r\n",
        b"227\r\n",
        b"2270 Entering Passive Mode (198,18,2,11,195,80)\r\n",
        b"150 Here comes 227 Entering Passive Mode (198,18,2,11,195,80)\r\n",
        b"",
        b"\n\n\n",
    ] {
        assert_eq!(
            reply(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(&bad[..bad.len().min(80)])
        );
    }
}

#[test]
fn port_and_eprt_commands() {
    let want = Some(Active {
        addr: Ipv4Addr::new(198, 18, 0, 10),
        port: 40000,
    });
    assert_eq!(command(b"PORT 198,18,0,10,156,64\r\n"), want);
    assert_eq!(command(b"port 198,18,0,10,156,64\n"), want);
    assert_eq!(command(b"EPRT |1|198.18.0.10|40000|\r\n"), want);
    assert_eq!(command(b"TYPE I\r\nEPRT !1!198.18.0.10!40000!\r\n"), want);
    for bad in [
        &b"EPRT |2|2001:db8::1|40000|\r\n"[..],
        b"EPRT |1|198.18.0.10|40000\r\n",
        b"EPRT |1|198.18.0.256|40000|\r\n",
        b"EPRT |1|198.18.0|40000|\r\n",
        b"EPRT |1|198.18.0.10|0|\r\n",
        b"PORT 198,18,0,10,156,64,1\r\n",
        b"PORT 198,18,0,10,156\r\n",
        b"PORT 198,18,0,10,156,64",
        b"PORTS 198,18,0,10,156,64\r\n",
        b"RETR PORT 198,18,0,10,156,64\r\n",
    ] {
        assert_eq!(command(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn pasv_text_of_addresses() {
    for a in ["198.18.1.1", "0.0.0.0", "255.255.255.255", "10.200.3.45"] {
        let addr: Ipv4Addr = a.parse().unwrap();
        let (t, n) = pasv_text(addr);
        assert_eq!(std::str::from_utf8(&t[..n]).unwrap(), a.replace('.', ","));
    }
}

proptest::proptest! {
    /// Arbitrary bytes never panic the parsers, and whatever they accept
    /// points inside the payload at text that reads back as the address.
    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700)) {
        if let Some(Reply::Pasv { addr, at, len, .. }) = reply(&data) {
            let text = std::str::from_utf8(&data[at..at + len]).unwrap();
            proptest::prop_assert_eq!(text.replace(',', ".").parse::<Ipv4Addr>().unwrap(), addr);
        }
        let _ = command(&data);
    }

    /// Well-formed replies with any address and port parse back.
    #[test]
    fn any_pasv_reply_parses(a in proptest::prelude::any::<[u8; 4]>(), port in 1u16..) {
        let line = format!(
            "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
            a[0], a[1], a[2], a[3], port >> 8, port & 0xff
        );
        let Some(Reply::Pasv { addr, port: p, .. }) = reply(line.as_bytes()) else {
            return Err(proptest::test_runner::TestCaseError::fail("not parsed"));
        };
        proptest::prop_assert_eq!((addr, p), (Ipv4Addr::from(a), port));
    }
}
