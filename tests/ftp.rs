//! Apache and FTP behind the director, the LVS guide's cluster, end to
//! end on the namespace test bed: real apache2 and vsftpd on three real
//! servers, real curl on the client, `xdpvs` on a two-queue director (two
//! workers), for NAT, DR and TUN.
//!
//! Each mode: 20 HTTP GETs; then, in each of the four FTP data-connection
//! styles — passive PASV and EPSV, active PORT and EPRT — 20 sessions that
//! download the 1 MiB `/big.bin` and 20 that upload a 1 MiB file, all
//! through the VIP, compared byte for byte. Every upload must be found on
//! exactly one real server, whole: the data connection reached the server
//! of its control connection (a data connection anywhere else fails: no
//! listener there, and vsftpd checks the peer).
//!
//! - NAT: port 21 without persistence; the director's FTP helper rewrites
//!   the PASV replies and creates the data connections (active: from the
//!   real server's port 20, translated to come from the VIP). Sessions
//!   spread over the real servers.
//! - DR and TUN: port 21 persistent (the LVS way); data connections to
//!   port 20 and to unprivileged ports of the VIP belong to the FTP
//!   service, and the client's persistence template sends them to its
//!   control connection's server. All sessions of the one client land on
//!   one server. Active data connections go from the real server straight
//!   to the client; only the client's answers pass the director.

#[path = "testbed/mod.rs"]
mod testbed;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use testbed::{Host, Mode, Options, Testbed};

const SESSIONS: usize = 20;

/// The four FTP data-connection styles and curl's options for them.
const STYLES: [(&str, &[&str]); 4] = [
    ("pasv", &["--ftp-pasv", "--disable-epsv"]),
    ("epsv", &["--ftp-pasv"]),
    ("port", &["-P", "-", "--disable-eprt"]),
    ("eprt", &["-P", "-"]),
];

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(bed: &Testbed, config: &Path) -> Daemon {
        let log = bed.tempdir().join("xdpvs.log");
        let cmd = format!(
            "exec {} --config {} 2>{}",
            env!("CARGO_BIN_EXE_xdpvs"),
            config.display(),
            log.display()
        );
        let child = bed.spawn(Host::Director, &["sh", "-c", &cmd]);
        let mut d = Daemon { child, log };
        let end = Instant::now() + Duration::from_secs(20);
        while !d.log().contains("xdpvs: running:") {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("xdpvs exited ({st}):\n{}", d.log());
            }
            assert!(Instant::now() < end, "xdpvs not running:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn config(bed: &Testbed, mode: Mode) -> String {
    let (forward, persistence) = match mode {
        Mode::Dr => ("dr", 300),
        Mode::Tun => ("tun", 300),
        Mode::Nat => ("nat", 0),
    };
    let mut s = format!(
        "[dataplane]\ninterfaces = [\"{}\"]\nidle = \"wait\"\nbatch_size = 32\n\
         tunnel_source = \"198.18.2.2\"\nmtu = {}\n\n\
         [connections]\nmax_entries = 65536\nftp_ports = [21]\n\n\
         [control]\nsocket = \"{}\"\n",
        bed.director_iface(),
        bed.lan_mtu(),
        bed.tempdir().join("xdpvs.sock").display(),
    );
    for (port, p) in [(80, 0), (21, persistence)] {
        s.push_str(&format!(
            "\n[[services]]\nproto = \"tcp\"\nvip = \"{}:{port}\"\nscheduler = \"rr\"\n\
             persistence_timeout = {p}\n",
            bed.vip()
        ));
        for i in 0..3 {
            s.push_str(&format!(
                "\n[[services.reals]]\naddr = \"{}:{port}\"\nforward = \"{forward}\"\n",
                bed.real_addr(i)
            ));
        }
    }
    s
}

/// curl on the client; panics with its message and the daemon's log.
fn curl(bed: &Testbed, d: &Daemon, args: &[&str]) {
    let mut all = vec!["curl", "-sS", "--connect-timeout", "3", "--max-time", "30"];
    all.extend_from_slice(args);
    let out = bed.exec(Host::Client, &all);
    assert!(
        out.status.success(),
        "{all:?}: {}: {}\nxdpvs log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        d.log()
    );
}

/// A 1 MiB + 1 upload that is not `/big.bin`.
fn upload_data() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..(1 << 20) + 1)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn scenario(mode: Mode) {
    let started = Instant::now();
    let mut bed = Testbed::new(Options {
        mode,
        reals: 3,
        director_queues: 2,
    });
    bed.start_vsftpd();
    let path = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&path, config(&bed, mode)).unwrap();
    let d = Daemon::start(&bed, &path);
    let vip = bed.vip();

    for _ in 0..SESSIONS {
        let (code, body) = bed.curl(&format!("http://{vip}/")).unwrap();
        assert_eq!(code, 200);
        assert!(
            ["rs1\n", "rs2\n", "rs3\n"].contains(&std::str::from_utf8(&body).unwrap()),
            "{body:?}"
        );
    }

    let big = testbed::big_bin();
    let up = upload_data();
    let src = bed.tempdir().join("upload.bin");
    std::fs::write(&src, &up).unwrap();
    let got = bed.tempdir().join("got.bin");
    let mut names = Vec::new();
    for (style, opts) in STYLES {
        for k in 0..SESSIONS {
            let _ = std::fs::remove_file(&got);
            let mut a = opts.to_vec();
            let url = format!("ftp://{vip}/big.bin");
            a.extend(["-o", got.to_str().unwrap(), &url]);
            curl(&bed, &d, &a);
            let data = std::fs::read(&got).unwrap();
            assert!(
                data == big,
                "{style} download {k}: {} bytes differ",
                data.len()
            );

            let name = format!("{style}-{k}.bin");
            let url = format!("ftp://{vip}/up/{name}");
            let mut a = opts.to_vec();
            a.extend(["-T", src.to_str().unwrap(), &url]);
            curl(&bed, &d, &a);
            names.push(name);
        }
    }

    // Every upload whole on exactly one real server.
    let mut per_real = [0usize; 3];
    for name in &names {
        let on: Vec<usize> = (0..3)
            .filter(|&i| bed.ftp_upload_dir(i).join(name).exists())
            .collect();
        assert_eq!(on.len(), 1, "{name} on real servers {on:?}");
        let data = std::fs::read(bed.ftp_upload_dir(on[0]).join(name)).unwrap();
        assert!(data == up, "{name}: uploaded bytes differ");
        per_real[on[0]] += 1;
    }
    match mode {
        // One client, one persistence template: one server for all.
        Mode::Dr | Mode::Tun => assert_eq!(
            per_real.iter().filter(|&&n| n > 0).count(),
            1,
            "{per_real:?}"
        ),
        // Without persistence rr spreads the control connections.
        Mode::Nat => assert!(per_real.iter().all(|&n| n > 0), "{per_real:?}"),
    }
    // What the operator sees (scripts/demo-ftp.sh shows this).
    let sock = bed.tempdir().join("xdpvs.sock");
    let adm = env!("CARGO_BIN_EXE_xdpvsadm");
    for args in [&["-L", "-n"][..], &["-L", "-n", "--stats"]] {
        let mut a = vec![adm, "--socket", sock.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = bed.exec(Host::Director, &a);
        assert!(
            out.status.success(),
            "xdpvsadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "{mode:?}: xdpvsadm {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    eprintln!(
        "{mode:?}: {} transfers, uploads per real {per_real:?}, {:.1} s",
        names.len() * 2,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn nat_apache_and_ftp_with_the_helper() {
    scenario(Mode::Nat);
}

#[test]
fn dr_apache_and_ftp_with_persistence() {
    scenario(Mode::Dr);
}

#[test]
fn tun_apache_and_ftp_with_persistence() {
    scenario(Mode::Tun);
}

/// The director's own connections to NAT real servers are the kernel's
/// (a health check, an admin's curl): with xdpvs running NAT with the FTP
/// helper active (its every-port rule for the real servers), curl from
/// the director's namespace reaches each real server's HTTP port and its
/// FTP server, passive and active (data connections from the real
/// server's port 20 and to its passive ports). The VIP is also held on
/// the director's `lo`, as the kernel's IPVS selftest holds it: a local
/// address whose packets must still go to xdpvs. Client traffic through
/// the VIP works throughout. Offload-free bed (the director's own curl
/// never crosses AF_XDP, so offloads do not matter to what is tested).
#[test]
fn nat_director_reaches_its_real_servers_itself() {
    let mut bed = Testbed::new(Options {
        mode: Mode::Nat,
        reals: 3,
        director_queues: 2,
    });
    bed.start_vsftpd();
    let vip = bed.vip();
    let out = bed.exec(
        Host::Director,
        &["ip", "addr", "add", &format!("{vip}/32"), "dev", "lo"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = bed.tempdir().join("xdpvs.toml");
    std::fs::write(&path, config(&bed, Mode::Nat)).unwrap();
    let d = Daemon::start(&bed, &path);
    let fetch = |host: Host, args: &[&str]| -> Vec<u8> {
        let mut all = vec!["curl", "-sS", "--connect-timeout", "3", "--max-time", "30"];
        all.extend_from_slice(args);
        all.extend(["-o", "-"]);
        let out = bed.exec(host, &all);
        assert!(
            out.status.success(),
            "{host:?}: {all:?}: {}: {}\nxdpvs log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            d.log()
        );
        out.stdout
    };
    let bodies: Vec<String> = (0..3).map(testbed::real_body).collect();
    for round in 0..2 {
        for i in 0..3 {
            let rip = bed.real_addr(i);
            let want = bodies[i].as_bytes();
            let http = fetch(Host::Director, &[&format!("http://{rip}/")]);
            assert_eq!(http, want, "round {round}: director -> {rip}:80");
            for (style, opts) in [STYLES[0], STYLES[2]] {
                let mut a = opts.to_vec();
                let url = format!("ftp://{rip}/whoami.txt");
                a.push(&url);
                let ftp = fetch(Host::Director, &a);
                assert_eq!(ftp, want, "round {round}: director -> {rip} FTP {style}");
            }
            // Meanwhile, a client through the VIP.
            let body = fetch(Host::Client, &[&format!("http://{vip}/")]);
            assert!(bodies.iter().any(|b| b.as_bytes() == body), "{body:?}");
        }
    }
    let big = testbed::big_bin();
    for (style, opts) in [STYLES[0], STYLES[2]] {
        let mut a = opts.to_vec();
        let url = format!("ftp://{vip}/big.bin");
        a.push(&url);
        assert!(
            fetch(Host::Client, &a) == big,
            "client FTP {style} through the VIP"
        );
    }
}

/// `scripts/realserver.sh` in a real server's namespace: DR puts the VIP
/// on lo with the ARP sysctls and takes both back; TUN needs IPIP (this
/// kernel may lack it: then it says so and fails); NAT changes nothing.
#[test]
fn realserver_script_configures_and_undoes() {
    let bed = Testbed::new(Options {
        mode: Mode::Nat,
        reals: 1,
        director_queues: 1,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/realserver.sh");
    let vip = bed.vip().to_string();
    let rs = Host::Real(0);
    let run = |args: &[&str]| {
        let mut a = vec!["sh", script];
        a.extend_from_slice(args);
        bed.exec(rs, &a)
    };
    let sysctl = |name: &str| {
        let out = bed.exec(rs, &["cat", &format!("/proc/sys/net/ipv4/conf/all/{name}")]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let on_lo = || {
        let out = bed.exec(rs, &["ip", "-4", "addr", "show", "dev", "lo"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!("{vip}/32"))
    };
    let out = run(&["dr", "start", &vip]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(on_lo());
    assert_eq!(
        (sysctl("arp_ignore"), sysctl("arp_announce")),
        ("1".into(), "2".into())
    );
    let out = run(&["dr", "stop", &vip]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!on_lo());
    assert_eq!(
        (sysctl("arp_ignore"), sysctl("arp_announce")),
        ("0".into(), "0".into())
    );

    let out = run(&["tun", "start", &vip]);
    let has_tunl0 = bed
        .exec(rs, &["test", "-d", "/sys/class/net/tunl0"])
        .status
        .success();
    if has_tunl0 {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addrs = bed.exec(rs, &["ip", "-4", "addr", "show", "dev", "tunl0"]);
        assert!(String::from_utf8_lossy(&addrs.stdout).contains(&vip));
        assert_eq!(sysctl("rp_filter"), "0");
        assert!(run(&["tun", "stop", &vip]).status.success());
    } else {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("IPIP"));
    }
    assert!(run(&["nat", "start", &vip]).status.success());
    assert!(!run(&["dr", "bogus", &vip]).status.success());
    assert!(!run(&["dr", "start", "not-an-address"]).status.success());
}
