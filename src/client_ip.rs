//! Who the client is when the hub sits behind reverse proxies (nginx, a cloud load balancer,
//! a WAF): the per-address limits on live connections (`alerts.connect_rate_per_ip`,
//! `alerts.max_connections_per_ip`) must count the public subscriber, not the proxy that
//! carries thousands of them. Behind a proxy, every subscriber would otherwise share the
//! proxy's one address and be turned away with 429 once 1000 of them were connected.
//!
//! Only a connection from an address in `http.trusted_proxies` is believed. Its forwarding
//! header (`http.client_ip_header`) is read as a chain of hops, the nearest last; the client
//! is the nearest hop that is not a trusted proxy. A client cannot pretend to be someone else
//! by sending the header itself: its own entries sit left of the one its first trusted proxy
//! appends, and the walk stops there. An unreadable hop (`unknown`, an obfuscated name) stops
//! the walk at the proxy that reported it. No trusted proxies (the default): the header is
//! ignored, and the peer address is the client.

use std::fmt;
use std::net::IpAddr;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

/// Every header [`ClientIp::resolve`] may read (the request-head parsers beside hyper keep
/// these besides their own).
pub const HEADERS: &[&str] = &[
    ClientIpHeader::XForwardedFor.name(),
    ClientIpHeader::Forwarded.name(),
    ClientIpHeader::XRealIp.name(),
];

/// Hops read from one request's forwarding header, at most (a longer chain is cut on the
/// client's side: the nearest hops are the ones that count).
const MAX_HOPS: usize = 32;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether the block is a whole family (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    /// Whether `ip` lies in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IP address or a CIDR block like 10.0.0.0/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.as_str(), None),
        };
        let network = address.trim().parse::<IpAddr>().map_err(|_| bad())?;
        let network = network.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= bits)
                .ok_or_else(bad)?,
            None => bits,
        };
        Ok(Cidr { network, prefix })
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The header a trusted proxy puts the client's address in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx `$proxy_add_x_forwarded_for`, most
    /// load balancers). Default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=192.0.2.60, for="[2001:db8::17]:4711"`.
    Forwarded,
    /// `X-Real-IP: client`, one address the proxy sets (nginx `$remote_addr`).
    XRealIp,
}

impl ClientIpHeader {
    /// The header's name, lower case.
    pub const fn name(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
            ClientIpHeader::XRealIp => "x-real-ip",
        }
    }
}

/// Where to look for the client behind trusted proxies (`http.trusted_proxies`,
/// `http.client_ip_header`).
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Vec<Cidr>,
    header: ClientIpHeader,
}

impl ClientIp {
    /// The rule for `trusted` proxies that name the client in `header`.
    pub fn new(trusted: Vec<Cidr>, header: ClientIpHeader) -> Self {
        ClientIp { trusted, header }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|block| block.contains(ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let lines = headers.get_all(self.header.name());
        if self.header == ClientIpHeader::XRealIp {
            // One address the proxy sets; the last line if a client sent one before it.
            return lines
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(parse_hop)
                .unwrap_or(peer);
        }
        // Hops nearest first: the last line's last element is what the nearest proxy added.
        // Each element is decoded alone: a client's bytes that are not text must not make the
        // element its proxy appended after them unreadable.
        let mut nearest = peer;
        let elements = lines
            .iter()
            .rev()
            .flat_map(|line| line.as_bytes().rsplit(|&b| b == b','))
            .take(MAX_HOPS);
        for element in elements {
            let Ok(element) = std::str::from_utf8(element) else {
                return nearest;
            };
            let hop = match self.header {
                ClientIpHeader::Forwarded => forwarded_for(element),
                _ => Some(element),
            };
            let Some(ip) = hop.and_then(parse_hop) else {
                return nearest;
            };
            if !self.trusts(ip) {
                return ip;
            }
            nearest = ip;
        }
        nearest
    }
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.60;proto=https`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then_some(value)
    })
}

/// One hop's address: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`, `[2001:db8::1]:4711`,
/// quoted or not; `None` for anything else (`unknown`, `_hidden`).
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    let ip = if let Some(rest) = text.strip_prefix('[') {
        rest.split(']').next()?.parse().ok()?
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else {
        // IPv4 with a port (an IPv6 address without brackets parsed above).
        let (host, _port) = text.rsplit_once(':')?;
        host.parse::<std::net::Ipv4Addr>().ok()?.into()
    };
    Some(IpAddr::to_canonical(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::try_from(text.to_owned()).expect("cidr")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn headers(name: &str, lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                line.parse().expect("value"),
            );
        }
        map
    }

    fn behind(trusted: &[&str], header: ClientIpHeader) -> ClientIp {
        ClientIp::new(trusted.iter().map(|t| cidr(t)).collect(), header)
    }

    #[test]
    fn blocks_parse_and_match() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.200.1.2")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!cidr("2001:db8::/32").contains(ip("2001:db9::5")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.1")));
        assert!(cidr("0.0.0.0/0").is_everything() && !cidr("10.0.0.0/8").is_everything());
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("127.0.0.1").contains(ip("::ffff:127.0.0.1")), "mapped");
        assert_eq!(cidr("::ffff:10.0.0.0/8").to_string(), "10.0.0.0/8");
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "nginx",
            "10.0.0.0/x",
        ] {
            assert!(Cidr::try_from(bad.to_owned()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let rule = ClientIp::default();
        let spoofed = headers("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(rule.resolve(ip("203.0.113.9"), &spoofed), ip("203.0.113.9"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let rule = behind(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let spoofed = headers("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(rule.resolve(ip("203.0.113.9"), &spoofed), ip("203.0.113.9"));
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let rule = behind(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let one = headers("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &one), ip("198.51.100.1"));
        // A client's own claim sits left of what the proxy appended.
        let spoof = headers("x-forwarded-for", &["192.0.2.66, 198.51.100.1"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &spoof), ip("198.51.100.1"));
        // Two proxies: the inner one (10.1.1.1) is trusted too.
        let two = headers("x-forwarded-for", &["198.51.100.1, 10.1.1.1"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &two), ip("198.51.100.1"));
        // Several header lines are one list, in order.
        let lines = headers("x-forwarded-for", &["192.0.2.66", "198.51.100.1, 10.1.1.1"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &lines), ip("198.51.100.1"));
        // Ports and IPv6.
        let ported = headers("x-forwarded-for", &["198.51.100.1:5123"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &ported), ip("198.51.100.1"));
        let six = headers("x-forwarded-for", &["2001:db8::7"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &six), ip("2001:db8::7"));
    }

    #[test]
    fn a_clients_bytes_do_not_hide_the_hop_its_proxy_appended() {
        let rule = behind(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let mut map = HeaderMap::new();
        let value = axum::http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.1").expect("value");
        map.append("x-forwarded-for", value);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &map), ip("198.51.100.1"));
    }

    #[test]
    fn unreadable_or_missing_hops_leave_the_nearest_proxy() {
        let rule = behind(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let none = HeaderMap::new();
        assert_eq!(rule.resolve(ip("10.0.0.2"), &none), ip("10.0.0.2"));
        let unknown = headers("x-forwarded-for", &["198.51.100.1, unknown, 10.1.1.1"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &unknown), ip("10.1.1.1"));
        let all_trusted = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &all_trusted), ip("10.9.9.9"));
        let long = vec!["10.3.3.3"; MAX_HOPS + 5].join(",");
        let long = headers("x-forwarded-for", &[&format!("198.51.100.1,{long}")]);
        assert_eq!(
            rule.resolve(ip("10.0.0.2"), &long),
            ip("10.3.3.3"),
            "the walk stops after MAX_HOPS"
        );
    }

    #[test]
    fn rfc_7239_forwarded_elements() {
        let rule = behind(&["10.0.0.0/8"], ClientIpHeader::Forwarded);
        let plain = headers("forwarded", &["for=198.51.100.1;proto=https;by=10.0.0.2"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &plain), ip("198.51.100.1"));
        let quoted = headers(
            "forwarded",
            &[r#"for=192.0.2.66, For="[2001:db8:cafe::17]:4711", for=10.1.1.1"#],
        );
        assert_eq!(
            rule.resolve(ip("10.0.0.2"), &quoted),
            ip("2001:db8:cafe::17")
        );
        let hidden = headers("forwarded", &["for=_hidden, for=10.1.1.1"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &hidden), ip("10.1.1.1"));
        // The other header is not read.
        let other = headers("x-forwarded-for", &["198.51.100.1"]);
        assert_eq!(rule.resolve(ip("10.0.0.2"), &other), ip("10.0.0.2"));
    }

    #[test]
    fn x_real_ip_is_one_address() {
        let rule = behind(&["127.0.0.1"], ClientIpHeader::XRealIp);
        let set = headers("x-real-ip", &["192.0.2.66", "198.51.100.1"]);
        assert_eq!(rule.resolve(ip("127.0.0.1"), &set), ip("198.51.100.1"));
        let junk = headers("x-real-ip", &["nope"]);
        assert_eq!(rule.resolve(ip("127.0.0.1"), &junk), ip("127.0.0.1"));
        let mapped_peer = ip("::ffff:127.0.0.1");
        assert_eq!(rule.resolve(mapped_peer, &set), ip("198.51.100.1"));
    }
}
