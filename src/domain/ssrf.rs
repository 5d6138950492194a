//! The SSRF guard for every URL the gateway hands an upstream or calls back (frames,
//! references, `webhook_url`). A URL must be http(s), and its host must not be — or resolve
//! to, when it is a name — a loopback, private, link-local, CGNAT, multicast, unspecified,
//! reserved or cloud-metadata address, in any spelling: the URL parser normalises decimal,
//! octal and hex integer IPv4 forms; IPv4-mapped, 6to4 and NAT64 (64:ff9b::/96) IPv6 forms
//! are checked as the IPv4 address they carry; `localhost` and its variants (any case,
//! trailing dots, `*.localhost`) are names that are refused outright.
//!
//! "Internal" means every range of the IANA IPv4 and IPv6 Special-Purpose Address Registries
//! (RFC 6890 and its updates: documentation, benchmarking, AS112, NAT64 local use, ...),
//! multicast, and on IPv6 anything outside global unicast (2000::/3).
//!
//! `security.url_allowlist` lets an operator admit internal hosts (exact names, `.suffix`
//! entries for subdomains, or literal IPs), for internal deployments and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use url::{Host, Url};

use crate::error::Error;

/// Why an IP address is not acceptable, if it is not.
pub fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// The IANA IPv4 Special-Purpose Address Registry (RFC 6890 and its updates), every entry,
/// globally reachable or not, plus multicast: none of them is a public web server a tenant's
/// URL may name. Checked in order; the first match is the reason given.
const SPECIAL_V4: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address"),
    ([10, 0, 0, 0], 8, "a private address"),
    ([100, 64, 0, 0], 10, "a shared (CGNAT) address"),
    ([127, 0, 0, 0], 8, "a loopback address"),
    ([169, 254, 0, 0], 16, "a link-local or metadata address"),
    ([172, 16, 0, 0], 12, "a private address"),
    ([192, 0, 0, 0], 24, "an IETF protocol assignment address"),
    ([192, 0, 2, 0], 24, "a documentation (TEST-NET-1) address"),
    ([192, 31, 196, 0], 24, "an AS112 address"),
    ([192, 52, 193, 0], 24, "an AMT address"),
    ([192, 88, 99, 0], 24, "a 6to4 relay anycast address"),
    ([192, 168, 0, 0], 16, "a private address"),
    ([192, 175, 48, 0], 24, "an AS112 address"),
    ([198, 18, 0, 0], 15, "a benchmarking address"),
    (
        [198, 51, 100, 0],
        24,
        "a documentation (TEST-NET-2) address",
    ),
    ([203, 0, 113, 0], 24, "a documentation (TEST-NET-3) address"),
    ([224, 0, 0, 0], 4, "a multicast address"),
    ([240, 0, 0, 0], 4, "a reserved address"),
];

/// The IANA IPv6 Special-Purpose Address Registry, every entry, plus multicast and the
/// deprecated site-local range. Prefixes that carry an IPv4 address (IPv4-mapped, the NAT64
/// well-known prefix, 6to4) are judged as that address before this table is read; anything
/// outside the global unicast space 2000::/3 is refused as reserved after it.
const SPECIAL_V6: &[([u16; 8], u8, &str)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, "an unspecified address"),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, "a loopback address"),
    (
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "a local-use NAT64 address",
    ),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "a discard-only address"),
    ([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "a dummy address"),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "an IETF protocol assignment address",
    ),
    (
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "a documentation address",
    ),
    (
        [0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0],
        48,
        "an AS112 address",
    ),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "a documentation address"),
    (
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "a segment-routing (SRv6) address",
    ),
    (
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        "a unique-local (private) address",
    ),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "a link-local address"),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "a site-local address"),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "a multicast address"),
];

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let ip = u32::from(ip);
    if ip == u32::MAX {
        return Some("the broadcast address");
    }
    SPECIAL_V4.iter().find_map(|(network, length, why)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*length)).unwrap_or(0);
        (ip & mask == u32::from_be_bytes(*network) & mask).then_some(*why)
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    // Forms that reach an IPv4 address are judged as that address: IPv4-mapped
    // (::ffff:0:0/96), the NAT64 well-known prefix (64:ff9b::/96, RFC 6052) and 6to4
    // (2002::/16, RFC 3056).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        return forbidden_v4(embedded(segments[1], segments[2]));
    }
    let ip = u128::from(ip);
    let special = SPECIAL_V6.iter().find_map(|(network, length, why)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(*length)).unwrap_or(0);
        (ip & mask == u128::from(Ipv6Addr::from(*network)) & mask).then_some(*why)
    });
    // Only 2000::/3 is allocated for global unicast; the rest (the deprecated
    // IPv4-compatible ::/96 included) is reserved by the IETF.
    special.or_else(|| (ip >> 125 != 0b001).then_some("a reserved address"))
}

/// Whether the host is admitted by the operator's allowlist.
fn allowed(host: &str, allowlist: &[String]) -> bool {
    allowlist.iter().any(|entry| {
        let entry = entry.trim().trim_end_matches('.').to_ascii_lowercase();
        match entry.strip_prefix('.') {
            Some(suffix) => host == suffix || host.ends_with(&format!(".{suffix}")),
            None => host == entry,
        }
    })
}

/// Checks one URL (already parsed as an absolute http(s) URL). `param` names the field.
pub async fn check_url(raw: &str, param: &str, allowlist: &[String]) -> Result<(), Error> {
    let refuse =
        |why: &str| Error::invalid(param, format!("{param} is not allowed: its host is {why}"));
    let url = Url::parse(raw)
        .map_err(|_| Error::invalid(param, format!("{param} is not a valid URL")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(
            param,
            format!("{param} must use http or https"),
        ));
    }
    let host = url
        .host()
        .ok_or_else(|| Error::invalid(param, format!("{param} must name a host")))?;
    let host_text = match &host {
        Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    if allowed(&host_text, allowlist) {
        return Ok(());
    }
    match host {
        Host::Ipv4(ip) => forbidden_v4(ip).map_or(Ok(()), |why| Err(refuse(why))),
        Host::Ipv6(ip) => forbidden_v6(ip).map_or(Ok(()), |why| Err(refuse(why))),
        Host::Domain(_) => {
            if host_text.is_empty()
                || host_text == "localhost"
                || host_text.ends_with(".localhost")
                || host_text == "localhost.localdomain"
                || host_text.ends_with(".internal")
                || host_text == "metadata"
            {
                return Err(refuse("a local or internal name"));
            }
            let port = url.port_or_known_default().unwrap_or(443);
            let lookup = tokio::time::timeout(
                Duration::from_secs(3),
                tokio::net::lookup_host((host_text.as_str(), port)),
            )
            .await;
            let addresses: Vec<IpAddr> = match lookup {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                _ => {
                    return Err(Error::invalid(
                        param,
                        format!("{param}: its host `{host_text}` cannot be resolved"),
                    ))
                }
            };
            if addresses.is_empty() {
                return Err(Error::invalid(
                    param,
                    format!("{param}: its host `{host_text}` has no address"),
                ));
            }
            for ip in addresses {
                if let Some(why) = forbidden_ip(ip) {
                    return Err(refuse(&format!("`{host_text}`, which resolves to {why}")));
                }
            }
            Ok(())
        }
    }
}

/// Checks every URL of a create request.
pub async fn check_request(
    video: &crate::types::video::NewVideo,
    allowlist: &[String],
) -> Result<(), Error> {
    let inputs = &video.inputs;
    let mut urls: Vec<(&str, &str)> = Vec::new();
    if let Some(u) = &inputs.first_frame_url {
        urls.push((u.as_str(), "image_url"));
    }
    if let Some(u) = &inputs.last_frame_url {
        urls.push((u.as_str(), "last_frame_url"));
    }
    urls.extend(
        inputs
            .reference_image_urls
            .iter()
            .map(|u| (u.as_str(), "reference_image_urls")),
    );
    urls.extend(
        inputs
            .reference_video_urls
            .iter()
            .map(|u| (u.as_str(), "reference_video_urls")),
    );
    urls.extend(
        inputs
            .reference_audio_urls
            .iter()
            .map(|u| (u.as_str(), "reference_audio_urls")),
    );
    if let Some(u) = &video.webhook_url {
        urls.push((u.as_str(), "webhook_url"));
    }
    for (url, param) in urls {
        check_url(url, param, allowlist).await?;
    }
    Ok(())
}

/// Checks what can be known of a URL without DNS: scheme, literal addresses and local names.
/// Used on every redirect hop; names are checked again by [`GuardedResolver`] when they are
/// resolved for the connection, so a name that re-resolves to an internal address (DNS
/// rebinding) is refused too.
pub fn check_without_dns(url: &Url, allowlist: &[String]) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{} is not http or https", url.scheme()));
    }
    let host = url.host().ok_or("no host")?;
    let host_text = match &host {
        Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    if allowed(&host_text, allowlist) {
        return Ok(());
    }
    match host {
        Host::Ipv4(ip) => forbidden_v4(ip).map_or(Ok(()), |why| Err(why.to_owned())),
        Host::Ipv6(ip) => forbidden_v6(ip).map_or(Ok(()), |why| Err(why.to_owned())),
        Host::Domain(_) => {
            if local_name(&host_text) {
                Err("a local or internal name".to_owned())
            } else {
                Ok(())
            }
        }
    }
}

fn local_name(host: &str) -> bool {
    host.is_empty()
        || host == "localhost"
        || host.ends_with(".localhost")
        || host == "localhost.localdomain"
        || host.ends_with(".internal")
        || host == "metadata"
}

/// A DNS resolver for outgoing requests that refuses names resolving to any forbidden
/// address (unless the name is allowlisted), at connection time.
pub struct GuardedResolver {
    allowlist: std::sync::Arc<Vec<String>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowlist = self.allowlist.clone();
        Box::pin(async move {
            let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
            let allowed_host = allowed(&host, &allowlist);
            if !allowed_host && local_name(&host) {
                return Err(format!("{host} is a local or internal name").into());
            }
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allowed_host {
                if let Some(bad) = found.iter().find(|a| forbidden_ip(a.ip()).is_some()) {
                    return Err(
                        format!("{host} resolves to a forbidden address {}", bad.ip()).into(),
                    );
                }
            }
            let addresses: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addresses)
        })
    }
}

/// An HTTP client for calls to tenant-supplied URLs (webhooks, archived outputs): every
/// connection goes through [`GuardedResolver`], every redirect hop through
/// [`check_without_dns`], at most `max_redirects` of them.
pub fn guarded_client(
    allowlist: &[String],
    timeout: Duration,
    max_redirects: usize,
) -> reqwest::Result<reqwest::Client> {
    let allowlist = std::sync::Arc::new(allowlist.to_vec());
    let for_redirects = allowlist.clone();
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(GuardedResolver { allowlist }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error("too many redirects");
            }
            match check_without_dns(attempt.url(), &for_redirects) {
                Ok(()) => attempt.follow(),
                Err(why) => {
                    let message = format!("redirect to a forbidden target: {why}");
                    attempt.error(message)
                }
            }
        }))
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .user_agent(concat!("seedance-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        forbidden_ip(ip.parse().expect("an IP address")).is_some()
    }

    /// Each IPv4 special-purpose range (IANA registry, RFC 6890 and updates), multicast and
    /// broadcast, by its first and last address.
    #[test]
    fn every_special_purpose_ipv4_range_is_refused_to_its_edges() {
        for (first, last) in [
            ("0.0.0.0", "0.255.255.255"),
            ("10.0.0.0", "10.255.255.255"),
            ("100.64.0.0", "100.127.255.255"),
            ("127.0.0.0", "127.255.255.255"),
            ("169.254.0.0", "169.254.255.255"),
            ("172.16.0.0", "172.31.255.255"),
            ("192.0.0.0", "192.0.0.255"),
            ("192.0.2.0", "192.0.2.255"),
            ("192.31.196.0", "192.31.196.255"),
            ("192.52.193.0", "192.52.193.255"),
            ("192.88.99.0", "192.88.99.255"),
            ("192.168.0.0", "192.168.255.255"),
            ("192.175.48.0", "192.175.48.255"),
            ("198.18.0.0", "198.19.255.255"),
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.0", "203.0.113.255"),
            ("224.0.0.0", "239.255.255.255"),
            ("240.0.0.0", "255.255.255.254"),
            ("255.255.255.255", "255.255.255.255"),
        ] {
            assert!(refused(first), "{first} was accepted");
            assert!(refused(last), "{last} was accepted");
        }
    }

    #[test]
    fn ipv4_addresses_next_to_the_special_ranges_are_accepted() {
        for ip in [
            "1.0.0.0",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "191.255.255.255",
            "192.0.1.0",
            "192.0.3.0",
            "192.31.195.255",
            "192.31.197.0",
            "192.52.192.255",
            "192.52.194.0",
            "192.88.98.255",
            "192.88.100.0",
            "192.167.255.255",
            "192.169.0.0",
            "192.175.47.255",
            "192.175.49.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
        ] {
            assert!(!refused(ip), "{ip} was refused");
        }
    }

    /// Each IPv6 special-purpose range (IANA registry), multicast, site-local, and the
    /// reserved space outside 2000::/3, by its first and last address.
    #[test]
    fn every_special_purpose_ipv6_range_is_refused_to_its_edges() {
        for (first, last) in [
            ("::", "::"),
            ("::1", "::1"),
            ("64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff"),
            ("100::", "100::ffff:ffff:ffff:ffff"),
            ("100:0:0:1::", "100:0:0:1:ffff:ffff:ffff:ffff"),
            ("2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("2620:4f:8000::", "2620:4f:8000:ffff:ffff:ffff:ffff:ffff"),
            ("3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            // Outside global unicast: the deprecated IPv4-compatible form and unassigned space.
            ("::2", "::ffff:ffff"),
            ("::8.8.8.8", "::8.8.8.8"),
            ("1::", "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("4000::", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ] {
            assert!(refused(first), "{first} was accepted");
            assert!(refused(last), "{last} was accepted");
        }
    }

    /// IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 addresses are judged as the IPv4 address
    /// they carry, whichever special range it is in.
    #[test]
    fn ipv6_forms_carrying_an_ipv4_address_are_judged_as_that_address() {
        for v4 in [
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "10.1.2.3",
            "100.64.0.1",
        ] {
            let [a, b, c, d] = v4.parse::<Ipv4Addr>().expect("v4").octets();
            for ip in [
                format!("::ffff:{v4}"),
                format!("64:ff9b::{v4}"),
                format!("2002:{a:02x}{b:02x}:{c:02x}{d:02x}::1"),
            ] {
                assert!(refused(&ip), "{ip} was accepted");
            }
        }
        for ip in ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"] {
            assert!(!refused(ip), "{ip} was refused");
        }
    }

    #[test]
    fn ipv6_addresses_next_to_the_special_ranges_are_accepted() {
        for ip in [
            "2000::",
            "2001:200::",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "2606:4700::1111",
            "2620:4f:7fff:ffff:ffff:ffff:ffff:ffff",
            "2620:4f:8001::",
            "3ffe::1",
            "3fff:1000::",
            "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(!refused(ip), "{ip} was refused");
        }
    }

    #[tokio::test]
    async fn a_documentation_address_is_refused_as_a_url_unless_allowlisted() {
        for url in [
            "http://192.0.2.1/hook",
            "http://198.51.100.1/hook",
            "http://203.0.113.1/hook",
            "http://[2001:db8::1]/hook",
            "http://[64:ff9b::c000:201]/hook",
        ] {
            assert!(check_url(url, "webhook_url", &[]).await.is_err(), "{url}");
            let parsed = Url::parse(url).expect("url");
            assert!(check_without_dns(&parsed, &[]).is_err(), "{url}");
        }
        let allow = vec!["192.0.2.1".to_string(), "2001:db8::1".to_string()];
        assert!(check_url("http://192.0.2.1/hook", "webhook_url", &allow)
            .await
            .is_ok());
        assert!(
            check_url("http://[2001:db8::1]/hook", "webhook_url", &allow)
                .await
                .is_ok()
        );
        assert!(check_url("http://192.0.2.2/hook", "webhook_url", &allow)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn hostile_urls_are_refused_in_every_spelling() {
        let hostile = [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://localhost.localdomain/",
            "http://foo.localhost/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[2002:7f00:1::]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://0.0.0.0/",
            "http://0/",
            "http://[::]/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://[fc00::1]/",
            "http://100.64.0.1/",
            "http://100.100.100.200/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
            "http://255.255.255.255/",
            "http://240.0.0.1/",
            "http://metadata.google.internal/",
            "ftp://example.com/a.png",
            "file:///etc/passwd",
            "gopher://example.com/",
        ];
        assert!(hostile.len() >= 30);
        for url in hostile {
            assert!(
                check_url(url, "image_url", &[]).await.is_err(),
                "{url} was accepted"
            );
        }
    }

    #[tokio::test]
    async fn public_addresses_and_allowlisted_hosts_are_accepted() {
        for url in [
            "http://93.184.216.34/a.png",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/a.mp4",
            "https://8.8.8.8/",
        ] {
            assert!(
                check_url(url, "image_url", &[]).await.is_ok(),
                "{url} was refused"
            );
        }
        let allow = vec![
            ".example.com".to_string(),
            "127.0.0.1".to_string(),
            "internal-cdn".to_string(),
        ];
        for url in [
            "https://img.example.com/a.png",
            "http://127.0.0.1:9100/x",
            "http://internal-cdn/a.png",
        ] {
            assert!(
                check_url(url, "image_url", &allow).await.is_ok(),
                "{url} was refused despite the allowlist"
            );
        }
        assert!(check_url("http://127.0.0.2/", "image_url", &allow)
            .await
            .is_err());
    }
}
