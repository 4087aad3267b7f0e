//! The sync daemon's sockets on a real link (issue 15): a master in one
//! namespace multicasts messages that [`xdpvs::sync::net::Outbox`] filled,
//! a backup in the other receives them on the group, and `tshark`
//! (Wireshark's IPVS dissector) decodes what it captured on the backup's
//! interface: the group, TTL 1, port 8848, the connection counts.
//!
//! Only on the test's own veth pair (198.18.0.0/24, group 224.0.0.81 on
//! that link only). Needs root.

#[path = "netns/mod.rs"]
mod netns;

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netns::{ADDR_A, VethPair};
use xdpvs::sync::net::{Channel, Outbox, Receiver, Sender};
use xdpvs::sync::wire::{self, Entry, IPPROTO_TCP, Message, flags};

fn ifindex(ns: &str, dev: &str) -> u32 {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "dev", dev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn entry(cport: u16) -> Entry {
    Entry {
        protocol: IPPROTO_TCP,
        flags: flags::MASQ,
        state: 1,
        caddr: "198.18.5.2".parse().unwrap(),
        cport,
        vaddr: "198.18.1.1".parse().unwrap(),
        vport: 80,
        daddr: "198.18.2.11".parse().unwrap(),
        dport: 80,
        fwmark: 0,
        timeout: 900,
        seq: None,
    }
}

#[test]
fn a_backup_receives_what_the_master_sends_and_tshark_agrees() {
    let veth = VethPair::new("sy");
    let (ia, ib) = (ifindex(&veth.a, &veth.ia), ifindex(&veth.b, &veth.ib));
    let chan = |ifindex| Channel {
        ifindex,
        group: wire::GROUP,
        port: wire::PORT,
        ttl: 1,
    };
    let pcap = std::env::temp_dir().join(format!("xdpvs-sync-net-{}.pcap", std::process::id()));
    // The capture, on the backup's side of the link, before anything is
    // sent: tshark says "Capturing on" once it is.
    let mut tshark = Command::new("ip")
        .args(["netns", "exec", &veth.b, "tshark", "-n", "-i", &veth.ib])
        .args(["-f", "udp port 8848", "-c", "3", "-a", "duration:20", "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark (scripts/setup.sh installs it)");
    let stderr = tshark.stderr.take().unwrap();
    let (up_tx, up_rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Capturing on") {
                let _ = up_tx.send(());
            }
        }
    });
    up_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("tshark did not start capturing");
    // dumpcap attaches its filter a moment after it says so; the batch
    // is sent again below should it start later still.
    std::thread::sleep(Duration::from_secs(1));

    // The backup, in namespace b.
    let (got_tx, got_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let b = veth.b.clone();
    let backup = std::thread::spawn(move || {
        VethPair::enter(&b);
        let mut r = Receiver::open(&chan(ib), Duration::from_millis(100)).expect("backup socket");
        ready_tx.send(()).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while n < 3 && Instant::now() < end {
            if let Some((m, from)) = r.recv().unwrap() {
                got_tx.send((m.to_vec(), from)).unwrap();
                n += 1;
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();

    // The master, in namespace a: 100 entries, the kernel's maxlen for a
    // 1500-byte link (40 entries), so two full messages and one flushed.
    let a = veth.a.clone();
    let (batch_tx, batch_rx) = mpsc::channel::<()>();
    let master = std::thread::spawn(move || {
        VethPair::enter(&a);
        let s = Sender::open(&chan(ia)).expect("master socket");
        let mut o = Outbox::new(0, 8 + 36 * 40).unwrap();
        let mut send = |m: &[u8]| s.send(m).expect("send");
        // Once, then again each time the test asks (a capture that
        // started late): the backup reads the first batch.
        while let Ok(()) = batch_rx.recv() {
            let now = Instant::now();
            for i in 0..100 {
                assert!(o.push(entry(1000 + i), now, &mut send));
            }
            o.tick(now + Duration::from_secs(2), &mut send);
            assert!(o.is_empty());
        }
    });
    batch_tx.send(()).unwrap();

    let mut ports = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..3 {
        let (m, from) = got_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the backup received three messages");
        assert_eq!(from.ip(), IpAddr::from(ADDR_A), "from the master's address");
        let msg = Message::new_checked(&m).unwrap();
        counts.push(msg.nr_conns());
        for e in msg.entries() {
            let e = e.unwrap();
            assert_eq!(e, entry(e.cport));
            ports.push(e.cport);
        }
    }
    backup.join().unwrap();
    assert_eq!(counts, [40, 40, 20]);
    assert_eq!(ports, (1000..1100).collect::<Vec<u16>>());

    // tshark stops after three frames; until it has them (it may have
    // started capturing only after the first batch), the batch again.
    let end = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = tshark.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "tshark captured fewer than 3 frames");
        std::thread::sleep(Duration::from_millis(500));
        batch_tx.send(()).unwrap();
    };
    drop(batch_tx);
    master.join().unwrap();
    assert!(status.success(), "tshark capture: {status}");
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "ip.dst",
            "-e",
            "ip.ttl",
            "-e",
            "udp.dstport",
        ])
        .args(["-e", "ipvs.conncount", "-e", "_ws.malformed"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&pcap);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // Three of the batch's messages (two of 40 entries, one of 20, in
    // the batch's order from wherever the capture began), each to the
    // group with TTL 1 and not malformed.
    let batch = ["40", "40", "20"];
    assert_eq!(rows.len(), 3, "{rows:?}");
    let first = rows
        .iter()
        .map(|r| r.split('\t').nth(3).unwrap_or(""))
        .collect::<Vec<_>>();
    assert!(
        (0..3).any(|k| (0..3).all(|i| first[i] == batch[(k + i) % 3])),
        "{rows:?}"
    );
    for r in &rows {
        let f: Vec<&str> = r.split('\t').collect();
        assert_eq!(f[..3], ["224.0.0.81", "1", "8848"], "{r}");
        assert_eq!(f.get(4).copied().unwrap_or(""), "", "malformed: {r}");
    }
}
