//! The content-addressed blob store on disk, and fetching outputs by their reference.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use flownet_core::{
    BlobStore, Digest32, Endpoint, Error, OutputRef, Result, TaskId, crypto, endpoint::Scheme,
};

use crate::{
    fetch::{FETCH_TIMEOUT, FetchPolicy},
    ipfs::Ipfs,
};

/// Blobs in a directory, each file named by its SHA-256; the delivery journal in
/// `deliveries/`. Writes go to a temporary file first and are renamed into place, so a
/// crash never leaves a partial blob under a valid name.
///
/// With an IPFS node attached ([`FsBlobStore::with_ipfs`]) every blob of one block is
/// also added there, pinned, and [`fetch_output`] falls back to it.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    dir: PathBuf,
    ipfs: Option<Ipfs>,
}

impl FsBlobStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("deliveries"))
            .map_err(|e| Error::Blob(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Self { dir, ipfs: None })
    }

    /// This store, adding each blob it stores to `ipfs` too and reading from it what
    /// the disk lacks.
    pub fn with_ipfs(mut self, ipfs: Option<Ipfs>) -> Self {
        self.ipfs = ipfs;
        self
    }

    /// The IPFS node this store adds to, if any.
    pub fn ipfs(&self) -> Option<&Ipfs> {
        self.ipfs.as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The output from the attached IPFS node by its CID, within `within`: checked
    /// against its SHA-256 and size, and kept on disk (not added back to IPFS). `None`
    /// when no IPFS node is attached or the output has no CID (over one block).
    pub fn fetch_from_ipfs(
        &self,
        output: &OutputRef,
        within: std::time::Duration,
    ) -> Option<Result<Vec<u8>>> {
        let ipfs = self.ipfs.as_ref()?;
        output.cid()?;
        Some(
            ipfs.get_within(&output.sha256, output.size, within)
                .and_then(|bytes| {
                    if bytes.len() as u64 != output.size {
                        return Err(Error::Blob(format!(
                            "IPFS has sha256:{} with another size than the ledger's {} bytes; nothing was accepted",
                            output.sha256, output.size
                        )));
                    }
                    self.write_local(&bytes)?;
                    Ok(bytes)
                }),
        )
    }

    fn write_local(&self, bytes: &[u8]) -> Result<Digest32> {
        let sha = crypto::sha256(bytes);
        let path = self.path(&sha);
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
        }
        Ok(sha)
    }

    /// Where the blob `sha256` lives (whether or not it exists).
    pub fn path(&self, sha256: &Digest32) -> PathBuf {
        self.dir.join(sha256.to_hex())
    }

    /// Deletes the blob `sha256`, if there (a cache evicting what it fetched).
    pub fn remove(&self, sha256: &Digest32) -> Result<()> {
        match std::fs::remove_file(self.path(sha256)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Blob(format!("cannot remove blob {sha256}: {e}")))
            }
            _ => Ok(()),
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let err = |e: std::io::Error| Error::Blob(format!("cannot write {}: {e}", path.display()));
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, bytes: &[u8]) -> Result<Digest32> {
        let sha = self.write_local(bytes)?;
        // IPFS is a second home: the blob is kept and served here whatever it says.
        if let Some(ipfs) = &self.ipfs
            && bytes.len() as u64 <= flownet_core::cid::MAX_BLOCK_BYTES
        {
            match ipfs.add(bytes) {
                Ok(cid) => tracing::debug!("added sha256:{sha} to IPFS as {cid}"),
                Err(e) => tracing::warn!("sha256:{sha} is kept here but not on IPFS: {e}"),
            }
        }
        Ok(sha)
    }

    fn get(&self, sha256: &Digest32) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(sha256)) {
            // A blob whose bytes no longer match its name is treated as missing.
            Ok(bytes) if crypto::sha256(&bytes) == *sha256 => Ok(Some(bytes)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Blob(format!("cannot read blob {sha256}: {e}"))),
        }
    }

    fn record_delivery(&self, task: TaskId, output: &OutputRef) -> Result<()> {
        let json = serde_json::to_vec(output).map_err(|e| Error::Blob(e.to_string()))?;
        self.write_atomic(
            &self.dir.join("deliveries").join(format!("{task}.json")),
            &json,
        )
    }

    fn delivery(&self, task: TaskId) -> Result<Option<OutputRef>> {
        match std::fs::read(self.dir.join("deliveries").join(format!("{task}.json"))) {
            Ok(bytes) => {
                let output: OutputRef =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Blob(e.to_string()))?;
                // Trust the journal only while its blob is still there.
                Ok(self.get(&output.sha256)?.map(|_| output))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Blob(format!("cannot read delivery journal: {e}"))),
        }
    }
}

/// The bytes of a delivered output: from the local store when it has them (the embedded
/// default shares one data dir), else over HTTP from the node that wrote it, under
/// `policy` (see [`FetchPolicy::agent`]: no redirects, addresses checked after DNS, a
/// total timeout of [`FETCH_TIMEOUT`]). Only an output URI of the form
/// `<endpoint>/blobs/<its sha256>` is fetched, rebuilt from its parsed parts. Either way
/// the bytes must hash to the SHA-256 on the ledger, and no more than the size it states
/// is read.
pub fn fetch_output(
    output: &OutputRef,
    local: Option<&FsBlobStore>,
    policy: FetchPolicy,
) -> Result<Vec<u8>> {
    fetch_output_within(output, local, policy, FETCH_TIMEOUT)
}

/// [`fetch_output`] ending after `total` instead of [`FETCH_TIMEOUT`] (a caller's own
/// deadline). When `local` has an IPFS node attached and the holder does not deliver,
/// the output is read from IPFS by its CID, and checked the same way.
pub fn fetch_output_within(
    output: &OutputRef,
    local: Option<&FsBlobStore>,
    policy: FetchPolicy,
    total: std::time::Duration,
) -> Result<Vec<u8>> {
    if let Some(bytes) = local.map(|s| s.get(&output.sha256)).transpose()?.flatten() {
        return Ok(bytes);
    }
    let started = std::time::Instant::now();
    let from_holder = fetch_from_holder(output, policy, total);
    let Err(holder_error) = from_holder else {
        return from_holder;
    };
    // The caller's deadline bounds both routes together.
    let left = total.saturating_sub(started.elapsed());
    match local
        .filter(|_| !left.is_zero())
        .and_then(|s| s.fetch_from_ipfs(output, left))
    {
        None => Err(holder_error),
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) => Err(crate::ipfs::neither(&holder_error, &e)),
    }
}

/// The output from the node that wrote it, over HTTP.
fn fetch_from_holder(
    output: &OutputRef,
    policy: FetchPolicy,
    total: std::time::Duration,
) -> Result<Vec<u8>> {
    let not_delivered = || {
        Error::Network(format!(
            "the node did not deliver output sha256:{} (from {})",
            output.sha256, output.uri
        ))
    };
    let endpoint = Endpoint::of_blob_url(&output.uri, &output.sha256)
        .filter(|e| e.scheme() == Scheme::Http)
        .ok_or_else(|| {
            Error::Network(format!(
                "cannot fetch {}: only a node's http://…/blobs/<sha256> URL is fetched",
                output.uri
            ))
        })?;
    let url = endpoint.blob_url(&output.sha256);
    fetch_checked(&policy.agent(total), &url, output, MAX_OUTPUT_BYTES).map_err(|e| {
        tracing::debug!("fetching {url}: {e:?}");
        match e {
            // The requester's own check: say that the bytes were wrong (never what
            // they hashed to), so a cheating node is told from an absent one.
            FetchError::Mismatch => Error::Blob(format!(
                "the node did not deliver output sha256:{}: the bytes it served are not those (hash or size differs); nothing was accepted",
                output.sha256
            )),
            FetchError::Http(_) => not_delivered(),
        }
    })
}

/// Most bytes an output fetch reads, whatever size its reference states.
pub const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Why [`fetch_checked`] has no bytes.
#[derive(Debug)]
pub enum FetchError {
    /// The request failed or was not answered with 200 OK.
    Http(String),
    /// The bytes are not the output: they hash to something else, or there are more
    /// of them than the output's size (reading stopped there).
    Mismatch,
}

/// GETs `url` with `agent` and checks the bytes against `output` while reading them:
/// at most `output.size` bytes (and never more than `limit`) are read and hashed, and
/// the whole must hash to the output's SHA-256. The one place an output is fetched over
/// HTTP.
pub fn fetch_checked(
    agent: &ureq::Agent,
    url: &str,
    output: &OutputRef,
    limit: u64,
) -> std::result::Result<Vec<u8>, FetchError> {
    use sha2::Digest as _;
    use std::io::Read;
    if output.size > limit {
        return Err(FetchError::Http(format!(
            "the output is {} bytes, more than the {limit} fetched",
            output.size
        )));
    }
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| FetchError::Http(e.to_string()))?;
    if response.status() != 200 {
        return Err(FetchError::Http(format!("answered {}", response.status())));
    }
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .reader()
        .take(output.size.saturating_add(1));
    let mut bytes = Vec::with_capacity(output.size.min(1 << 20) as usize);
    let mut hasher = sha2::Sha256::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| FetchError::Http(e.to_string()))?;
        if n == 0 {
            break;
        }
        if (bytes.len() + n) as u64 > output.size {
            return Err(FetchError::Mismatch);
        }
        hasher.update(&buf[..n]);
        bytes.extend_from_slice(&buf[..n]);
    }
    if Digest32(hasher.finalize().into()) != output.sha256 {
        return Err(FetchError::Mismatch);
    }
    Ok(bytes)
}

/// The MIME type of a blob, guessed from its first bytes (blobs are stored without one).
pub use flownet_core::mime::sniff as sniff_mime;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed_and_checked_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let sha = store.put(b"hello").unwrap();
        assert_eq!(sha, crypto::sha256(b"hello"));
        assert_eq!(store.get(&sha).unwrap().unwrap(), b"hello");
        std::fs::write(store.path(&sha), b"tampered").unwrap();
        assert_eq!(store.get(&sha).unwrap(), None);
    }

    #[test]
    fn the_journal_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let sha = store.put(b"out").unwrap();
        let out = OutputRef {
            sha256: sha,
            uri: "http://n/blobs/x".into(),
            mime: "text/plain".into(),
            size: 3,
        };
        store.record_delivery(7, &out).unwrap();
        let again = FsBlobStore::open(dir.path()).unwrap();
        assert_eq!(again.delivery(7).unwrap(), Some(out));
        assert_eq!(again.delivery(8).unwrap(), None);
    }

    use std::{
        io::{Read, Write},
        net::{TcpListener, TcpStream},
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::{Duration, Instant},
    };

    /// A loopback server answering every connection with `answer`; counts connections.
    fn server(answer: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut head = [0u8; 4096];
                let _ = conn.read(&mut head);
                answer(&mut conn);
            }
        });
        (port, hits)
    }

    fn output_at(uri_base: &str, bytes: &[u8]) -> OutputRef {
        let sha256 = crypto::sha256(bytes);
        OutputRef {
            sha256,
            uri: format!("{uri_base}/blobs/{sha256}"),
            mime: "text/plain".into(),
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn an_output_fetch_follows_no_redirect_to_an_internal_service() {
        let (internal, internal_hits) = server(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret");
        });
        let (node, _) = server(move |c| {
            let _ = write!(
                c,
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{internal}/internal-secret\r\ncontent-length: 0\r\n\r\n"
            );
        });
        let out = output_at(&format!("http://127.0.0.1:{node}"), b"the output");
        let e = fetch_output(&out, None, FetchPolicy::LOOPBACK).unwrap_err();
        assert!(e.to_string().contains("the node did not deliver"), "{e}");
        assert!(!e.to_string().contains("302"), "{e}");
        assert_eq!(internal_hits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_output_uri_with_a_fragment_or_query_is_not_fetched() {
        let (internal, hits) = server(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        });
        for base in [
            format!("http://127.0.0.1:{internal}/internal-secret#"),
            format!("http://127.0.0.1:{internal}/admin/delete?confirm=yes&x="),
            format!("http://x@127.0.0.1:{internal}"),
        ] {
            let out = output_at(&base, b"x");
            assert!(
                fetch_output(&out, None, FetchPolicy::ANY).is_err(),
                "{base}"
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn loopback_is_refused_unless_allowed() {
        let (node, hits) = server(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        });
        let out = output_at(&format!("http://127.0.0.1:{node}"), b"hello");
        assert!(fetch_output(&out, None, FetchPolicy::PUBLIC).is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert_eq!(
            fetch_output(&out, None, FetchPolicy::LOOPBACK).unwrap(),
            b"hello"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_output_fetch_ends_at_its_deadline() {
        let (node, _) = server(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nh");
            std::thread::sleep(Duration::from_secs(20));
        });
        let out = output_at(&format!("http://127.0.0.1:{node}"), b"hello");
        let started = Instant::now();
        let e = fetch_output_within(&out, None, FetchPolicy::LOOPBACK, Duration::from_secs(1));
        assert!(e.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// A node sending 40 MiB of wrong bytes for a 10-byte output: reading stops after
    /// the stated size, so the node cannot write much more than the socket buffers.
    #[test]
    fn a_long_wrong_body_is_read_only_to_the_stated_size() {
        let written = Arc::new(AtomicUsize::new(0));
        let count = written.clone();
        let (node, _) = server(move |c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 41943040\r\n\r\n");
            let chunk = [b'x'; 64 * 1024];
            for _ in 0..640 {
                if c.write_all(&chunk).is_err() {
                    break;
                }
                count.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        });
        let out = output_at(&format!("http://127.0.0.1:{node}"), b"0123456789");
        let agent = FetchPolicy::LOOPBACK.agent(Duration::from_secs(10));
        let url = out.uri.clone();
        assert!(matches!(
            fetch_checked(&agent, &url, &out, MAX_OUTPUT_BYTES),
            Err(FetchError::Mismatch)
        ));
        drop(agent);
        std::thread::sleep(Duration::from_millis(500));
        let sent = written.load(Ordering::SeqCst);
        assert!(sent < 20 * 1024 * 1024, "the node wrote {sent} bytes");
    }

    #[test]
    fn mime_sniffing() {
        assert_eq!(sniff_mime(b"\x89PNG\r\n\x1a\nxxxx"), "image/png");
        assert_eq!(sniff_mime(b"{\"a\":1}"), "application/json");
        assert_eq!(sniff_mime(&[0, 159, 146, 150]), "application/octet-stream");
    }
}
