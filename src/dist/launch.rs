//! What `torchrun` (or any launcher that follows its conventions) tells each process it starts.

use std::collections::HashMap;

/// This process's place in a distributed run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Launch {
    pub rank: usize,
    pub world_size: usize,
    /// The rank among this machine's processes: the GPU it uses.
    pub local_rank: usize,
    /// Where the rendezvous store listens.
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent hosts the store already (`TORCHELASTIC_USE_AGENT_STORE`): every rank
    /// connects to it; without it rank 0 hosts the store.
    pub agent_store: bool,
    /// torchrun's restart count: each attempt rendezvouses under its own prefix.
    pub restart_count: u32,
}

/// A launch variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "{set} is set but {missing} is not: start every rank with torchrun, or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT"
    )]
    Missing { set: &'static str, missing: &'static str },
    #[error("{name}={value} is not {expected}")]
    Malformed { name: &'static str, value: String, expected: &'static str },
    #[error("RANK={rank} is not below WORLD_SIZE={world_size}")]
    RankOutOfRange { rank: usize, world_size: usize },
}

/// The variables that mark a distributed launch; without RANK and WORLD_SIZE a process runs alone.
const MARKERS: [&str; 2] = ["RANK", "WORLD_SIZE"];

impl Launch {
    /// The launch this process's environment describes, `None` when it was not started as a rank.
    pub fn from_env() -> Result<Option<Self>, LaunchError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// [`Launch::from_env`] over given variables.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Option<Self>, LaunchError> {
        let Some(set) = MARKERS.into_iter().find(|name| vars.contains_key(*name)) else {
            return Ok(None);
        };
        let required = |name: &'static str| vars.get(name).ok_or(LaunchError::Missing { set, missing: name });
        let number = |name: &'static str, text: &str, expected: &'static str| {
            text.trim().parse::<u64>().map_err(|_| LaunchError::Malformed { name, value: text.into(), expected })
        };
        let rank = number("RANK", required("RANK")?, "a rank (0, 1, ...)")? as usize;
        let world_size = number("WORLD_SIZE", required("WORLD_SIZE")?, "a process count (1, 2, ...)")? as usize;
        if world_size == 0 {
            return Err(LaunchError::Malformed {
                name: "WORLD_SIZE",
                value: "0".into(),
                expected: "a process count (1, 2, ...)",
            });
        }
        if rank >= world_size {
            return Err(LaunchError::RankOutOfRange { rank, world_size });
        }
        let local_rank = match vars.get("LOCAL_RANK") {
            Some(text) => number("LOCAL_RANK", text, "a rank on this machine (0, 1, ...)")? as usize,
            None => 0,
        };
        let master_addr = required("MASTER_ADDR")?.trim().to_string();
        let port_text = required("MASTER_PORT")?;
        let master_port = port_text
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or(LaunchError::Malformed { name: "MASTER_PORT", value: port_text.clone(), expected: "a TCP port" })?;
        let agent_store = vars
            .get("TORCHELASTIC_USE_AGENT_STORE")
            .is_some_and(|value| matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "1"));
        let restart_count = match vars.get("TORCHELASTIC_RESTART_COUNT") {
            Some(text) => number("TORCHELASTIC_RESTART_COUNT", text, "a count")? as u32,
            None => 0,
        };
        Ok(Some(Self { rank, world_size, local_rank, master_addr, master_port, agent_store, restart_count }))
    }

    /// The store prefix this attempt's ranks meet under (torchrun's agent store keeps one per attempt).
    pub fn store_prefix(&self) -> String {
        if self.agent_store { format!("/worker/attempt_{}/mednist/", self.restart_count) } else { "mednist/".into() }
    }

    pub fn is_root(&self) -> bool {
        self.rank == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const TORCHRUN: [(&str, &str); 7] = [
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
        ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ("TORCHELASTIC_RESTART_COUNT", "2"),
    ];

    #[test]
    fn reads_what_torchrun_sets() {
        let launch = Launch::from_vars(&vars(&TORCHRUN)).unwrap().unwrap();
        assert_eq!(
            launch,
            Launch {
                rank: 1,
                world_size: 2,
                local_rank: 1,
                master_addr: "127.0.0.1".into(),
                master_port: 29500,
                agent_store: true,
                restart_count: 2,
            }
        );
        assert_eq!(launch.store_prefix(), "/worker/attempt_2/mednist/");
        assert!(!launch.is_root());
    }

    #[test]
    fn without_rank_variables_a_process_runs_alone() {
        assert_eq!(Launch::from_vars(&vars(&[("MASTER_PORT", "29500")])), Ok(None));
    }

    #[test]
    fn a_partial_or_malformed_launch_names_the_variable() {
        let missing = Launch::from_vars(&vars(&[("RANK", "0"), ("WORLD_SIZE", "2")])).unwrap_err();
        assert!(missing.to_string().contains("MASTER_ADDR"), "{missing}");
        let mut bad = vars(&TORCHRUN);
        bad.insert("MASTER_PORT".into(), "http".into());
        assert!(Launch::from_vars(&bad).unwrap_err().to_string().contains("MASTER_PORT=http"));
        bad = vars(&TORCHRUN);
        bad.insert("RANK".into(), "2".into());
        assert_eq!(Launch::from_vars(&bad), Err(LaunchError::RankOutOfRange { rank: 2, world_size: 2 }));
    }

    #[test]
    fn without_the_agent_store_rank_zero_hosts_it() {
        let mut own = vars(&TORCHRUN);
        own.remove("TORCHELASTIC_USE_AGENT_STORE");
        let launch = Launch::from_vars(&own).unwrap().unwrap();
        assert!(!launch.agent_store);
        assert_eq!(launch.store_prefix(), "mednist/");
    }
}
