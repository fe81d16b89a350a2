//! Embeds the web page built by Vite (`web/dist`, made by `scripts/build-web.sh`) in the
//! binary, so `flownet web` serves it with no network and no files beside it. Without a
//! build, a page saying how to make one is embedded instead, so the Rust build never
//! needs Node.js.

use std::{fmt::Write as _, path::Path};

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest).join("../web/dist");
    // The directory is kept in git (dist/.gitkeep), so watching it never finds it
    // missing, which would rerun this script on every build.
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut code = String::from(
        "/// The page's files: path under `/`, then bytes.\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        let _ = writeln!(code, "    ({rel:?}, include_bytes!({abs:?})),");
    }
    code.push_str("];\n");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("web_assets.rs"), code).expect("writing web_assets.rs");
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            let abs = path.canonicalize().unwrap_or(path.clone());
            out.push((format!("/{rel}"), abs.to_string_lossy().into_owned()));
        }
    }
}
