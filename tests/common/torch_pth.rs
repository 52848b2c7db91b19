//! Writes PyTorch state dicts (`.pth`) with the Python torch that LibTorch was installed
//! from (scripts/setup-libtorch.sh), so the tests load files PyTorch itself made.

use std::path::Path;
use std::process::Command;

use mednist::learn::device::DeviceChoice;
use mednist::model::{Arch, NamedTensor, ResNet, named_tensors};

use super::python::python;

/// One tensor of the state dict: every element is `fill`.
pub struct Entry {
    pub key: String,
    pub shape: Vec<usize>,
    pub fill: f32,
    /// Stored as int64 (like `num_batches_tracked`) instead of float32.
    pub integer: bool,
}

/// Saves `entries` with `torch.save` as an ordered state dict at `path`.
pub fn write_state_dict(path: &Path, entries: &[Entry]) {
    let manifest: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::json!({ "key": e.key, "shape": e.shape, "fill": e.fill, "integer": e.integer }))
        .collect();
    let manifest_path = path.with_extension("json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let script = r#"
import collections, json, sys, torch
entries = json.load(open(sys.argv[1]))
state = collections.OrderedDict()
for e in entries:
    dtype = torch.int64 if e["integer"] else torch.float32
    state[e["key"]] = torch.full(e["shape"], e["fill"], dtype=dtype)
torch.save(state, sys.argv[2])
"#;
    let output = Command::new(python()).arg("-c").arg(script).arg(&manifest_path).arg(path).output().unwrap();
    assert!(output.status.success(), "torch.save failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A torchvision-style state dict for `arch`'s body (each tensor filled with its own
/// value), ImageNet's `fc` and BatchNorm's `num_batches_tracked` counters.
pub fn torchvision_entries(arch: Arch) -> Vec<Entry> {
    let body = ResNet::new(arch, &DeviceChoice::Cpu.resolve().unwrap().0);
    let mut entries: Vec<Entry> = named_tensors(&body)
        .iter()
        .enumerate()
        .map(|(index, tensor)| Entry {
            key: torchvision_key(tensor),
            shape: tensor.shape.clone(),
            fill: (index + 1) as f32 * 1e-3,
            integer: false,
        })
        .collect();
    let counters: Vec<String> = entries
        .iter()
        .filter_map(|e| e.key.strip_suffix(".running_mean").map(|module| format!("{module}.num_batches_tracked")))
        .collect();
    entries.extend(counters.into_iter().map(|key| Entry { key, shape: vec![], fill: 7.0, integer: true }));
    entries.push(Entry { key: "fc.weight".into(), shape: vec![1000, 512], fill: 0.5, integer: false });
    entries.push(Entry { key: "fc.bias".into(), shape: vec![1000], fill: 0.5, integer: false });
    entries
}

/// The key torchvision's state dict uses for a body tensor (burn names BatchNorm's affine
/// parameters `gamma`/`beta`; burn-store's PyTorch adapter maps them).
pub fn torchvision_key(tensor: &NamedTensor) -> String {
    match tensor.path.rsplit_once('.') {
        Some((module, "gamma")) => format!("{module}.weight"),
        Some((module, "beta")) => format!("{module}.bias"),
        _ => tensor.path.clone(),
    }
}
