//! A node's endpoint as a parsed URL: a scheme (`http` or `https`), a host, a port and
//! at most a path prefix — never user info, a query or a fragment. The ledger applies
//! [`Endpoint::parse`] when a node registers or updates (the Cadence contract's
//! `isValidEndpoint` is the same character rule), and every reader builds the URLs it
//! fetches from the parsed parts ([`Endpoint::blob_url`], [`Endpoint::stream_url`]), so
//! a node cannot make a reader request a path or query of its choosing by the shape of
//! its endpoint string.

use std::{fmt, net::Ipv6Addr};

use crate::{Digest32, Error, Result, TaskId, rules::MAX_ENDPOINT_BYTES};

/// The scheme of an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// A parsed node endpoint (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    /// A DNS name, an IPv4 address, or an IPv6 address without its brackets.
    host: String,
    port: Option<u16>,
    /// The path prefix's segments (none for a bare `http://host:port`).
    path: Vec<String>,
}

/// The bytes an endpoint may hold after its scheme: ASCII letters and digits and
/// `-._~%/:[]`. No whitespace, controls, `?`, `#`, `@` or `\`. The Cadence contract's
/// `isValidEndpoint` checks the same set.
fn allowed_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%/:[]".contains(&b)
}

/// One message for every way an endpoint is wrong, worded as the Cadence contract's
/// pre-condition (`why` is for the reader of this code).
fn invalid(_why: &str) -> Error {
    Error::InvalidInput(format!(
        "endpoint must be an http:// or https:// URL of at most {MAX_ENDPOINT_BYTES} bytes: a host, an optional port and path, no user info, query or fragment"
    ))
}

impl Endpoint {
    /// Parses and checks an endpoint: the one rule of what a node may register.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() > MAX_ENDPOINT_BYTES {
            return Err(invalid("too long"));
        }
        let (scheme, rest) = if let Some(rest) = s.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = s.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err(invalid("the scheme is not http:// or https://"));
        };
        if !rest.bytes().all(allowed_byte) {
            return Err(invalid(
                "only letters, digits and -._~%/:[] may follow the scheme",
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (v6, after) = inner
                .split_once(']')
                .ok_or_else(|| invalid("an IPv6 host needs its closing ]"))?;
            v6.parse::<Ipv6Addr>()
                .map_err(|_| invalid("the host in [] is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| invalid("only :port may follow the IPv6 host"))?,
                ),
            };
            (v6, port)
        } else {
            if authority.contains(['[', ']']) {
                return Err(invalid("[ and ] only enclose an IPv6 host"));
            }
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        if !authority.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(invalid("the host has characters a host name cannot have"));
        }
        let port = port
            .map(|p| {
                (!p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse::<u16>().ok())
                    .flatten()
                    .ok_or_else(|| invalid("the port is not a number from 0 to 65535"))
            })
            .transpose()?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut segments = Vec::new();
        if !path.is_empty() {
            for seg in path[1..].split('/') {
                if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['[', ']', ':']) {
                    return Err(invalid(
                        "the path has an empty, . or .. segment, or one with [ ] or :",
                    ));
                }
                segments.push(seg.to_owned());
            }
        }
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path: segments,
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host: a DNS name, an IPv4 address, or an IPv6 address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// `host:port` as a socket address is written (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port())
        } else {
            format!("{}:{}", self.host, self.port())
        }
    }

    /// The URL of the path prefix followed by `segments`, each of which must be a
    /// plain segment (letters, digits, `-._~`); `None` otherwise. This is how every
    /// URL under an endpoint is built.
    pub fn url(&self, segments: &[&str]) -> Option<String> {
        let plain = |s: &&str| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        };
        if !segments.iter().all(plain) {
            return None;
        }
        // The port only when the endpoint names one, so URLs read as registered.
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut url = match self.port {
            Some(port) => format!("{}://{host}:{port}", self.scheme.as_str()),
            None => format!("{}://{host}", self.scheme.as_str()),
        };
        for s in self
            .path
            .iter()
            .map(String::as_str)
            .chain(segments.iter().copied())
        {
            url.push('/');
            url.push_str(s);
        }
        Some(url)
    }

    /// Where this endpoint's node serves the blob `sha256`: `<endpoint>/blobs/<hex>`.
    pub fn blob_url(&self, sha256: &Digest32) -> String {
        let hex = sha256.to_hex();
        self.url(&["blobs", &hex]).unwrap_or_default()
    }

    /// Where this endpoint's node streams task `task`: `<endpoint>/tasks/<id>/stream`.
    pub fn stream_url(&self, task: TaskId) -> String {
        let id = task.to_string();
        self.url(&["tasks", &id, "stream"]).unwrap_or_default()
    }

    /// Whether `uri` is exactly the blob URL of `sha256` under this endpoint.
    pub fn is_blob_url(&self, uri: &str, sha256: &Digest32) -> bool {
        uri == self.blob_url(sha256)
    }

    /// The endpoint and blob of an output URI of the form `<endpoint>/blobs/<sha256>`:
    /// how a reader holding only the output's reference checks where it points.
    pub fn of_blob_url(uri: &str, sha256: &Digest32) -> Option<Self> {
        let hex = sha256.to_hex();
        let base = uri.strip_suffix(&hex)?.strip_suffix("/blobs/")?;
        let endpoint = Self::parse(base).ok()?;
        endpoint.is_blob_url(uri, sha256).then_some(endpoint)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url(&[]).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_with_queries_fragments_or_user_info_are_refused() {
        for bad in [
            "http://127.0.0.1:9000/internal-secret#",
            "http://127.0.0.1:9000/admin/delete?confirm=yes&x=",
            "http://user:pass@127.0.0.1:9000",
            "http://evil@127.0.0.1",
            "ftp://h",
            "http://",
            "http://:80",
            "http://h:65536",
            "http://h:8a",
            "http://h /x",
            "http://h\t",
            "http://h/a/../b",
            "http://h//b",
            "http://h\\@other",
            "http://[::1",
            "http://[zz::1]:80",
            "http://h]:80",
            "http://h:80:81",
            "http://h/é",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert!(Endpoint::parse(&format!("http://h/{}", "a".repeat(MAX_ENDPOINT_BYTES))).is_err());
    }

    #[test]
    fn urls_are_built_from_the_parts() {
        let e = Endpoint::parse("http://Node.Example:7070/prefix/").unwrap();
        assert_eq!(e.host(), "node.example");
        assert_eq!(e.port(), 7070);
        let sha = Digest32([0xab; 32]);
        let url = e.blob_url(&sha);
        assert_eq!(url, format!("http://node.example:7070/prefix/blobs/{sha}"));
        assert_eq!(Endpoint::of_blob_url(&url, &sha), Some(e.clone()));
        assert_eq!(Endpoint::of_blob_url(&format!("{url}?x"), &sha), None);
        assert_eq!(
            e.stream_url(5),
            "http://node.example:7070/prefix/tasks/5/stream"
        );
        assert_eq!(e.url(&["a?b"]), None);
        assert_eq!(e.url(&[".."]), None);
        let v6 = Endpoint::parse("https://[::1]").unwrap();
        assert_eq!(v6.authority(), "[::1]:443");
        assert_eq!(v6.to_string(), "https://[::1]");
        assert_eq!(Endpoint::parse("http://127.0.0.1:0").unwrap().port(), 0);
        assert!(Endpoint::parse("http://127.0.0.1:7070").is_ok());
    }
}
