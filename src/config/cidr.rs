//! `trusted_proxies`: IP networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or a bare
//! address for one host).

use std::fmt;
use std::net::IpAddr;

/// One IP network. An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, what a `[::]` listener
/// sees for an IPv4 client) matches the IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `ADDR/PREFIX` or `ADDR`; host bits set below the prefix are refused (a typo
    /// like `10.0.0.1/8` is more often a mistake than a shorthand).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad =
            || format!("\"{s}\" is not an IP network; write e.g. \"10.0.0.0/8\" or \"192.0.2.7\"");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != Some(bits(network)) {
            return Err(format!(
                "\"{s}\" has host bits set below /{prefix}; write the network address"
            ));
        }
        Ok(cidr)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.masked(ip.to_canonical()) == Some(bits(self.network))
    }

    /// `ip`'s bits under this network's mask, if it is of the same family.
    fn masked(&self, ip: IpAddr) -> Option<u128> {
        let (width, same) = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => (32, true),
            (IpAddr::V6(_), IpAddr::V6(_)) => (128, true),
            _ => (0, false),
        };
        if !same {
            return None;
        }
        let host = width - u32::from(self.prefix);
        let mask = if host >= 128 { 0 } else { u128::MAX << host };
        Some(bits(ip) & mask)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::Cidr;

    #[test]
    fn networks_match_their_addresses_only() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
