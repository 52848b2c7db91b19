//! `mednist doctor`: what this machine can do, and whether LibTorch works.

use anyhow::bail;

use crate::system::SystemReport;
use crate::workspace::Workspace;

pub fn run(workspace: &Workspace, json: bool) -> anyhow::Result<()> {
    let report = SystemReport::probe(workspace.root());
    if json {
        crate::cli::print_json(&report)?;
    } else {
        print!("{}", render(&report));
    }
    if let Some(error) = &report.libtorch.error {
        bail!(
            "LibTorch cannot be used: {error}. Reinstall it with scripts/setup-libtorch.sh and rebuild (see README.md)"
        );
    }
    if let Some(failed) = report.cuda.smoke_test.iter().find(|test| !test.passed) {
        bail!(
            "the CUDA smoke test failed on {}: {}; check the driver with nvidia-smi, or train with --device cpu",
            failed.device,
            failed.error.as_deref().unwrap_or("wrong result")
        );
    }
    Ok(())
}

fn render(report: &SystemReport) -> String {
    let unknown = || "unknown".to_string();
    let mut lines = vec![
        ("mednist", report.mednist_version.to_string()),
        ("burn", report.burn_version.to_string()),
        ("LibTorch", report.libtorch.version.clone().unwrap_or_else(unknown)),
        ("LibTorch path", report.libtorch.lib_dir.as_ref().map_or_else(unknown, |p| p.display().to_string())),
    ];
    let cuda = &report.cuda;
    lines.push((
        "CUDA",
        match (cuda.available, cuda.devices.len()) {
            (false, _) => "not available (training runs on the CPU)".to_string(),
            (true, n) => format!("available, {n} device(s), cuDNN {}", if cuda.cudnn { "yes" } else { "no" }),
        },
    ));
    for gpu in &cuda.devices {
        let memory =
            gpu.memory_bytes.map_or_else(String::new, |b| format!(", {:.1} GiB", b as f64 / (1u64 << 30) as f64));
        lines.push(("GPU", format!("cuda:{} {}{memory}", gpu.index, gpu.name)));
    }
    if let Some(runtime) = &cuda.runtime {
        lines.push(("CUDA runtime", format!("{runtime} (LibTorch's)")));
    }
    if cuda.smoke_test.is_empty() {
        lines.push(("smoke test", "not run (no CUDA device)".to_string()));
    }
    for test in &cuda.smoke_test {
        let outcome = match (&test.error, test.relative_difference) {
            (None, Some(difference)) => format!("passed (conv forward and backward, {difference:.1e} from the CPU)"),
            (Some(error), _) => format!("FAILED: {error}"),
            (None, None) => "FAILED".to_string(),
        };
        lines.push(("smoke test", format!("{} {outcome}, {:.2} s", test.device, test.seconds)));
    }
    if let Some(note) = &cuda.note {
        lines.push(("note", note.clone()));
    }
    lines.push((
        "CPU threads",
        match report.cpu_threads {
            Some(threads) => format!("{threads} (of {} logical CPUs)", report.logical_cpus),
            None => format!("{} logical CPUs", report.logical_cpus),
        },
    ));
    lines.push(("workspace", report.workspace.display().to_string()));
    if let Some(distributed) = &report.distributed {
        lines.push((
            "torchrun",
            match (&distributed.launch, &distributed.error) {
                (Some(launch), _) => format!(
                    "rank {} of {} (local rank {}), store {}:{}{}, backend {}",
                    launch.rank,
                    launch.world_size,
                    launch.local_rank,
                    launch.master_addr,
                    launch.master_port,
                    if launch.agent_store { " (torchrun's agent)" } else { "" },
                    distributed.backend
                ),
                (None, error) => format!("cannot be used: {}", error.as_deref().unwrap_or("unknown")),
            },
        ));
    }
    lines.iter().map(|(key, value)| format!("{key:<14}{value}\n")).collect()
}
