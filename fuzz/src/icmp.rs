//! ICMP errors quoting the director's connections (target `icmp`): the
//! pipeline harness ([`crate::pipeline`]) with its input restricted to
//! packets that open flows, ICMP errors about them, and time passing, so
//! that the fuzzer spends its time in `pipeline/icmp.rs` and `xmit/icmp.rs`.

use arbitrary::{Arbitrary, Unstructured};

use crate::pipeline::{Icmp, Packet, Step, run_steps};

#[derive(Arbitrary, Debug)]
enum IcmpStep {
    Packet(Packet),
    Icmp(Icmp),
    Icmp2(Icmp),
    Tick(u8),
}

pub fn run(data: &[u8]) {
    let Ok(steps) = Vec::<IcmpStep>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let steps: Vec<Step> = steps
        .into_iter()
        .map(|s| match s {
            IcmpStep::Packet(p) => Step::Packet(p),
            IcmpStep::Icmp(i) | IcmpStep::Icmp2(i) => Step::Icmp(i),
            IcmpStep::Tick(n) => Step::Tick(n),
        })
        .collect();
    run_steps(&steps);
}
