//! Fetching a task's input from the holder its requester named: plain HTTP, no
//! redirects, a total timeout, a size limit, and an address policy checked after the
//! host name resolves, so a requester cannot point a node at its own private network.
//! The worker checks the bytes against the ledger's SHA-256 and size.

use std::{net::IpAddr, time::Duration};

use async_trait::async_trait;
use flownet_core::{Error, InputFetcher, InputRef, Result};

use crate::ipfs::Ipfs;

/// Which addresses a node may fetch inputs from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Loopback (127.0.0.0/8, ::1): a node and its requesters on one machine (the
    /// embedded default, tests).
    pub allow_loopback: bool,
    /// Private, link-local, shared and unique-local ranges (10/8, 172.16/12,
    /// 192.168/16, 169.254/16 with the cloud metadata address, 100.64/10, fc00::/7,
    /// fe80::/10): a node inside a private network.
    pub allow_private: bool,
}

impl FetchPolicy {
    /// Public addresses only: the default of every client that fetches from a node or
    /// a requester it does not control.
    pub const PUBLIC: Self = Self {
        allow_loopback: false,
        allow_private: false,
    };
    /// Public and loopback addresses: everything on one machine (the embedded
    /// single-machine default, tests).
    pub const LOOPBACK: Self = Self {
        allow_loopback: true,
        allow_private: false,
    };
    /// Every unicast address: an operator's own private network.
    pub const ANY: Self = Self {
        allow_loopback: true,
        allow_private: true,
    };

    /// The policy a node with `endpoint` gets by default: a node reached on loopback
    /// (one machine) fetches from loopback, one reached on a private address from its
    /// private network; a public node from public addresses only.
    pub fn for_endpoint(endpoint: &str) -> Self {
        let host = flownet_core::Endpoint::parse(endpoint).ok().and_then(|e| {
            if e.host() == "localhost" {
                Some(IpAddr::from([127, 0, 0, 1]))
            } else {
                e.host().parse::<IpAddr>().ok()
            }
        });
        let strict = Self::default();
        match host {
            Some(ip) if ip.is_loopback() => Self::LOOPBACK,
            Some(ip) if !strict.allows(ip) => Self {
                allow_loopback: false,
                allow_private: true,
            },
            _ => strict,
        }
    }

    /// An HTTP client under this policy: every address a host name resolves to is
    /// checked before it connects (so a name cannot resolve to one address for the
    /// check and another for the connection), no redirect is followed, no proxy from
    /// the environment is used, and the whole request, body included, ends after
    /// `total`.
    pub fn agent(self, total: Duration) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(total))
            .timeout_connect(Some(total.min(Duration::from_secs(5))))
            .max_redirects(0)
            .proxy(None)
            .http_status_as_error(false)
            .build();
        ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            CheckedResolver { policy: self },
        )
    }

    /// Whether a fetch may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_unspecified() || ip.is_multicast() {
            return false;
        }
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        let private = match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                v4.is_private()
                    || v4.is_link_local()
                    || v4.is_broadcast()
                    || (a == 100 && (64..128).contains(&b))
                    || a == 0
                    || a >= 240
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
            }
        };
        !private || self.allow_private
    }
}

/// The most a fetch may take, from connecting to the last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves host names as ureq does, then refuses the connection when any address is
/// one its [`FetchPolicy`] does not allow.
#[derive(Debug)]
struct CheckedResolver {
    policy: FetchPolicy,
}

/// A host resolved to an address the policy does not allow.
#[derive(Debug)]
pub struct AddressRefused(pub IpAddr);

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is an address this client does not fetch from",
            self.0
        )
    }
}

impl std::error::Error for AddressRefused {}

impl ureq::unversioned::resolver::Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> std::result::Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let addrs = ureq::unversioned::resolver::DefaultResolver::default()
            .resolve(uri, config, timeout)?;
        if let Some(refused) = addrs.iter().find(|a| !self.policy.allows(a.ip())) {
            return Err(ureq::Error::Other(Box::new(AddressRefused(refused.ip()))));
        }
        Ok(addrs)
    }
}

/// Fetches inputs over `http://` under a [`FetchPolicy`] and, with an IPFS node
/// attached, from IPFS by their CID when the holder does not deliver.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    agent: ureq::Agent,
    ipfs: Option<Ipfs>,
}

impl HttpFetcher {
    pub fn new(policy: FetchPolicy) -> Self {
        Self {
            agent: policy.agent(FETCH_TIMEOUT),
            ipfs: None,
        }
    }

    /// This fetcher, falling back to `ipfs`.
    pub fn with_ipfs(mut self, ipfs: Option<Ipfs>) -> Self {
        self.ipfs = ipfs;
        self
    }

    fn fetch_input(&self, input: &InputRef, max_bytes: u64) -> Result<Vec<u8>> {
        let holder = self.fetch_blocking(&input.uri, max_bytes);
        match (&self.ipfs, holder) {
            (Some(ipfs), Err(e)) if input.cid().is_some() => ipfs
                .get(&input.sha256, max_bytes)
                .map_err(|ipfs_error| crate::ipfs::neither(&e, &ipfs_error)),
            (_, holder) => holder,
        }
    }

    fn fetch_blocking(&self, uri: &str, max_bytes: u64) -> Result<Vec<u8>> {
        let fail = |why: String| Error::Network(format!("cannot fetch the input {uri}: {why}"));
        host_port(uri).map_err(fail)?;
        let mut response = self
            .agent
            .get(uri)
            .call()
            .map_err(|e| fail(e.to_string()))?;
        if response.status() != 200 {
            return Err(fail(format!("the holder answered {}", response.status())));
        }
        read_limited(response.body_mut(), max_bytes).map_err(fail)
    }
}

/// Reads a body of at most `max_bytes`, failing as soon as it is longer: never more
/// than `max_bytes + 1` bytes are held.
pub fn read_limited(body: &mut ureq::Body, max_bytes: u64) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(max_bytes.min(1 << 20) as usize);
    body.with_config()
        .limit(u64::MAX)
        .reader()
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("the body is longer than {max_bytes} bytes"));
    }
    Ok(bytes)
}

#[async_trait]
impl InputFetcher for HttpFetcher {
    async fn fetch(&self, input: &InputRef, max_bytes: u64) -> Result<Vec<u8>> {
        let (this, input) = (self.clone(), input.clone());
        tokio::task::spawn_blocking(move || this.fetch_input(&input, max_bytes))
            .await
            .map_err(|e| Error::Network(format!("the input fetch stopped: {e}")))?
    }
}

/// The `host:port` of an `http://` URL with no user info.
fn host_port(uri: &str) -> std::result::Result<String, String> {
    let rest = uri
        .strip_prefix("http://")
        .ok_or("only http:// inputs can be fetched by this node")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err("the URL needs a host and no user info".into());
    }
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    Ok(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(uri: &str) -> InputRef {
        InputRef {
            sha256: flownet_core::crypto::sha256(b"x"),
            size: 1,
            uri: uri.into(),
        }
    }

    #[test]
    fn the_policy_refuses_private_addresses_unless_allowed() {
        let strict = FetchPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.20.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!strict.allows(ip.parse().unwrap()), "{ip}");
        }
        assert!(strict.allows("93.184.216.34".parse().unwrap()));
        assert!(strict.allows("2606:4700::1".parse().unwrap()));
        let loopback = FetchPolicy {
            allow_loopback: true,
            ..FetchPolicy::default()
        };
        assert!(loopback.allows("127.0.0.1".parse().unwrap()));
        assert!(!loopback.allows("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn the_default_policy_follows_the_nodes_endpoint() {
        let local = FetchPolicy::for_endpoint("http://127.0.0.1:7070");
        assert!(local.allow_loopback && !local.allow_private);
        assert!(FetchPolicy::for_endpoint("http://localhost:7070").allow_loopback);
        let lan = FetchPolicy::for_endpoint("http://192.168.1.5:7070");
        assert!(!lan.allow_loopback && lan.allow_private);
        assert_eq!(
            FetchPolicy::for_endpoint("http://node.example.com"),
            FetchPolicy::default()
        );
    }

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(host_port("http://a.b/x").unwrap(), "a.b:80");
        assert_eq!(
            host_port("http://127.0.0.1:9/blobs/x").unwrap(),
            "127.0.0.1:9"
        );
        assert_eq!(host_port("http://[::1]:8080/x").unwrap(), "[::1]:8080");
        assert_eq!(host_port("http://[::1]/x").unwrap(), "[::1]:80");
        assert!(host_port("http://u:p@h/x").is_err());
        assert!(host_port("https://h/x").is_err());
    }

    #[tokio::test]
    async fn a_private_holder_is_refused_before_any_request() {
        let fetcher = HttpFetcher::new(FetchPolicy::default());
        let e = fetcher
            .fetch(&input("http://127.0.0.1:9/blobs/x"), 10)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("does not fetch from"), "{e}");
    }

    /// A host name is checked after it resolves: `localhost` is loopback.
    #[tokio::test]
    async fn names_are_checked_after_they_resolve() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fetcher = HttpFetcher::new(FetchPolicy::PUBLIC);
        let e = fetcher
            .fetch(&input(&format!("http://localhost:{port}/blobs/x")), 10)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("does not fetch from"), "{e}");
    }
}
