//! Our side of the ICE pairs: the addresses the host candidates advertise, and which of them
//! a received datagram was addressed to.
//!
//! The sockets may bind one address and advertise another: `0.0.0.0` with the public IPs
//! named in `sfu.public_ips`, or a private address behind a 1:1 NAT. str0m's ICE agent
//! discards a connectivity check whose destination is none of its local candidates, so the
//! destination it is told must be the advertised address the peer sent to, not the socket's.
//! A socket does not say which of several advertised addresses of one family a datagram came
//! in on (that would take `IP_PKTINFO` and a private→public map); one family's first address
//! stands for all of them. That is enough for ICE-lite: the answer goes to the check's source
//! from the one shared socket whichever local candidate the pair names.

use std::net::{IpAddr, SocketAddr};

use str0m::net::Protocol;

use super::config::SfuConfig;

/// The addresses advertised in host candidates for a socket bound at `bound`: the configured
/// public IPs on its port, or the bound address itself when none are configured.
pub(crate) fn advertised(config: &SfuConfig, bound: SocketAddr) -> Vec<IpAddr> {
    if config.public_ips.is_empty() {
        vec![bound.ip()]
    } else {
        config.public_ips.clone()
    }
}

/// The destination to hand str0m for a datagram from a peer, per protocol and address family.
#[derive(Debug, Clone)]
pub(crate) struct LocalAddrs {
    udp: ByFamily,
    tcp: Option<ByFamily>,
}

/// One port's advertised addresses: the first of each family, and a fallback for a source
/// of a family nothing is advertised in (str0m then discards its checks, as it should).
#[derive(Debug, Clone, Copy)]
struct ByFamily {
    v4: Option<SocketAddr>,
    v6: Option<SocketAddr>,
    fallback: SocketAddr,
}

impl ByFamily {
    fn new(config: &SfuConfig, bound: SocketAddr) -> Self {
        let ips = advertised(config, bound);
        let at = |ip: &IpAddr| SocketAddr::new(*ip, bound.port());
        ByFamily {
            v4: ips.iter().find(|ip| ip.is_ipv4()).map(at),
            v6: ips.iter().find(|ip| ip.is_ipv6()).map(at),
            fallback: ips.first().map_or(bound, at),
        }
    }

    fn for_source(&self, source: SocketAddr) -> SocketAddr {
        // A dual-stack socket reports an IPv4 peer as `::ffff:a.b.c.d`; that peer sent to
        // our IPv4 address.
        let family = if source.ip().to_canonical().is_ipv4() {
            self.v4
        } else {
            self.v6
        };
        family.unwrap_or(self.fallback)
    }
}

impl LocalAddrs {
    /// For the UDP socket bound at `udp` and the ICE-TCP listener at `tcp`, if any.
    pub(crate) fn new(config: &SfuConfig, udp: SocketAddr, tcp: Option<SocketAddr>) -> Self {
        LocalAddrs {
            udp: ByFamily::new(config, udp),
            tcp: tcp.map(|tcp| ByFamily::new(config, tcp)),
        }
    }

    /// The candidate address a datagram from `source` over `proto` was sent to.
    pub(crate) fn destination(&self, proto: Protocol, source: SocketAddr) -> SocketAddr {
        match (proto, &self.tcp) {
            (Protocol::Tcp | Protocol::SslTcp, Some(tcp)) => tcp.for_source(source),
            _ => self.udp.for_source(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn config(public: &[&str]) -> SfuConfig {
        SfuConfig {
            public_ips: public.iter().map(|ip| ip.parse().expect("ip")).collect(),
            ..SfuConfig::default()
        }
    }

    /// Where `local` says a datagram over `proto` from `source` was sent.
    fn sent_to(local: &LocalAddrs, proto: Protocol, source: &str) -> SocketAddr {
        local.destination(proto, addr(source))
    }

    #[test]
    fn without_public_ips_the_bound_address_is_the_destination() {
        let udp = addr("127.0.0.1:7882");
        let tcp = addr("127.0.0.1:7881");
        let local = LocalAddrs::new(&config(&[]), udp, Some(tcp));
        assert_eq!(sent_to(&local, Protocol::Udp, "127.0.0.1:50000"), udp);
        assert_eq!(sent_to(&local, Protocol::Tcp, "127.0.0.1:50000"), tcp);
    }

    #[test]
    fn an_all_interfaces_bind_reports_the_advertised_address_of_the_peers_family() {
        let public = ["203.0.113.10", "2001:db8::10", "198.51.100.7"];
        let local = LocalAddrs::new(
            &config(&public),
            addr("0.0.0.0:7882"),
            Some(addr("[::]:7881")),
        );
        let cases = [
            (Protocol::Udp, "192.0.2.1:40000", "203.0.113.10:7882"),
            (Protocol::Udp, "[2001:db8::99]:40000", "[2001:db8::10]:7882"),
            // An IPv4 peer on a dual-stack listener.
            (
                Protocol::Tcp,
                "[::ffff:192.0.2.1]:40000",
                "203.0.113.10:7881",
            ),
        ];
        for (proto, source, want) in cases {
            assert_eq!(sent_to(&local, proto, source), addr(want), "{source}");
        }
    }

    #[test]
    fn a_family_nothing_is_advertised_in_falls_back_to_the_first_address() {
        let local = LocalAddrs::new(&config(&["203.0.113.10"]), addr("0.0.0.0:7882"), None);
        let first = addr("203.0.113.10:7882");
        assert_eq!(
            sent_to(&local, Protocol::Udp, "[2001:db8::99]:40000"),
            first
        );
        // No TCP listener: a TCP datagram cannot arrive, but the answer is still defined.
        assert_eq!(sent_to(&local, Protocol::Tcp, "192.0.2.1:1"), first);
    }
}
