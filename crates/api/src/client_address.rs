//! The address a request comes from: the TCP peer, or — when the peer is a proxy the operator
//! trusts (`--trusted-proxies`) — the nearest address in `Forwarded` (RFC 7239, its `for=`
//! parameters) or, without one, `X-Forwarded-For` that is not a trusted proxy. Reading from the
//! right, as each trusted proxy appended the address it saw, so a client cannot choose its own
//! address by sending the header itself.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::IpNet;

const FORWARDED_FOR: &str = "x-forwarded-for";
const FORWARDED: &str = "forwarded";
const FORWARDED_HOST: &str = "x-forwarded-host";
const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// What a client address is counted as, for the limits kept per client address (connections,
/// requests without a credential): an IPv4 address itself, and an IPv6 address its /64, the
/// smallest network a subscriber or a host is given, whose every address it can use. Counted one
/// by one, IPv6 addresses would let one client past every such limit.
pub fn counted_as(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No proxy is trusted: the TCP peer is the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of addresses and networks (`10.0.0.0/8`, `127.0.0.1`, `::1`).
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{item:?} is not an IP address or network (like 10.0.0.0/8)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let values = |name| headers.get_all(name).iter().filter_map(|value| value.to_str().ok());
        // `Forwarded` when a proxy wrote one (each element's `for=`), else `X-Forwarded-For`.
        let hops: Vec<Option<IpAddr>> = if headers.contains_key(FORWARDED) {
            values(FORWARDED).flat_map(|value| value.split(',')).map(forwarded_for).collect()
        } else {
            values(FORWARDED_FOR)
                .flat_map(|value| value.split(','))
                .map(|hop| hop.trim().parse().ok())
                .collect()
        };
        let mut nearest = peer;
        for hop in hops.iter().rev() {
            // An address that does not parse (or `unknown`, an obfuscated name) was not written
            // by a proxy we trust: stop at the last one that was.
            let Some(address) = *hop else { return nearest };
            if !self.trusts(address) {
                return address.to_canonical();
            }
            nearest = address;
        }
        nearest
    }

    /// The public URL (`https://files.example.com`) a client used, as a trusted proxy reports it:
    /// the host and scheme of the last `Forwarded` element (RFC 7239 `host=`, `proto=`), else
    /// `X-Forwarded-Host` and `X-Forwarded-Proto` (their last values: the ones the proxy that
    /// sent the request wrote). `None` from any other peer, without a host, or when a value is not
    /// a plain host name, address and port, or `http`/`https`: then the configured URL stands.
    /// `default_scheme` is used when the proxy names a host but no scheme.
    pub fn url_base_of(&self, peer: IpAddr, headers: &HeaderMap, default_scheme: &str) -> Option<String> {
        if !self.trusts(peer) {
            return None;
        }
        let last = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
        };
        let (host, proto) = match last(FORWARDED) {
            Some(element) => (forwarded_param(element, "host"), forwarded_param(element, "proto")),
            None => (last(FORWARDED_HOST).map(str::trim), last(FORWARDED_PROTO).map(str::trim)),
        };
        let host = host.filter(|host| is_host(host))?;
        let scheme = match proto {
            None => default_scheme,
            Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
            Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
            Some(_) => return None,
        };
        Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
    }
}

/// A host name or address with an optional port, and nothing else (no path, user or spaces).
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']' | b'_'))
}

/// One parameter of a `Forwarded` element, unquoted.
fn forwarded_param<'a>(element: &'a str, wanted: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case(wanted).then(|| value.trim().trim_matches('"'))
    })
}

/// The address of one `Forwarded` element's `for=` parameter: `192.0.2.60`, `"192.0.2.60:4711"`,
/// `"[2001:db8::17]:4711"` (RFC 7239 §6); `None` for `unknown`, an obfuscated name or nothing.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = forwarded_param(element, "for")?;
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    // An IPv4 address, with or without a port (a bare IPv6 address is not valid here).
    value
        .parse()
        .ok()
        .or_else(|| value.rsplit_once(':')?.0.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_counts_as_its_slash_64_and_an_ipv4_client_as_itself() {
        let counted = |address: &str| counted_as(address.parse().unwrap()).to_string();
        assert_eq!(counted("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(counted("2001:db8:1:2::1"), counted("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(counted("2001:db8:1:2::1"), counted("2001:db8:1:3::1"));
        assert_eq!(counted("203.0.113.7"), "203.0.113.7");
        // An IPv4 client of a dual-stack listener, in its mapped form, is itself.
        assert_eq!(counted("::ffff:203.0.113.7"), "203.0.113.7");
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(proxies.client_of(ip("203.0.113.9"), &forwarded(&["198.51.100.1"])), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::none().client_of(ip("10.0.0.1"), &forwarded(&["1.2.3.4"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        // The client wrote a false first hop; the proxies appended what they saw.
        let headers = forwarded(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(proxies.client_of(ip("127.0.0.1"), &headers), ip("198.51.100.7"));
        // Every hop trusted: the farthest one.
        assert_eq!(proxies.client_of(ip("127.0.0.1"), &forwarded(&["10.0.0.5"])), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(proxies.client_of(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            proxies.client_of(ip("10.0.0.1"), &forwarded(&["1.1.1.1, nonsense, 10.0.0.9"])),
            ip("10.0.0.9")
        );
        // IPv4 peers seen as IPv6-mapped are the same addresses.
        assert_eq!(
            proxies.client_of(ip("::ffff:127.0.0.1"), &forwarded(&["::ffff:198.51.100.7"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn forwarded_is_read_like_x_forwarded_for_and_wins_over_it() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let mut headers = HeaderMap::new();
        headers.append(FORWARDED, r#"for=6.6.6.6, for="198.51.100.7:4711";proto=https"#.parse().unwrap());
        headers.append(FORWARDED, "for=10.1.2.3;by=10.0.0.1".parse().unwrap());
        headers.append(FORWARDED_FOR, "5.5.5.5".parse().unwrap());
        assert_eq!(proxies.client_of(ip("10.0.0.1"), &headers), ip("198.51.100.7"));
        let mut v6 = HeaderMap::new();
        v6.append(FORWARDED, r#"For="[2001:db8:cafe::17]:4711""#.parse().unwrap());
        assert_eq!(proxies.client_of(ip("10.0.0.1"), &v6), ip("2001:db8:cafe::17"));
        // `unknown` and obfuscated names stop the walk at the proxy that wrote them.
        let mut hidden = HeaderMap::new();
        hidden.append(FORWARDED, "for=unknown, for=10.0.0.7".parse().unwrap());
        assert_eq!(proxies.client_of(ip("10.0.0.1"), &hidden), ip("10.0.0.7"));
        // From an untrusted peer it is ignored like any other claim.
        assert_eq!(proxies.client_of(ip("203.0.113.9"), &headers), ip("203.0.113.9"));
    }

    #[test]
    fn a_list_that_is_not_addresses_is_refused_with_the_culprit() {
        assert!(TrustedProxies::parse("10.0.0.0/8,proxy.local").unwrap_err().contains("proxy.local"));
        assert_eq!(TrustedProxies::parse("").unwrap(), TrustedProxies::none());
        assert!(TrustedProxies::parse("::1, fd00::/8").is_ok());
    }

    #[test]
    fn the_public_url_comes_from_a_trusted_proxy_only_and_only_when_it_is_a_plain_host() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, value.parse().unwrap());
            }
            map
        };
        let via_proxy =
            |pairs: &[(&'static str, &str)]| proxies.url_base_of(ip("10.0.0.1"), &headers(pairs), "http");
        assert_eq!(
            via_proxy(&[(FORWARDED_HOST, "Files.Example.com"), (FORWARDED_PROTO, "https")]).as_deref(),
            Some("https://files.example.com")
        );
        assert_eq!(
            via_proxy(&[(FORWARDED_HOST, "localhost:8443")]).as_deref(),
            Some("http://localhost:8443")
        );
        // The value the nearest proxy wrote is the last one.
        assert_eq!(
            via_proxy(&[(FORWARDED_HOST, "evil.example, files.example.com")]).as_deref(),
            Some("http://files.example.com")
        );
        assert_eq!(
            via_proxy(&[(
                FORWARDED,
                "for=1.2.3.4;host=a.example, for=5.6.7.8;host=\"b.example:444\";proto=https"
            )])
            .as_deref(),
            Some("https://b.example:444")
        );
        for refused in [
            &[(FORWARDED_HOST, "files.example.com/evil")][..],
            &[(FORWARDED_HOST, "user@files.example.com")],
            &[(FORWARDED_HOST, "files.example.com"), (FORWARDED_PROTO, "javascript")],
            &[(FORWARDED_PROTO, "https")],
            &[],
        ] {
            assert_eq!(via_proxy(refused), None, "{refused:?}");
        }
        let untrusted = headers(&[(FORWARDED_HOST, "files.example.com")]);
        assert_eq!(proxies.url_base_of(ip("203.0.113.9"), &untrusted, "http"), None);
    }
}
