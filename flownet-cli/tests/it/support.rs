use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

/// The models dir and ONNX Runtime the real-model tests need; `scripts/setup.sh`
/// prepares both and CI runs it first.
pub fn require_models() -> PathBuf {
    let models = std::env::var_os("FLOWNET_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    assert!(
        models.join("terrain-diffusion-128/model.onnx").exists()
            && std::env::var_os("ORT_DYLIB_PATH").is_some(),
        "the models or ONNX Runtime are missing: run `eval \"$(scripts/setup.sh)\"` first"
    );
    models
}

pub struct Flownet {
    pub dir: tempfile::TempDir,
    pub models: PathBuf,
    /// The embedded ledger's file when it is not this data dir's own.
    pub ledger: Option<PathBuf>,
}

impl Flownet {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            models: require_models(),
            ledger: None,
        }
    }

    /// Another data dir (another machine's keys and blob store) on this one's ledger
    /// file.
    pub fn sharing_ledger_of(other: &Flownet) -> Self {
        Self {
            ledger: Some(other.dir.path().join("ledger.db")),
            ..Self::new()
        }
    }

    /// Two "machines" on one ledger file, both initialised: a node (key `node`)
    /// registered as `name` with the offer `offer` (`model=price`) at a free loopback
    /// endpoint, and a user (key `alice`). Returns (node, user).
    pub fn node_and_user(name: &str, offer: &str) -> (Self, Self) {
        let node = Self::new();
        let user = Self::sharing_ledger_of(&node);
        node.json("node", &["init"]);
        user.json("alice", &["init"]);
        let endpoint = format!("http://127.0.0.1:{}", free_port());
        node.json(
            "node",
            &[
                "node",
                "register",
                "--name",
                name,
                "--endpoint",
                &endpoint,
                "--model",
                offer,
            ],
        );
        (node, user)
    }

    /// `flownet --key node node serve` on one thread, polling every 100 ms, until the
    /// handle drops.
    pub fn serve_node(&self) -> KillOnDrop {
        self.spawn(
            "node",
            &["node", "serve", "--interval-ms", "100", "--threads", "1"],
        )
    }

    pub fn cmd(&self, key: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flownet"));
        c.arg("--data-dir")
            .arg(self.dir.path())
            .arg("--key")
            .arg(key)
            .arg("--models-dir")
            .arg(&self.models);
        if let Some(ledger) = &self.ledger {
            c.arg("--ledger").arg(ledger);
        }
        c.env_remove("FLOWNET_HOME").env_remove("FLOWNET_KEY");
        c
    }

    /// Runs `flownet --key KEY ARGS…`.
    pub fn run(&self, key: &str, args: &[&str]) -> Output {
        self.cmd(key).args(args).output().unwrap()
    }

    /// Runs with `--json`, asserts success and parses stdout.
    pub fn json(&self, key: &str, args: &[&str]) -> serde_json::Value {
        let out = self.cmd(key).arg("--json").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "flownet {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs with `--json`, asserts failure and returns the error's kind and message.
    pub fn fails(&self, key: &str, args: &[&str]) -> (String, String) {
        let out = self.cmd(key).arg("--json").args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "flownet {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("an error is JSON on stdout with --json");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.starts_with("error: "), "{stderr}");
        (
            v["error"]["kind"].as_str().unwrap_or("").to_owned(),
            v["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    pub fn spawn(&self, key: &str, args: &[&str]) -> KillOnDrop {
        KillOnDrop(
            self.cmd(key)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        )
    }
}

/// A child process that is killed when the test ends, pass or fail.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port this process has not handed out before.
pub fn free_port() -> u16 {
    crate::loopback::free_ports::<1>()[0]
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    flownet_core::crypto::sha256(bytes).to_hex()
}
