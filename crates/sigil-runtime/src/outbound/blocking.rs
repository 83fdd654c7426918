//! Blocked networks: a worker reaches loopback, link-local, private and
//! other internal addresses only when its `allowed_outbound_hosts` names
//! such an address or host explicitly (`*` and `*.suffix` do not open
//! them), and never reaches Sigil's admin listener. Spin's
//! `blocked_networks` is the model.
//!
//! IP literals are checked per request ([`internal_kind`]); names are
//! checked where they are resolved, by a [`GuardedResolver`]. Each pool has
//! two clients: a request that an explicit entry of its own worker allowed
//! (that entry's scheme, host and port) goes through the one whose resolver
//! lets the pool's explicitly named hosts resolve to internal addresses;
//! every other request (allowed by `*` or `*.suffix`) goes through the one
//! that resolves to public addresses only.

use arc_swap::ArcSwap;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

/// What kind of internal address `ip` is, or `None` for a public one.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| embedded_v4(v6)) {
            Some(v4) => v4_kind(v4),
            None => v6_kind(v6),
        },
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata services live there)")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a carrier-grade NAT address")
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some("a multicast or broadcast address")
    } else {
        None
    }
}

/// The IPv4 address inside an IPv4-compatible (`::a.b.c.d`, deprecated but
/// still routed by some stacks) or NAT64 (`64:ff9b::a.b.c.d`) address: a
/// host with such a tunnel or translator reaches that IPv4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then_some(v4)
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a unique local (private) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// The addresses of Sigil's admin listener, never reachable from workers
/// (set once the listener is bound).
pub fn admin_addresses() -> &'static ArcSwap<Vec<SocketAddr>> {
    static ADMIN: OnceLock<ArcSwap<Vec<SocketAddr>>> = OnceLock::new();
    ADMIN.get_or_init(|| ArcSwap::from_pointee(Vec::new()))
}

/// Whether `ip:port` is (or may be) the admin listener: the same port on the
/// same address (IPv4-mapped IPv6 included), any loopback address for a
/// loopback listener, and any address at all for a listener bound to every
/// interface (this machine's public addresses reach it too).
pub fn is_admin(ip: IpAddr, port: u16) -> bool {
    is_one_of(&admin_addresses().load(), ip, port)
}

/// [`is_admin`] for the listener addresses `admins`.
fn is_one_of(admins: &[SocketAddr], ip: IpAddr, port: u16) -> bool {
    let ip = ip.to_canonical();
    admins.iter().any(|admin| {
        let admin_ip = admin.ip().to_canonical();
        admin.port() == port
            && (admin_ip == ip
                || admin_ip.is_unspecified()
                || (admin_ip.is_loopback() && ip.is_loopback()))
    })
}

/// Whether a request to a host *name* on `port` may reach the admin
/// listener: an `explicit` request's name may resolve to any address,
/// internal ones included; any other resolves to public addresses only,
/// which reach the listener when it is bound to every interface.
pub fn name_may_be_admin(port: u16, explicit: bool) -> bool {
    name_may_reach(&admin_addresses().load(), port, explicit)
}

/// [`name_may_be_admin`] for the listener addresses `admins`.
fn name_may_reach(admins: &[SocketAddr], port: u16, explicit: bool) -> bool {
    admins.iter().any(|admin| {
        admin.port() == port && (explicit || admin.ip().to_canonical().is_unspecified())
    })
}

/// A DNS resolver that drops internal addresses unless the name is in
/// `explicit` (lower case), and refuses a name left with no address.
#[derive(Debug)]
pub struct GuardedResolver {
    explicit: Arc<HashSet<String>>,
}

impl GuardedResolver {
    /// A resolver allowing internal addresses for `explicit` names only.
    pub fn new(explicit: Arc<HashSet<String>>) -> Self {
        GuardedResolver { explicit }
    }
}

impl GuardedResolver {
    /// The addresses of `host` (a name) this resolver lets a connection use,
    /// with `port`: internal ones only for explicitly allowed names.
    pub async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let trusted = self.explicit.contains(&host);
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .collect();
        let (kept, blocked): (Vec<SocketAddr>, Vec<SocketAddr>) = found
            .into_iter()
            .partition(|a| trusted || internal_kind(a.ip()).is_none());
        if kept.is_empty() {
            let why = blocked
                .first()
                .and_then(|a| internal_kind(a.ip()).map(|k| format!("{} is {k}", a.ip())))
                .unwrap_or_else(|| "no address".into());
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{host} resolves only to internal addresses ({why}); workers reach those only when allowed_outbound_hosts names the host explicitly (\"*\" does not)"
                ),
            ));
        }
        Ok(kept)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = GuardedResolver {
            explicit: self.explicit.clone(),
        };
        Box::pin(async move {
            let kept = resolver.lookup(name.as_str(), 0).await?;
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_listener_in_every_spelling() {
        // Before: `[::ffff:127.0.0.1]` passed for a loopback listener, and a
        // listener on 0.0.0.0 was reachable through a public address.
        let loopback: Vec<SocketAddr> = vec!["127.0.0.1:29190".parse().unwrap()];
        for ip in ["127.0.0.1", "127.0.0.2", "::ffff:127.0.0.1", "::1"] {
            assert!(is_one_of(&loopback, ip.parse().unwrap(), 29190), "{ip}");
        }
        assert!(!is_one_of(&loopback, "192.0.2.2".parse().unwrap(), 29190));
        assert!(!is_one_of(&loopback, "127.0.0.1".parse().unwrap(), 29191));
        assert!(!name_may_reach(&loopback, 29190, false));
        let everywhere: Vec<SocketAddr> = vec!["0.0.0.0:29190".parse().unwrap()];
        for ip in ["192.0.2.2", "::ffff:192.0.2.2", "10.0.0.1", "127.0.0.1"] {
            assert!(is_one_of(&everywhere, ip.parse().unwrap(), 29190), "{ip}");
        }
        assert!(name_may_reach(&everywhere, 29190, false));
        assert!(!name_may_reach(&everywhere, 29191, false));
    }

    #[test]
    fn internal_ranges() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            // Before: public. IPv4-compatible and NAT64 forms of internal
            // IPv4 addresses.
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::169.254.169.254",
        ] {
            let ip: IpAddr = internal.parse().unwrap();
            assert!(internal_kind(ip).is_some(), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(internal_kind(ip).is_none(), "{public}");
        }
    }
}
