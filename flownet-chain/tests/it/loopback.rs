//! What every test harness that starts a server needs: ports that cannot
//! collide, and proof that the server listens on loopback only. Shared by the
//! chain's and the CLI's emulator harnesses (the CLI includes this file by path).

use std::{collections::HashSet, net::TcpListener, sync::Mutex};

/// Ports this process has handed out: never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `N` distinct free loopback ports. Every socket stays bound until all `N` are
/// chosen (so the kernel cannot give the same port twice), and a port this
/// process handed out before is never handed out again.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    let mut held = Vec::new();
    let mut ports = Vec::with_capacity(N);
    while ports.len() < N {
        let l = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = l.local_addr().unwrap().port();
        if handed.insert(port) {
            ports.push(port);
        }
        held.push(l);
    }
    drop(held);
    ports.try_into().unwrap()
}

/// The TCP sockets process `pid` listens on in this process's network namespace
/// (whatever namespace `pid` itself has moved to since), as (address, port).
pub fn listeners(pid: u32) -> Vec<(std::net::IpAddr, u16)> {
    let mut inodes = HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/self/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let Some((addr, port)) = f[1].split_once(':') else {
                continue;
            };
            let port = u16::from_str_radix(port, 16).unwrap();
            out.push((parse_proc_addr(addr), port));
        }
    }
    out
}

/// /proc/net's address: 32-bit words in host (little-endian) order.
fn parse_proc_addr(hex: &str) -> std::net::IpAddr {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).unwrap())
        .collect();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    match bytes.len() {
        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap()),
        _ => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap());
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.into(),
                None => v6.into(),
            }
        }
    }
}

/// `pid` and every process below it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // The parent is the 4th field, after the parenthesised command name.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            if let Some((_, rest)) = stat.rsplit_once(')')
                && let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok())
            {
                parents.push((p, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let at = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == at).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

/// Whether `pid` lives in a network namespace other than this process's that has
/// no interface but its own loopback: nothing it listens on is reachable from here
/// or from anywhere else.
pub fn in_isolated_netns(pid: u32) -> bool {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net")).ok();
    if ns(&pid.to_string()).is_none() || ns(&pid.to_string()) == ns("self") {
        return false;
    }
    let Ok(dev) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return false;
    };
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .all(|name| name.trim() == "lo")
}

/// Fails unless every TCP socket that `pid` or a process below it listens on is
/// bound to a loopback address, or sits in an isolated network namespace (how
/// `scripts/flow-emulator-netns.py` runs the emulator, whose debugger binds every
/// interface); and at least `expect_at_least` loopback sockets are reachable here.
pub fn assert_listens_only_on_loopback(pid: u32, what: &str, expect_at_least: usize) {
    let ours = std::fs::read_link("/proc/self/ns/net").ok();
    let mut reachable = Vec::new();
    for p in process_tree(pid) {
        let theirs = std::fs::read_link(format!("/proc/{p}/ns/net")).ok();
        assert!(
            theirs == ours || in_isolated_netns(p),
            "{what} (pid {p}) runs in a network namespace with interfaces beyond loopback"
        );
        for (addr, port) in listeners(p) {
            assert!(
                addr.is_loopback(),
                "{what} (pid {p}) listens on {addr}:{port}, beyond loopback"
            );
            reachable.push((addr, port));
        }
    }
    assert!(
        reachable.len() >= expect_at_least,
        "{what} (pid {pid}) listens on {} loopback sockets, expected at least {expect_at_least}: {reachable:?}",
        reachable.len()
    );
}

/// The command that starts the Flow emulator `binary` with `args`: inside a
/// network namespace of its own, its gRPC, REST and admin ports forwarded from
/// 127.0.0.1 by `scripts/flow-emulator-netns.py` (see there why).
// Used by the harnesses behind the `flow` feature.
#[allow(dead_code)]
pub fn emulator_command(binary: &std::path::Path, args: &[String]) -> std::process::Command {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/flow-emulator-netns.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script).arg(binary);
    // The Flow CLI runs the emulator as a subcommand.
    if binary.file_name().is_some_and(|n| n == "flow") {
        cmd.arg("emulator");
    }
    cmd.args(args);
    cmd
}

#[test]
fn proc_addresses_parse() {
    assert_eq!(
        parse_proc_addr("0100007F"),
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        parse_proc_addr("00000000000000000000000001000000"),
        "::1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        parse_proc_addr("0000000000000000FFFF00000100007F"),
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert!(!parse_proc_addr("00000000").is_loopback());
}

#[test]
fn this_process_listening_on_loopback_is_seen_and_passes() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let found = listeners(std::process::id());
    assert!(found.iter().any(|(a, p)| *p == port && a.is_loopback()));
    let [a, b, c] = free_ports::<3>();
    assert!(a != b && b != c && a != c);
    assert!(process_tree(std::process::id()).contains(&std::process::id()));
    assert!(!in_isolated_netns(std::process::id()));
    assert_listens_only_on_loopback(std::process::id(), "this test", 1);
}
