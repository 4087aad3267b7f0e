//! The committed corpora replayed through the harnesses, and the hand
//! written seeds `scripts/fuzz.sh --seeds` starts a corpus from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use xdpvs::config::Protocol;
use xdpvs::ctrl::proto::{DestSpec, Request, ServiceKey, encode_request};

use crate::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// Every input of every committed corpus runs through its target without
/// a failed check (what the fuzzer found and we fixed stays fixed).
#[test]
fn replay_corpora() {
    for (name, run) in TARGETS {
        let dir = corpus_dir(name);
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "{name}: {} fails", path.display());
            n += 1;
        }
        assert!(n > 0, "{name}: empty corpus {}", dir.display());
    }
}

/// Deterministic bytes (xorshift), for the structured targets' seeds.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn key(proto: Protocol, vip: &str) -> ServiceKey {
    ServiceKey {
        proto,
        vip: vip.parse().unwrap(),
    }
}

fn ctrl_seeds() -> Vec<Vec<u8>> {
    let k = key(Protocol::Tcp, "198.18.1.1:80");
    let rs: SocketAddr = "198.18.2.11:80".parse().unwrap();
    let reqs = vec![
        Request::Save,
        Request::List { service: None },
        Request::List { service: Some(k) },
        Request::Clear,
        Request::DelService(k),
        Request::DelDest {
            service: k,
            dest: rs,
        },
        Request::Zero { service: None },
        Request::SetTimeouts {
            tcp: 10,
            tcpfin: 0,
            udp: 5,
        },
        Request::GetTimeouts,
        Request::ListConns,
        Request::Counters,
    ];
    let mut out: Vec<Vec<u8>> = reqs.iter().map(encode_request).collect();
    // Whole -R sessions, the way xdpvsadm sends them, from the rules file.
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/ipvsadm-rules.txt"),
    )
    .unwrap();
    let parsed = xdpvs::adm::parse_rules(&rules).unwrap();
    out.push(encode_request(&Request::Restore(parsed.clone())));
    let mut each = Vec::new();
    for r in &parsed {
        each.extend_from_slice(&encode_request(r));
        if let Request::AddDest(DestSpec { service, .. }) = r {
            each.extend_from_slice(&encode_request(&Request::List {
                service: Some(*service),
            }));
        }
    }
    out.push(each);
    out
}

fn adm_seeds() -> Vec<Vec<u8>> {
    let rules = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/ipvsadm-rules.txt"),
    )
    .unwrap();
    let mut out = vec![[&[1u8][..], &rules].concat()];
    for args in [
        "-A -t 198.18.1.1:80 -s wlc -p 300",
        "-a -t 198.18.1.1:80 -r 198.18.2.11:80 -g -w 3 -x 10 -y 5",
        "-E -u 198.18.1.1:53 -s sh -b sh-port",
        "-e -t [2001:db8::1]:80 -r [2001:db8:2::11]:80 -m",
        "-L -n -c --persistent-conn",
        "-L -n --stats --exact",
        "-l --rate -t 198.18.1.1:80",
        "-S -n",
        "-Z",
        "--set 900 120 300",
        "-D -t 198.18.1.1:80",
        "-C",
        "-R",
        "-h",
    ] {
        out.push([&[0u8][..], args.as_bytes()].concat());
    }
    out
}

fn config_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut out: Vec<Vec<u8>> = ["xdpvs.toml", "demo.toml"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    out.push(b"[dataplane]\ninterfaces = [\"eth1\"]\n".to_vec());
    out
}

/// Writes the hand-written seeds of every target under
/// `$XDPVS_FUZZ_SEEDS/TARGET/` (`scripts/fuzz.sh --seeds`).
#[test]
#[ignore = "writes files; run by scripts/fuzz.sh --seeds"]
fn write_seeds() {
    let root = PathBuf::from(std::env::var("XDPVS_FUZZ_SEEDS").expect("XDPVS_FUZZ_SEEDS"));
    for (name, _) in TARGETS {
        let seeds = match *name {
            "ctrl" => ctrl_seeds(),
            "adm" => adm_seeds(),
            "config" => config_seeds(),
            // Structured input: any bytes decode to some steps.
            _ => (0..16).map(|i| noise(i + 1, 64 << (i % 5))).collect(),
        };
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
        }
    }
}
