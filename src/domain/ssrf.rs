//! The SSRF guard for every URL the gateway hands an upstream or calls back (frames,
//! references, `webhook_url`). A URL must be http(s), and its host must not be — or resolve
//! to, when it is a name — a loopback, private, link-local, CGNAT, multicast, unspecified,
//! reserved or cloud-metadata address, in any spelling: the URL parser normalises decimal,
//! octal and hex integer IPv4 forms; IPv4-mapped, -compatible, 6to4 and NAT64 IPv6 forms are
//! checked as the IPv4 address they carry; `localhost` and its variants (any case, trailing
//! dots, `*.localhost`) are names that are refused outright.
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

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local or metadata address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (CGNAT) address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() || a >= 240 {
        Some("a reserved address")
    } else if (a == 192 && b == 0 && c == 0) || (a == 198 && (18..20).contains(&b)) {
        Some("a special-purpose address")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    // Forms that carry an IPv4 address are judged as that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return forbidden_v4(Ipv4Addr::from(
            ((segments[6] as u32) << 16) | segments[7] as u32,
        ));
    }
    if segments[0] == 0x2002 {
        return forbidden_v4(Ipv4Addr::from(
            ((segments[1] as u32) << 16) | segments[2] as u32,
        ));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(Ipv4Addr::from(
            ((segments[6] as u32) << 16) | segments[7] as u32,
        ));
    }
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Some("a unique-local (private) address")
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
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
    video: &crate::domain::video::NewVideo,
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
