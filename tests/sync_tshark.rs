//! Wire compatibility of the sync messages, judged by a decoder we did not
//! write (issue 15): Wireshark's IPVS sync dissector (`tshark`, Debian's
//! package, installed by `scripts/setup.sh`) reads messages our encoder
//! ([`xdpvs::sync::wire::Builder`]) wrote — IPv4 and IPv6 entries, the
//! SEQ_DATA option, a persistence template, a message filled to its
//! maximum — and must show the fields we meant, with no malformed-packet
//! or error-level expert warning.
//!
//! tshark 4.0's version 1 dissector reads the fixed part of each entry
//! and steps to the next by that fixed length: it neither reads options
//! nor honours the entry's size field (`packet-ipvs-syncd.c`). An entry
//! with the SEQ_DATA option is therefore the last of its message here (its
//! fixed part and size are checked; the option bytes after it are left
//! undissected). The option's layout is checked against the kernel's
//! structs by the byte fixtures of `src/sync/wire/tests.rs`.
//!
//! The messages travel in a capture file only (UDP from 198.18.0.1 to
//! 224.0.0.81:8848, TTL 1, as the sync daemon sends them): nothing is sent
//! on any network.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use xdpvs::conn::seq::SeqAdjust;
use xdpvs::sync::wire::{self, Builder, Entry, IPPROTO_TCP, IPPROTO_UDP, SeqData, flags};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp_nat() -> Entry {
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

/// What tshark must show for `e`: its fields, named as the dissector
/// names them, with the values as `-T fields` prints them.
fn expected(e: &Entry) -> Vec<(&'static str, String)> {
    let v6 = e.is_ipv6();
    let addr = |a: IpAddr| a.to_string();
    vec![
        ("ipvs.proto", format!("0x{:02x}", e.protocol)),
        ("ipvs.flags.v1", format!("0x{:08x}", e.flags)),
        ("ipvs.state", format!("0x{:04x}", e.state)),
        ("ipvs.cport", e.cport.to_string()),
        ("ipvs.vport", e.vport.to_string()),
        ("ipvs.dport", e.dport.to_string()),
        ("ipvs.fwmark", format!("0x{:08x}", e.fwmark)),
        ("ipvs.timeout", e.timeout.to_string()),
        (if v6 { "ipvs.caddr6" } else { "ipvs.caddr" }, addr(e.caddr)),
        (if v6 { "ipvs.vaddr6" } else { "ipvs.vaddr" }, addr(e.vaddr)),
        (if v6 { "ipvs.daddr6" } else { "ipvs.daddr" }, addr(e.daddr)),
    ]
}

/// One Ethernet frame carrying `payload` as the sync daemon sends it.
fn frame(payload: &[u8]) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(
        [0x02, 0, 0, 0, 0, 1],
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x51],
    )
    .ipv4([198, 18, 0, 1], wire::GROUP.octets(), 1)
    .udp(8848, wire::PORT);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

/// A classic pcap file (microsecond timestamps, link type Ethernet).
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (i, fr) in frames.iter().enumerate() {
        f.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(fr);
    }
    std::fs::write(path, f).unwrap();
}

fn message(syncid: u8, maxlen: usize, entries: &[Entry]) -> Vec<u8> {
    let mut buf = vec![0u8; maxlen];
    let mut b = Builder::new(&mut buf, syncid, maxlen).unwrap();
    for e in entries {
        b.push(e).unwrap();
    }
    b.bytes().to_vec()
}

/// `tshark` on `pcap`: `-T fields` of `fields` (one line per frame, an
/// occurrence list per field) and the whole `-V` dissection.
fn tshark(pcap: &Path, fields: &[&str]) -> (Vec<Vec<String>>, String) {
    let mut c = Command::new("tshark");
    // -n: no name resolution; the dissector is tshark's own, on its port.
    c.args(["-n", "-r"])
        .arg(pcap)
        .args(["-T", "fields", "-E", "occurrence=a"]);
    c.args(["-E", "aggregator=,"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c
        .output()
        .expect("tshark runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    let v = Command::new("tshark")
        .args(["-n", "-V", "-r"])
        .arg(pcap)
        .output()
        .unwrap();
    assert!(v.status.success());
    (rows, String::from_utf8(v.stdout).unwrap())
}

#[test]
fn tshark_decodes_our_messages_as_we_meant_them() {
    let ftp = Entry {
        flags: flags::MASQ | flags::IN_SEQ | flags::OUT_SEQ,
        caddr: ip("198.18.0.3"),
        cport: 40000,
        vport: 21,
        daddr: ip("198.18.2.12"),
        dport: 21,
        seq: Some(SeqData {
            in_seq: SeqAdjust {
                init_seq: 7,
                delta: -2,
                prev_delta: 0,
            },
            out_seq: SeqAdjust {
                init_seq: 0x1122_3344,
                delta: 3,
                prev_delta: 1,
            },
        }),
        ..tcp_nat()
    };
    let udp_dr = Entry {
        protocol: IPPROTO_UDP,
        flags: flags::DROUTE,
        state: 0,
        caddr: ip("198.18.0.4"),
        cport: 5000,
        vaddr: ip("198.18.1.2"),
        vport: 53,
        daddr: ip("198.18.2.13"),
        dport: 53,
        timeout: 300,
        ..tcp_nat()
    };
    let template = Entry {
        flags: flags::DROUTE | flags::TEMPLATE | flags::NO_CPORT,
        state: 0,
        cport: 0,
        timeout: 360,
        ..tcp_nat()
    };
    let v6_tun = Entry {
        flags: flags::TUNNEL,
        state: 3,
        caddr: ip("2001:db8::2"),
        vaddr: ip("2001:db8:1::1"),
        daddr: ip("2001:db8:2::11"),
        dport: 80,
        fwmark: 0x2a,
        timeout: 120,
        ..tcp_nat()
    };
    let messages: Vec<(u8, Vec<Entry>)> = vec![
        (7, vec![tcp_nat()]),
        (9, vec![udp_dr, template, ftp]),
        (0, vec![v6_tun]),
    ];
    let mut frames: Vec<Vec<u8>> = messages
        .iter()
        .map(|(id, es)| frame(&message(*id, 1472, es)))
        .collect();
    // A message filled to the kernel's default sync_maxlen on a 1500-byte
    // link: as many entries as fit.
    let many: Vec<Entry> = (0..40)
        .map(|i| Entry {
            cport: 10000 + i,
            ..tcp_nat()
        })
        .collect();
    let mut buf = vec![0u8; 1472];
    let mut b = Builder::new(&mut buf, 3, 1472).unwrap();
    let mut full = Vec::new();
    for e in &many {
        if b.push(e).is_err() {
            break;
        }
        full.push(*e);
    }
    assert!(full.len() > 30, "{} entries fit", full.len());
    frames.push(frame(b.bytes()));
    let dir = std::env::temp_dir().join(format!("xdpvs-sync-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("sync.pcap");
    write_pcap(&pcap, &frames);

    let mut fields = vec![
        "ipvs.syncid",
        "ipvs.conncount",
        "ipvs.version",
        "ipvs.size",
        "ipvs.size.v1",
    ];
    let names: Vec<&str> = expected(&tcp_nat()).iter().map(|f| f.0).collect();
    let names6: Vec<&str> = expected(&v6_tun).iter().map(|f| f.0).collect();
    for n in names.iter().chain(&names6) {
        if !fields.contains(n) {
            fields.push(n);
        }
    }
    let (rows, verbose) = tshark(&pcap, &fields);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(rows.len(), frames.len(), "{verbose}");
    for bad in ["Malformed", "[Expert Info (Error", "Exception occurred"] {
        assert!(!verbose.contains(bad), "tshark says {bad}:\n{verbose}");
    }
    let col = |row: &[String], name: &str| -> Vec<String> {
        let i = fields.iter().position(|f| *f == name).unwrap();
        row[i]
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut all = messages;
    all.push((3, full));
    for (k, (row, (id, es))) in rows.iter().zip(&all).enumerate() {
        let what = format!("frame {}", k + 1);
        assert_eq!(col(row, "ipvs.syncid"), [id.to_string()], "{what}");
        assert_eq!(col(row, "ipvs.conncount"), [es.len().to_string()], "{what}");
        assert_eq!(col(row, "ipvs.version"), ["1"], "{what}");
        let size: usize = col(row, "ipvs.size")[0].parse().unwrap();
        assert_eq!(size, frames[k].len() - 42, "{what}: the header's size");
        // Each entry's fields, in order.
        for (name, _) in expected(&es[0]) {
            let want: Vec<String> = es
                .iter()
                .map(|e| expected(e).into_iter().find(|f| f.0 == name).unwrap().1)
                .collect();
            assert_eq!(col(row, name), want, "{what}: {name}");
        }
        let sizes: Vec<String> = es.iter().map(|e| e.wire_len().to_string()).collect();
        assert_eq!(col(row, "ipvs.size.v1"), sizes, "{what}: entry sizes");
    }
}
