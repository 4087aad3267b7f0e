//! Turns the runs `scripts/bench.sh` collected (one JSON object per line:
//! what ran, the generator's and the sink's output) into medians, the
//! ratios the project is judged by, a markdown table, `report.json` and a
//! bar chart.
//!
//! Ratios are taken per repetition — run r of xdpvs over run r of its peer,
//! which ran right beside it — and the median of those is reported, so a
//! machine that slows down between repetitions (other load, thermal) moves
//! both sides of a ratio together instead of skewing it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Deserialize;
use serde_json::json;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The runs: JSON lines written by scripts/bench.sh.
    #[arg(long)]
    runs: PathBuf,
    /// Directory for report.json and report.png.
    #[arg(long)]
    out: PathBuf,
    /// A line describing the machine, put into the report.
    #[arg(long, default_value = "")]
    machine: String,
    /// TrueType font for the chart's text.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
}

/// One line of the runs file.
#[derive(Debug, Deserialize)]
pub struct Run {
    pub system: String,
    pub mode: String,
    #[serde(default = "udp")]
    pub traffic: String,
    pub flows: u64,
    pub pkt_size: u64,
    pub rep: u32,
    #[serde(rename = "gen")]
    pub generator: Option<GenOut>,
    pub sink: Option<SinkOut>,
}

fn udp() -> String {
    "udp".into()
}

#[derive(Debug, Deserialize)]
pub struct GenOut {
    pub sent: u64,
    pub mpps: f64,
}

#[derive(Debug, Deserialize)]
pub struct SinkOut {
    pub unique: u64,
    pub mpps: f64,
    pub reordered: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// What identifies a measurement across repetitions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub system: String,
    pub mode: String,
    pub traffic: String,
    pub flows: u64,
    pub pkt_size: u64,
}

impl Key {
    pub fn label(&self) -> String {
        let t = if self.traffic == "udp" {
            String::new()
        } else {
            format!(" {}", self.traffic)
        };
        format!("{} {}{} {}", self.system, self.mode, t, human(self.flows))
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1000 && n.is_multiple_of(1000) => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

/// One repetition's numbers.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rep: u32,
    pub offered: f64,
    pub mpps: f64,
    pub loss: f64,
    pub reordered: u64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

pub fn sample(r: &Run) -> Sample {
    let (sent, offered) = r.generator.as_ref().map_or((0, 0.0), |g| (g.sent, g.mpps));
    let (got, mpps, reordered, p50, p99) = r.sink.as_ref().map_or((0, 0.0, 0, None, None), |s| {
        (s.unique, s.mpps, s.reordered, s.p50_us, s.p99_us)
    });
    let loss = if sent == 0 {
        1.0
    } else {
        (1.0 - got as f64 / sent as f64).max(0.0)
    };
    Sample {
        rep: r.rep,
        offered,
        mpps,
        loss,
        reordered,
        p50,
        p99,
    }
}

/// The median (mean of the middle two for an even count); `None` if empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// A ratio the issue sets a target for: `num` over `den`, per repetition.
pub struct RatioSpec {
    pub name: &'static str,
    pub num: (&'static str, &'static str, &'static str, Option<u64>),
    pub den: (&'static str, &'static str, &'static str, Option<u64>),
    pub target: f64,
}

const K: Option<u64> = Some(1000);
const M: Option<u64> = Some(1_000_000);

pub const RATIOS: &[RatioSpec] = &[
    RatioSpec {
        name: "xdpvs DR / testpmd io",
        num: ("xdpvs", "dr", "udp", K),
        den: ("testpmd", "io", "udp", K),
        target: 1.0,
    },
    RatioSpec {
        name: "xdpvs TUN / testpmd io",
        num: ("xdpvs", "tun", "udp", K),
        den: ("testpmd", "io", "udp", K),
        target: 0.9,
    },
    RatioSpec {
        name: "xdpvs NAT / testpmd io",
        num: ("xdpvs", "nat", "udp", K),
        den: ("testpmd", "io", "udp", K),
        target: 0.9,
    },
    RatioSpec {
        name: "xdpvs DR / nftables DNAT",
        num: ("xdpvs", "dr", "udp", K),
        den: ("nftables", "dnat", "udp", K),
        target: 1.5,
    },
    RatioSpec {
        name: "xdpvs TUN / nftables DNAT",
        num: ("xdpvs", "tun", "udp", K),
        den: ("nftables", "dnat", "udp", K),
        target: 1.5,
    },
    RatioSpec {
        name: "xdpvs NAT / nftables DNAT",
        num: ("xdpvs", "nat", "udp", K),
        den: ("nftables", "dnat", "udp", K),
        target: 1.5,
    },
    RatioSpec {
        name: "xdpvs DR 1M / 1k flows",
        num: ("xdpvs", "dr", "udp", M),
        den: ("xdpvs", "dr", "udp", K),
        target: 0.9,
    },
    RatioSpec {
        name: "xdpvs TUN 1M / 1k flows",
        num: ("xdpvs", "tun", "udp", M),
        den: ("xdpvs", "tun", "udp", K),
        target: 0.9,
    },
    RatioSpec {
        name: "xdpvs NAT 1M / 1k flows",
        num: ("xdpvs", "nat", "udp", M),
        den: ("xdpvs", "nat", "udp", K),
        target: 0.9,
    },
    RatioSpec {
        // scripts/bench.sh with ONLY=scrape: the same DR run while /metrics
        // is scraped SCRAPE_HZ times a second (issue 17: no measurable cost).
        name: "xdpvs DR scraped / not scraped",
        num: ("xdpvs", "dr+scrape", "udp", K),
        den: ("xdpvs", "dr", "udp", K),
        target: 0.97,
    },
    RatioSpec {
        name: "xdpvs SYN flood / established TCP",
        num: ("xdpvs", "dr", "syn", None),
        den: ("xdpvs", "dr", "tcp", None),
        target: 0.5,
    },
];

fn matches(k: &Key, want: &(&str, &str, &str, Option<u64>)) -> bool {
    k.system == want.0
        && k.mode == want.1
        && k.traffic == want.2
        && want.3.is_none_or(|f| k.flows == f)
}

pub struct Measurement {
    pub key: Key,
    pub samples: Vec<Sample>,
}

impl Measurement {
    fn med(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        median(&self.samples.iter().filter_map(f).collect::<Vec<_>>())
    }
}

pub struct RatioOut {
    pub name: &'static str,
    pub per_rep: Vec<f64>,
    pub median: Option<f64>,
    pub target: f64,
}

/// Groups runs into measurements (in first-seen order) and computes the
/// target ratios.
pub fn summarise(runs: &[Run]) -> (Vec<Measurement>, Vec<RatioOut>) {
    let mut order: Vec<Key> = Vec::new();
    let mut by: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
    for r in runs {
        let k = Key {
            system: r.system.clone(),
            mode: r.mode.clone(),
            traffic: r.traffic.clone(),
            flows: r.flows,
            pkt_size: r.pkt_size,
        };
        if !by.contains_key(&k) {
            order.push(k.clone());
        }
        by.entry(k).or_default().push(sample(r));
    }
    let ms: Vec<Measurement> = order
        .into_iter()
        .map(|k| Measurement {
            samples: by.remove(&k).unwrap_or_default(),
            key: k,
        })
        .collect();
    let ratios = RATIOS
        .iter()
        .filter_map(|spec| {
            let num = ms.iter().find(|m| matches(&m.key, &spec.num))?;
            let den = ms.iter().find(|m| matches(&m.key, &spec.den))?;
            let per_rep: Vec<f64> = num
                .samples
                .iter()
                .filter_map(|a| {
                    let b = den.samples.iter().find(|b| b.rep == a.rep)?;
                    (b.mpps > 0.0).then(|| a.mpps / b.mpps)
                })
                .collect();
            Some(RatioOut {
                name: spec.name,
                median: median(&per_rep),
                per_rep,
                target: spec.target,
            })
        })
        .collect();
    (ms, ratios)
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.prec$}"))
}

pub fn markdown(ms: &[Measurement], ratios: &[RatioOut]) -> String {
    let mut s = String::new();
    s.push_str("| system | mode | traffic | flows | frame B | offered Mpps | forwarded Mpps | loss % | p50 µs | p99 µs | runs |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for m in ms {
        let k = &m.key;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            k.system,
            k.mode,
            k.traffic,
            human(k.flows),
            k.pkt_size,
            opt(m.med(|x| Some(x.offered)), 3),
            opt(m.med(|x| Some(x.mpps)), 3),
            opt(m.med(|x| Some(x.loss * 100.0)), 2),
            opt(m.med(|x| x.p50), 1),
            opt(m.med(|x| x.p99), 1),
            m.samples.len(),
        );
    }
    s.push_str(
        "\n| ratio (median of per-repetition ratios) | value | per repetition | target | met |\n",
    );
    s.push_str("|---|---:|---|---:|:---:|\n");
    for r in ratios {
        let reps: Vec<String> = r.per_rep.iter().map(|x| format!("{x:.2}")).collect();
        let met = match r.median {
            Some(v) if v >= r.target => "yes",
            Some(_) => "**no**",
            None => "–",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | ≥ {:.1} | {} |",
            r.name,
            opt(r.median, 2),
            reps.join(", "),
            r.target,
            met
        );
    }
    s
}

pub fn json_report(machine: &str, ms: &[Measurement], ratios: &[RatioOut]) -> serde_json::Value {
    let measurements: Vec<_> = ms
        .iter()
        .map(|m| {
            let k = &m.key;
            json!({
                "system": k.system,
                "mode": k.mode,
                "traffic": k.traffic,
                "flows": k.flows,
                "pkt_size": k.pkt_size,
                "mpps": m.med(|x| Some(x.mpps)),
                "offered_mpps": m.med(|x| Some(x.offered)),
                "loss": m.med(|x| Some(x.loss)),
                "p50_us": m.med(|x| x.p50),
                "p99_us": m.med(|x| x.p99),
                "reordered": m.med(|x| Some(x.reordered as f64)),
                "runs": m.samples.iter().map(|x| json!({
                    "rep": x.rep, "mpps": x.mpps, "offered_mpps": x.offered, "loss": x.loss,
                    "p50_us": x.p50, "p99_us": x.p99, "reordered": x.reordered,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ratios: Vec<_> = ratios
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "ratio": r.median,
                "per_rep": r.per_rep,
                "target": r.target,
                "met": r.median.map(|v| v >= r.target),
            })
        })
        .collect();
    json!({ "machine": machine, "measurements": measurements, "ratios": ratios })
}

fn color(system: &str) -> RGBColor {
    match system {
        "testpmd" => RGBColor(0x4c, 0x72, 0xb0),
        "nftables" => RGBColor(0xdd, 0x84, 0x52),
        "xdpvs" => RGBColor(0x55, 0xa8, 0x68),
        _ => RGBColor(0x88, 0x88, 0x88),
    }
}

/// A horizontal bar per measurement: median forwarded Mpps, coloured by
/// system, with p99 latency in the label.
pub fn chart(path: &Path, font: &Path, ms: &[Measurement]) -> Result<(), String> {
    let bytes = std::fs::read(font).map_err(|e| {
        format!(
            "chart font {}: {e} (install fonts-dejavu-core: scripts/setup.sh)",
            font.display()
        )
    })?;
    // Registered once per process; the chart needs it until exit.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("chart font {}: not a TrueType font", font.display()))?;

    let rows: Vec<(String, f64, Option<f64>, RGBColor)> = ms
        .iter()
        .map(|m| {
            (
                m.key.label(),
                m.med(|x| Some(x.mpps)).unwrap_or(0.0),
                m.med(|x| x.p99),
                color(&m.key.system),
            )
        })
        .collect();
    let n = rows.len().max(1);
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(0.01) * 1.45;
    let height = 120 + 34 * n as u32;
    let e = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    let root = BitMapBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "Forwarded rate (median Mpps) — same veth ports, same cores",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..max, 0.0..n as f64)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("Mpps")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (label, mpps, p99, col)) in rows.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        c.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y + 0.12), (*mpps, y + 0.88)],
            col.filled(),
        )))
        .map_err(|x| e(&x))?;
        let text = format!(
            "{label}: {mpps:.3} Mpps{}",
            p99.map_or(String::new(), |p| format!(", p99 {p:.0} µs"))
        );
        c.draw_series(std::iter::once(Text::new(
            text,
            (*mpps + max * 0.01, y + 0.3),
            ("sans-serif", 15).into_font().color(&BLACK),
        )))
        .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

pub fn run(a: &ReportArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&a.runs).map_err(|e| format!("{}: {e}", a.runs.display()))?;
    let mut runs = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: Run = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", a.runs.display(), i + 1))?;
        runs.push(r);
    }
    if runs.is_empty() {
        return Err(format!("{}: no runs", a.runs.display()));
    }
    let (ms, ratios) = summarise(&runs);
    print!("{}", markdown(&ms, &ratios));
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let jpath = a.out.join("report.json");
    let j = json_report(&a.machine, &ms, &ratios);
    std::fs::write(
        &jpath,
        serde_json::to_string_pretty(&j).expect("JSON values serialise"),
    )
    .map_err(|e| format!("{}: {e}", jpath.display()))?;
    chart(&a.out.join("report.png"), &a.font, &ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(system: &str, mode: &str, flows: u64, rep: u32, sent: u64, got: u64, mpps: f64) -> Run {
        Run {
            system: system.into(),
            mode: mode.into(),
            traffic: "udp".into(),
            flows,
            pkt_size: 64,
            rep,
            generator: Some(GenOut { sent, mpps: 1.0 }),
            sink: Some(SinkOut {
                unique: got,
                mpps,
                reordered: 0,
                p50_us: Some(10.0),
                p99_us: Some(50.0),
            }),
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratios_pair_runs_of_the_same_repetition() {
        let runs = vec![
            run("testpmd", "io", 1000, 1, 100, 100, 1.0),
            run("xdpvs", "dr", 1000, 1, 100, 90, 0.5),
            run("testpmd", "io", 1000, 2, 100, 100, 0.5),
            run("xdpvs", "dr", 1000, 2, 100, 100, 0.5),
            run("testpmd", "io", 1000, 3, 100, 100, 2.0),
            run("xdpvs", "dr", 1000, 3, 100, 100, 1.6),
        ];
        let (ms, ratios) = summarise(&runs);
        assert_eq!(ms.len(), 2);
        let r = ratios
            .iter()
            .find(|r| r.name == "xdpvs DR / testpmd io")
            .unwrap();
        assert_eq!(r.per_rep, vec![0.5, 1.0, 0.8]);
        assert_eq!(r.median, Some(0.8));
        // Loss from the generator's count: 10 % in rep 1.
        assert!((ms[1].samples[0].loss - 0.1).abs() < 1e-9);
        let md = markdown(&ms, &ratios);
        assert!(
            md.contains("| xdpvs DR / testpmd io | 0.80 | 0.50, 1.00, 0.80 | ≥ 1.0 | **no** |"),
            "{md}"
        );
        let j = json_report("m", &ms, &ratios);
        assert_eq!(j["measurements"][1]["mpps"], 0.5);
        assert_eq!(j["ratios"][0]["met"], false);
    }

    #[test]
    fn a_run_whose_sink_saw_nothing_is_total_loss() {
        let mut r = run("xdpvs", "nat", 1000, 1, 100, 0, 0.0);
        r.sink = None;
        let s = sample(&r);
        assert_eq!((s.loss, s.mpps), (1.0, 0.0));
    }

    #[test]
    fn labels_are_short() {
        let k = Key {
            system: "xdpvs".into(),
            mode: "dr".into(),
            traffic: "syn".into(),
            flows: 16_777_216,
            pkt_size: 64,
        };
        assert_eq!(k.label(), "xdpvs dr syn 16.8M");
        assert_eq!(human(1_000_000), "1M");
        assert_eq!(human(1000), "1k");
    }
}
