//! One engine runtime per plugin configuration in this Envoy process, shared by every worker and by
//! every filter configuration that carries the same JSON: Envoy makes a new configuration when a
//! listener changes, and the new one takes over the runtime of the old (its policies, caches, budget
//! blocks, audit queue and control-plane link) instead of starting over.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use intentgate_core::engine::Runtime;
use intentgate_core::engine::settings::Reach;

use crate::background::{self, Link, LinkedHost};
use crate::stats::Pending;

/// A runtime and what the process keeps beside it.
pub struct Process {
    pub runtime: Runtime,
    /// Stats counted by the runtime, on their way to Envoy's main thread.
    pub stats: Pending,
    /// The control-plane client, with a control plane.
    pub link: Option<Link>,
}

impl Drop for Process {
    /// The last configuration using it is gone: write what waits (audit lines, budget blocks).
    fn drop(&mut self) {
        let _ = self.runtime.stop(&mut LinkedHost::unlinked());
    }
}

/// Runtimes by plugin configuration, while a configuration uses them.
static PROCESSES: LazyLock<Mutex<HashMap<Vec<u8>, Weak<Process>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Parses and compiles the configuration; refuses one this build cannot serve.
fn configure(config: &[u8]) -> Result<Runtime, String> {
    let runtime = Runtime::configure(config, &node_id(), seed(), &mut LinkedHost::unlinked())?;
    runtime.settings.check_reach(Reach::Address)?;
    Ok(runtime)
}

/// Checks a configuration without starting anything (Envoy's `--mode validate`).
pub fn validate(config: &[u8]) -> Result<(), String> {
    let runtime = configure(config)?;
    match &runtime.settings.control_plane {
        Some(control_plane) => background::check_link(control_plane),
        None => Ok(()),
    }
}

/// The runtime serving `config`: the one already running for it, or a new one, then ticked (and
/// linked to its control plane) on the background thread.
pub fn for_config(config: &[u8]) -> Result<Arc<Process>, String> {
    let mut processes = PROCESSES.lock().unwrap_or_else(PoisonError::into_inner);
    processes.retain(|_, process| process.strong_count() > 0);
    if let Some(process) = processes.get(config).and_then(Weak::upgrade) {
        return Ok(process);
    }
    let background = background::get()?;
    let runtime = configure(config)?;
    let link = runtime
        .settings
        .control_plane
        .as_ref()
        .map(|control_plane| Link::new(control_plane, background.handle()))
        .transpose()?;
    let process = Arc::new(Process {
        runtime,
        stats: Pending::default(),
        link,
    });
    processes.insert(config.to_vec(), Arc::downgrade(&process));
    background.tick(&process);
    Ok(process)
}

/// Names this Envoy to the control plane: the host's name (the pod's, in Kubernetes), as Envoy's
/// node id usually is.
fn node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "envoy".to_owned())
}

/// 32 bytes of the system's randomness, read once per runtime to seed its ids.
fn seed() -> [u8; 32] {
    let mut out = [0u8; 32];
    if getrandom::fill(&mut out).is_err() {
        // The kernel's randomness failing would be a host fault; the clock keeps runtimes apart.
        let t = crate::host::now_ns().to_le_bytes();
        for (i, b) in out.iter_mut().enumerate() {
            *b = t.get(i % t.len()).copied().unwrap_or(0) ^ (i as u8);
        }
    }
    out
}
