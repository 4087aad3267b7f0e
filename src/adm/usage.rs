//! `-h`: ipvsadm's usage text, less what xdpvs does not have, plus
//! `--counters`, `--drops`, `--json` and `--socket`.

use crate::config::{DEFAULT_SCHEDULER, DEFAULT_SOCKET, SCHEDULERS};

use super::listing;

/// `-h`: ipvsadm's usage, less what xdpvs does not have. The schedulers
/// are the crate's, in its order.
pub fn usage() -> String {
    let p = "xdpvsadm";
    format!(
        "xdpvsadm {version} (ipvsadm-compatible, IPVS {ipvs})\n\
Usage:\n  \
{p} -A|E -t|u service-address [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]\n  \
{p} -D -t|u service-address\n  \
{p} -C\n  \
{p} -R\n  \
{p} -S [-n]\n  \
{p} -a|e -t|u service-address -r server-address [options]\n  \
{p} -d -t|u service-address -r server-address\n  \
{p} -L|l [options]\n  \
{p} -Z [-t|u service-address]\n  \
{p} --set tcp tcpfin udp\n  \
{p} --counters|--drops [--json]\n  \
{p} -h\n\n\
Commands:\n\
Either long or short options are allowed.\n  \
--add-service     -A        add virtual service with options\n  \
--edit-service    -E        edit virtual service with options\n  \
--delete-service  -D        delete virtual service\n  \
--clear           -C        clear the whole table\n  \
--restore         -R        restore rules from stdin\n  \
--save            -S        save rules to stdout\n  \
--add-server      -a        add real server with options\n  \
--edit-server     -e        edit real server with options\n  \
--delete-server   -d        delete real server\n  \
--list            -L|-l     list the table\n  \
--zero            -Z        zero counters in a service or all services\n  \
--set tcp tcpfin udp        set connection timeout values\n  \
--counters                  list every worker's counters (xdpvs only)\n  \
--drops                     list the drops per worker and reason (xdpvs only)\n  \
--help            -h        display this help message\n\n\
Options:\n  \
--tcp-service  -t service-address   service-address is host[:port]\n  \
--udp-service  -u service-address   service-address is host[:port]\n  \
--scheduler    -s scheduler         one of {schedulers},\n                                      \
the default scheduler is {DEFAULT_SCHEDULER}.\n  \
--persistent   -p [timeout]         persistent service\n  \
--netmask      -M netmask           persistent granularity mask\n  \
--sched-flags  -b flags             scheduler flags (comma-separated)\n  \
--real-server  -r server-address    server-address is host (and port)\n  \
--gatewaying   -g                   gatewaying (direct routing) (default)\n  \
--ipip         -i                   ipip encapsulation (tunneling)\n  \
--masquerading -m                   masquerading (NAT)\n  \
--weight       -w weight            capacity of real server\n  \
--u-threshold  -x uthreshold        upper threshold of connections\n  \
--l-threshold  -y lthreshold        lower threshold of connections\n  \
--connection   -c                   output of current IPVS connections\n  \
--timeout                           output of timeout (tcp tcpfin udp)\n  \
--stats                             output of statistics information\n  \
--rate                              output of rate information\n  \
--exact                             expand numbers (display exact values)\n  \
--thresholds                        output of thresholds information\n  \
--persistent-conn                   output of persistent connection info\n  \
--nosort                            disable sorting output of service/server entries\n  \
--sort                              does nothing, for backwards compatibility\n  \
--numeric      -n                   numeric output of addresses and ports\n  \
--json                              output of a listing as JSON (xdpvs only; docs/json.md)\n  \
--socket PATH                       the xdpvs control socket (default {DEFAULT_SOCKET})\n",
        version = env!("CARGO_PKG_VERSION"),
        ipvs = listing::IPVS_VERSION,
        schedulers = SCHEDULERS.join("|"),
    )
}
