//! Which peers may say who the client is. A proxy in front of a server (the gateway in front of a service, an
//! ingress in front of the gateway) appends the address it saw to `X-Forwarded-For`; anyone else can write any
//! address there. So the header is believed only from the proxies a deployment names, as addresses or CIDR
//! blocks (a Kubernetes pod network), and only back to the first hop that is not one of them.

use std::net::IpAddr;

/// The trusted proxies: addresses and blocks. Empty: nobody is trusted and the TCP peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies(Vec<(IpAddr, u8)>);

impl Proxies {
    /// `10.0.0.2, 10.42.0.0/16, ::1`; an entry that is not an address or block is an error naming it.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, bits) = match entry.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (entry, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| format!("{entry:?} is not an IP address or CIDR block"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => {
                    b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| format!("{entry:?}: bad prefix length"))?
                }
                None => max,
            };
            out.push((addr, bits));
        }
        Ok(Self(out))
    }

    /// From the variable `var` (unset or empty: none).
    pub fn from_env(var: &str) -> anyhow::Result<Self> {
        Self::parse(&crate::env::string_or(var, "")).map_err(|e| anyhow::anyhow!("environment variable {var}: {e}"))
    }

    pub fn of(addrs: &[IpAddr]) -> Self {
        Self(addrs.iter().map(|a| (*a, if a.is_ipv4() { 32 } else { 128 })).collect())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                prefix(u128::from(u32::from(*n)) << 96, u128::from(u32::from(i)) << 96, *bits)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix(u128::from(*n), u128::from(i), *bits),
            _ => false,
        })
    }

    /// The client's address: `peer`, unless `peer` is a trusted proxy; then the nearest address of
    /// X-Forwarded-For (read from the right, as each proxy appends the one it saw) that is not itself a trusted
    /// proxy. Garbage in the header ends the walk at the last address known good.
    pub fn client(&self, peer: IpAddr, forwarded: Option<&str>) -> IpAddr {
        let mut client = peer;
        for hop in forwarded.unwrap_or_default().rsplit(',') {
            if !self.contains(client) {
                break;
            }
            match hop.trim().parse() {
                Ok(addr) => client = addr,
                Err(_) => break,
            }
        }
        client
    }
}

fn prefix(net: u128, ip: u128, bits: u8) -> bool {
    bits == 0 || (net ^ ip) >> (128 - u32::from(bits)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let ingress = Proxies::parse("10.0.0.2, 10.0.0.3").unwrap();
        let (client, stranger) = (ip("203.0.113.7"), ip("198.51.100.9"));
        assert_eq!(ingress.client(stranger, Some("1.2.3.4")), stranger, "a client's own header is ignored");
        assert_eq!(ingress.client(ip("10.0.0.2"), Some("203.0.113.7")), client);
        // Spoofed hops to the left of what the ingress appended are not believed.
        assert_eq!(ingress.client(ip("10.0.0.2"), Some("1.2.3.4, 203.0.113.7")), client);
        // Through two trusted proxies.
        assert_eq!(ingress.client(ip("10.0.0.2"), Some("203.0.113.7, 10.0.0.3")), client);
        assert_eq!(ingress.client(ip("10.0.0.2"), Some("garbage")), ip("10.0.0.2"));
        assert_eq!(ingress.client(ip("10.0.0.2"), None), ip("10.0.0.2"));
        assert_eq!(Proxies::default().client(ip("10.0.0.2"), Some("203.0.113.7")), ip("10.0.0.2"));
    }

    #[test]
    fn blocks_match_their_addresses_only() {
        let pods = Proxies::parse("10.42.0.0/16, fd00::/8").unwrap();
        assert!(pods.contains(ip("10.42.7.9")) && !pods.contains(ip("10.43.0.1")));
        assert!(pods.contains(ip("fd12::1")) && !pods.contains(ip("fe80::1")));
        assert!(!pods.contains(ip("::ffff:10.42.0.1")), "a v4-mapped address is not the v4 block");
        assert!(Proxies::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.1/x", "::/129"] {
            assert!(Proxies::parse(bad).is_err(), "{bad}");
        }
    }
}
