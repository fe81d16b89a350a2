//! The content-addressed blob store on disk, and fetching outputs by their reference.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use flownet_core::{BlobStore, Digest32, Error, OutputRef, Result, TaskId, crypto};

/// Blobs in a directory, each file named by its SHA-256; the delivery journal in
/// `deliveries/`. Writes go to a temporary file first and are renamed into place, so a
/// crash never leaves a partial blob under a valid name.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    dir: PathBuf,
}

impl FsBlobStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("deliveries"))
            .map_err(|e| Error::Blob(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `sha256` lives (whether or not it exists).
    pub fn path(&self, sha256: &Digest32) -> PathBuf {
        self.dir.join(sha256.to_hex())
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
        let sha = crypto::sha256(bytes);
        let path = self.path(&sha);
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
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
/// default shares one data dir), else over HTTP from the node's endpoint. Either way the
/// bytes must hash to the SHA-256 on the ledger.
pub fn fetch_output(output: &OutputRef, local: Option<&FsBlobStore>) -> Result<Vec<u8>> {
    if let Some(bytes) = local.map(|s| s.get(&output.sha256)).transpose()?.flatten() {
        return Ok(bytes);
    }
    if !output.uri.starts_with("http://") {
        return Err(Error::Network(format!(
            "cannot fetch {}: only http:// URIs are supported",
            output.uri
        )));
    }
    fetch_checked(&ureq::agent(), &output.uri, output, 64 * 1024 * 1024).map_err(|e| match e {
        FetchError::Http(e) => Error::Network(format!("GET {}: {e}", output.uri)),
        FetchError::Mismatch { got } => Error::Blob(format!(
            "{} served bytes with sha256 {got}, the ledger says {}",
            output.uri, output.sha256
        )),
    })
}

/// Why [`fetch_checked`] has no bytes.
#[derive(Debug)]
pub enum FetchError {
    /// The request failed or was not answered with 200 OK.
    Http(String),
    /// The bytes fetched hash to `got`, not to the output's SHA-256.
    Mismatch { got: Digest32 },
}

/// GETs `url` with `agent` (at most `limit` bytes) and checks the bytes against
/// `output`'s SHA-256: the one place an output is fetched over HTTP.
pub fn fetch_checked(
    agent: &ureq::Agent,
    url: &str,
    output: &OutputRef,
    limit: u64,
) -> std::result::Result<Vec<u8>, FetchError> {
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| FetchError::Http(e.to_string()))?;
    if response.status() != 200 {
        return Err(FetchError::Http(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    let bytes = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| FetchError::Http(e.to_string()))?;
    output
        .check(&bytes)
        .map_err(|got| FetchError::Mismatch { got })?;
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

    #[test]
    fn mime_sniffing() {
        assert_eq!(sniff_mime(b"\x89PNG\r\n\x1a\nxxxx"), "image/png");
        assert_eq!(sniff_mime(b"{\"a\":1}"), "application/json");
        assert_eq!(sniff_mime(&[0, 159, 146, 150]), "application/octet-stream");
    }
}
