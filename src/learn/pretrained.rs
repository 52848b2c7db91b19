//! Pretrained bodies: torchvision ResNet state dicts (`.pth`) from a file, a URL, or
//! torchvision's own ImageNet weights, loaded with burn-store's PyTorch reader.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use burn::store::{ModuleSnapshot, PytorchStore};
use sha2::{Digest, Sha256};

use crate::data::download;
use crate::data::fetch::DEFAULT_RESUME_ATTEMPTS;
use crate::event::Emit;
use crate::job::CancelToken;
use crate::model::{Arch, ResNet};
use crate::workspace::Workspace;

/// Where pretrained weights come from (`--pretrained imagenet|URL|PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pretrained {
    /// torchvision's ImageNet weights for the learner's architecture (IMAGENET1K_V1, as fastai uses).
    Imagenet,
    Url(String),
    File(PathBuf),
}

impl FromStr for Pretrained {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" => Err("--pretrained needs imagenet, a URL or a .pth file".into()),
            "imagenet" => Ok(Pretrained::Imagenet),
            url if url.starts_with("http://") || url.starts_with("https://") => Ok(Pretrained::Url(url.into())),
            path => Ok(Pretrained::File(PathBuf::from(path))),
        }
    }
}

impl fmt::Display for Pretrained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pretrained::Imagenet => f.write_str("imagenet"),
            Pretrained::Url(url) => f.write_str(url),
            Pretrained::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// torchvision's IMAGENET1K_V1 weights; the file names carry the start of their SHA-256.
pub fn imagenet_url(arch: Arch) -> &'static str {
    match arch {
        Arch::Resnet18 => "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        Arch::Resnet34 => "https://download.pytorch.org/models/resnet34-b627a593.pth",
        Arch::Resnet50 => "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    }
}

/// The local `.pth` file for `source`: URLs are downloaded once into the workspace's
/// `downloads/weights/` (resumable, with progress); torchvision's files are checked against
/// the SHA-256 prefix in their names, as `torch.hub` does.
pub fn resolve(
    source: &Pretrained,
    arch: Arch,
    workspace: &Workspace,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<PathBuf> {
    let (url, hash_prefix) = match source {
        Pretrained::File(path) => {
            if !path.is_file() {
                bail!("the pretrained weights {} do not exist", path.display());
            }
            return Ok(path.clone());
        }
        Pretrained::Url(url) => (url.as_str(), None),
        Pretrained::Imagenet => {
            let url = imagenet_url(arch);
            (url, url.rsplit_once('-').and_then(|(_, tail)| tail.strip_suffix(".pth")))
        }
    };
    let dir = workspace.downloads_dir().join("weights");
    let file = download::download(url, &dir, DEFAULT_RESUME_ATTEMPTS, emit, cancel)?;
    if let Some(prefix) = hash_prefix {
        let digest = sha256_of(&file)?;
        if !digest.starts_with(prefix) {
            std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
            bail!(
                "{url} downloaded with SHA-256 {digest}, expected one starting {prefix}: the file was deleted, try again"
            );
        }
    }
    Ok(file)
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Loads a torchvision ResNet state dict into `body`. Its `fc.*` (ImageNet's classifier)
/// and BatchNorm `num_batches_tracked` counters are not part of a body and are skipped;
/// any body tensor the file lacks, any other key the body lacks, and any shape that differs
/// are errors, all listed.
pub fn load_body(body: &mut ResNet, path: &Path) -> Result<()> {
    let mut store = PytorchStore::from_file(path).allow_partial(true).validate(false);
    let result = body
        .load_from(&mut store)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| format!("cannot read {} as a PyTorch state dict", path.display()))?;
    let mut problems = Vec::new();
    if !result.missing.is_empty() {
        let keys: Vec<&str> = result.missing.iter().map(|(key, _)| key.as_str()).collect();
        problems.push(format!("missing keys: {}", listing(&keys)));
    }
    let unexpected: Vec<&str> = result
        .unused
        .iter()
        .map(String::as_str)
        .filter(|key| !key.starts_with("fc.") && !key.ends_with(".num_batches_tracked"))
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!("unexpected keys: {}", listing(&unexpected)));
    }
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
        problems.push(format!("mismatched: {}", listing(&errors)));
    }
    if !problems.is_empty() {
        bail!("{} does not fit this ResNet body: {}", path.display(), problems.join("; "));
    }
    Ok(())
}

/// The first keys and how many more: a resnet50 file in a resnet18 lists hundreds.
fn listing<S: AsRef<str>>(keys: &[S]) -> String {
    const SHOWN: usize = 12;
    let mut text = keys.iter().take(SHOWN).map(AsRef::as_ref).collect::<Vec<_>>().join(", ");
    if keys.len() > SHOWN {
        text += &format!(" and {} more", keys.len() - SHOWN);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!("imagenet".parse(), Ok(Pretrained::Imagenet));
        assert_eq!("https://x.org/r.pth".parse(), Ok(Pretrained::Url("https://x.org/r.pth".into())));
        assert_eq!("weights/r.pth".parse(), Ok(Pretrained::File("weights/r.pth".into())));
        assert!("".parse::<Pretrained>().is_err());
    }
}
