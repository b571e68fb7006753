//! Which processes the adaptive loop looks at: the ones the policy's
//! targets (uids, command names, executables) include and that use CPU.

use adapt_abi as abi;

/// The command name of `pid` (`/proc/PID/comm`), empty if it is gone.
pub fn command_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

/// User processes the policy allows (uids, command names, executables),
/// other than adaptctl itself, that used CPU recently.
pub fn allowed_processes(policy: &abi::AdaptPolicy, me: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || pid == 1 {
            continue;
        }
        if policy_allows(policy, pid) && busy(pid) {
            out.push(pid);
        }
    }
    out
}

/// Whether the policy's targets (uids, command names, executables) include
/// process `pid`. Kernel threads (no executable) never are.
pub fn policy_allows(policy: &abi::AdaptPolicy, pid: u32) -> bool {
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    if policy.nexes > 0
        && !policy
            .exes
            .iter()
            .take(policy.nexes as usize)
            .any(|e| abi::name_str(e) == exe.to_str())
    {
        return false;
    }
    let comm = command_of(pid);
    if policy.ncomms > 0
        && !policy
            .comms
            .iter()
            .take(policy.ncomms as usize)
            .any(|c| abi::name_str(c) == Some(comm.as_str()))
    {
        return false;
    }
    if policy.nuids > 0 {
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
            });
        if !uid.is_some_and(|u| {
            policy
                .uids
                .iter()
                .take(policy.nuids as usize)
                .any(|&a| a == u)
        }) {
            return false;
        }
    }
    true
}

/// Whether the process used at least a few CPU ticks since it started —
/// idle daemons are not worth a profile.
pub fn busy(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Fields after the command name (which may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat: 12 and 13 here.
    ticks(11) + ticks(12) >= 10
}
