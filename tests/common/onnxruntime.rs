//! Runs an exported ONNX model with onnxruntime, in the Python of the LibTorch venv
//! (scripts/setup-test-python.sh installs it there), preparing images as the model's metadata
//! says.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// What onnxruntime made of a model.
#[derive(Debug, serde::Deserialize)]
pub struct Run {
    /// One row per image, in order.
    pub probabilities: Vec<Vec<f32>>,
    /// The first image alone: the batch dimension is dynamic.
    pub first_alone: Vec<f32>,
    pub metadata: std::collections::HashMap<String, String>,
    /// (name, shape) of the input and output; a dynamic dimension by its name.
    pub input: (String, Vec<serde_json::Value>),
    pub output: (String, Vec<serde_json::Value>),
    pub opset: i64,
}

const SCRIPT: &str = r#"
import json, sys
import numpy as np
import onnx, onnxruntime as ort

path, pixels_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
meta = {p.key: p.value for p in model.metadata_props}
side = json.loads(meta["size"])
mean = np.array(json.loads(meta["mean"]), dtype=np.float32).reshape(1, 3, 1, 1)
std = np.array(json.loads(meta["std"]), dtype=np.float32).reshape(1, 3, 1, 1)
gray = np.fromfile(pixels_path, dtype=np.uint8).reshape(count, 1, side, side).astype(np.float32) / 255.0
images = ((np.repeat(gray, 3, axis=1) - mean) / std).astype(np.float32)
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
(inp,), (out,) = session.get_inputs(), session.get_outputs()
probabilities = session.run([out.name], {inp.name: images})[0]
first = session.run([out.name], {inp.name: images[:1]})[0][0]
print(json.dumps({
    "probabilities": probabilities.tolist(), "first_alone": first.tolist(), "metadata": meta,
    "input": [inp.name, inp.shape], "output": [out.name, out.shape],
    "opset": model.opset_import[0].version,
}))
"#;

/// Runs `model` on `images` (gray, `side` x `side` each, as `decode_gray` gives them).
pub fn run(model: &Path, images: &[Vec<u8>]) -> Run {
    let python = super::python::python();
    let check = Command::new(&python).args(["-c", "import onnxruntime, onnx"]).output().unwrap();
    assert!(
        check.status.success(),
        "onnxruntime and onnx are not installed in {}: run scripts/setup-test-python.sh ({})",
        python.display(),
        String::from_utf8_lossy(&check.stderr).trim()
    );
    let pixels = model.with_extension("pixels");
    std::fs::write(&pixels, images.concat()).unwrap();
    let output = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(model)
        .arg(&pixels)
        .arg(images.len().to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "onnxruntime failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The largest absolute difference between two sets of rows.
pub fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "as many rows");
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}
