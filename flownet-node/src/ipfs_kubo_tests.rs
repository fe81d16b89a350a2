//! The IPFS blob route against the real thing: kubo daemons on loopback (no bootstrap
//! peers, every port on 127.0.0.1), started here from the binary `FLOWNET_KUBO` names
//! (`scripts/build-kubo.sh` builds it; `scripts/test.sh` sets it and
//! `FLOWNET_REQUIRE_KUBO=1`, so CI cannot skip these).

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flownet_core::{BlobStore, InputFetcher, InputRef, OutputRef, crypto};

use super::Ipfs;
use crate::{FetchPolicy, FsBlobStore, HttpFetcher, fetch_output};

/// The kubo binary, or `None` (with the reason printed) when these tests may skip.
fn kubo_binary() -> Option<PathBuf> {
    match std::env::var_os("FLOWNET_KUBO") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            assert!(
                std::env::var_os("FLOWNET_REQUIRE_KUBO").is_none(),
                "FLOWNET_REQUIRE_KUBO is set but FLOWNET_KUBO names no kubo binary"
            );
            eprintln!("skipped: set FLOWNET_KUBO=$(scripts/build-kubo.sh) to run the IPFS tests");
            None
        }
    }
}

/// A kubo daemon with its own repo, killed when dropped.
struct Kubo {
    child: Child,
    _repo: tempfile::TempDir,
    api: String,
}

impl Kubo {
    fn start(bin: &PathBuf) -> Self {
        let repo = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new(bin)
                .args(args)
                .env("IPFS_PATH", repo.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "ipfs {args:?}: {out:?}");
        };
        // The test profile: API, gateway and swarm on 127.0.0.1 with free ports, no
        // bootstrap peers, no MDNS.
        run(&["init", "--profile", "test"]);
        let child = Command::new(bin)
            .args(["daemon", "--offline=false"])
            .env("IPFS_PATH", repo.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let api = loop {
            if let Ok(addr) = std::fs::read_to_string(repo.path().join("api"))
                && let Ok(ipfs) = Ipfs::new(addr.trim())
                && post(&ipfs.api(), "id").is_ok()
            {
                break ipfs.api();
            }
            assert!(Instant::now() < deadline, "kubo did not start");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(api.starts_with("http://127.0.0.1:"), "{api}");
        Self {
            child,
            _repo: repo,
            api,
        }
    }

    fn ipfs(&self) -> Ipfs {
        Ipfs::with_timeout(&self.api, Duration::from_secs(20)).unwrap()
    }

    /// Dials `other` over loopback, as two machines' IPFS nodes find each other.
    fn connect(&self, other: &Kubo) {
        let id: serde_json::Value = serde_json::from_str(&post(&other.api, "id").unwrap()).unwrap();
        let addr = id["Addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .expect("a loopback swarm address")
            .to_owned();
        post(&self.api, &format!("swarm/connect?arg={addr}")).unwrap();
    }
}

impl Drop for Kubo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(api: &str, command: &str) -> Result<String, String> {
    let mut r = ureq::post(&format!("{api}/api/v0/{command}"))
        .send_empty()
        .map_err(|e| e.to_string())?;
    r.body_mut().read_to_string().map_err(|e| e.to_string())
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bytes_of(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn an_output_outlives_its_node_through_ipfs_and_its_hash_checks() {
    let Some(bin) = kubo_binary() else { return };
    let (here, there) = (Kubo::start(&bin), Kubo::start(&bin));
    there.connect(&here);

    // The node stores its output, which adds it to its IPFS node, pinned.
    let node_dir = tempfile::tempdir().unwrap();
    let node_store = FsBlobStore::open(node_dir.path().join("blobs"))
        .unwrap()
        .with_ipfs(Some(here.ipfs()));
    let bytes = bytes_of(300_000, 7);
    let sha = node_store.put(&bytes).unwrap();
    let output = OutputRef {
        sha256: sha,
        uri: format!("http://127.0.0.1:{}/blobs/{sha}", dead_port()),
        mime: "application/octet-stream".into(),
        size: bytes.len() as u64,
    };
    let cid = output.cid().unwrap();
    let pins = post(&here.api, &format!("pin/ls?arg={cid}")).unwrap();
    assert!(pins.contains(&cid), "{pins}");

    // The node goes away with its blob store; a requester on another machine, whose
    // IPFS node knows the first only as a peer, still gets the output, and checks it.
    drop(node_store);
    drop(node_dir);
    let requester_dir = tempfile::tempdir().unwrap();
    let requester = FsBlobStore::open(requester_dir.path())
        .unwrap()
        .with_ipfs(Some(there.ipfs()));
    let got = fetch_output(&output, Some(&requester), FetchPolicy::LOOPBACK).unwrap();
    assert_eq!(got, bytes);
    assert_eq!(
        requester.get(&sha).unwrap(),
        Some(bytes.clone()),
        "kept once checked"
    );

    // A node fetches an input the same way when its holder is gone.
    let input_bytes = bytes_of(4_000, 9);
    let input_sha = FsBlobStore::open(tempfile::tempdir().unwrap().path())
        .unwrap()
        .with_ipfs(Some(here.ipfs()))
        .put(&input_bytes)
        .unwrap();
    let input = InputRef {
        sha256: input_sha,
        size: input_bytes.len() as u64,
        uri: format!("http://127.0.0.1:{}/api/blobs/{input_sha}", dead_port()),
    };
    let fetcher = HttpFetcher::new(FetchPolicy::LOOPBACK).with_ipfs(Some(there.ipfs()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(fetcher.fetch(&input, 1 << 20)).unwrap(),
        input_bytes
    );

    // What no one holds is a clear error naming both routes, within the timeout.
    let absent_sha = crypto::sha256(b"no one has this");
    let absent = OutputRef {
        sha256: absent_sha,
        size: 15,
        uri: format!("http://127.0.0.1:{}/blobs/{absent_sha}", dead_port()),
        ..output.clone()
    };
    let quick = FsBlobStore::open(tempfile::tempdir().unwrap().path())
        .unwrap()
        .with_ipfs(Some(
            Ipfs::with_timeout(&there.api, Duration::from_secs(1)).unwrap(),
        ));
    let e = fetch_output(&absent, Some(&quick), FetchPolicy::LOOPBACK)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the node did not deliver") && e.contains("does not give bafkrei"),
        "{e}"
    );

    // A caller's deadline bounds the IPFS route too, not only the holder's: a 2 s wait
    // ends long before the IPFS client's own 30 s.
    let patient = FsBlobStore::open(tempfile::tempdir().unwrap().path())
        .unwrap()
        .with_ipfs(Some(Ipfs::new(&there.api).unwrap()));
    let started = Instant::now();
    let waited = crate::fetch_output_within(
        &absent,
        Some(&patient),
        FetchPolicy::LOOPBACK,
        Duration::from_secs(2),
    );
    assert!(waited.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// An HTTP server on loopback that answers every request with `body`.
fn garbage_server(body: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn an_ipfs_node_that_answers_garbage_or_is_down_loses_nothing() {
    for api in [
        garbage_server(
            b"{\"Key\":\"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku\"}",
        ),
        format!("http://127.0.0.1:{}", dead_port()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ipfs = Ipfs::with_timeout(&api, Duration::from_secs(2)).unwrap();
        let store = FsBlobStore::open(dir.path())
            .unwrap()
            .with_ipfs(Some(ipfs.clone()));
        // The blob is kept here whatever IPFS says; the add itself says why it failed.
        let sha = store.put(b"kept").unwrap();
        assert_eq!(store.get(&sha).unwrap().as_deref(), Some(&b"kept"[..]));
        let e = ipfs.add(b"kept").unwrap_err().to_string();
        assert!(e.contains(&format!("IPFS at {api}")), "{e}");
        // A read through it is refused: garbage never passes the hash check.
        let output = OutputRef {
            sha256: crypto::sha256(b"wanted"),
            uri: format!("http://127.0.0.1:{}/blobs/x", dead_port()),
            mime: "text/plain".into(),
            size: 6,
        };
        let e = fetch_output(&output, Some(&store), FetchPolicy::LOOPBACK)
            .unwrap_err()
            .to_string();
        assert!(e.contains("IPFS at"), "{e}");
        assert_eq!(store.get(&output.sha256).unwrap(), None, "nothing was kept");
    }
}
