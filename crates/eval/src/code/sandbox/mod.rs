//! Runs one untrusted program in a jail, under resource limits, with its output read against a deadline.
//!
//! On Linux the program gets, where the kernel allows it ([`Isolation::Jail`]): new user (its root mapped to
//! an unprivileged user outside: `nobody` when tuneup runs as root, else the caller's own uid), PID, mount,
//! network, IPC and UTS namespaces; a private root (a read-only tmpfs plus `pivot_root`) that holds only the
//! system folders (`/usr`, `/bin`, `/lib*`, `/sbin`), the runtime's own folder (e.g. a pyenv interpreter's
//! prefix), a few entries of `/etc` the runtimes read, `/dev/{null,zero,full,random,urandom}`, a fresh
//! `/proc` and the scratch folder read-write at `/sandbox` (also `/tmp`, `HOME` and `TMPDIR`); landlock where
//! the kernel has it (writes only under the scratch folder, exec only from the runtime folders); every
//! capability dropped; `RLIMIT_AS`, `RLIMIT_CPU`, `RLIMIT_FSIZE`, `RLIMIT_NPROC` (counted per user
//! namespace, so per run), no core dumps; an empty environment and no stdin but what the caller sends.
//! The namespace's init reaps everything and reports when the program left processes running; when it exits
//! (or is killed at the time limit) the kernel kills every process in the namespace.
//!
//! Where namespaces are refused the level drops to [`Isolation::NetworkNamespace`] (only `CLONE_NEWNET`) or
//! [`Isolation::LimitsOnly`]; both keep the limits, switch from root to `nobody` (where the runtime is
//! reachable by it; else root stays, without capabilities), and use landlock to restrict reads as well (the host's files are in view). A weaker level is printed once as a warning and reported
//! in every outcome.

mod confine;
mod jail;
mod output;
mod plan;

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use confine::{Confinement, LandlockPaths};
pub use plan::JAIL_WORKDIR;

/// The unprivileged user a program runs as when tuneup runs as root.
const NOBODY: u32 = 65534;

/// Limits for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Wall-clock limit; the program and everything it started are killed after it.
    pub timeout: Duration,
    /// Address-space limit in bytes (`RLIMIT_AS`); `None` for runtimes that reserve huge virtual ranges
    /// (the JVM), which are limited by their own flags instead.
    pub memory_bytes: Option<u64>,
    /// Largest file the program may write.
    pub file_bytes: u64,
    /// Bytes kept of stdout and of stderr each (the rest is read and dropped, but for the last 4 KiB).
    pub output_bytes: usize,
    /// Processes and threads the program may have at once (`RLIMIT_NPROC`).
    pub processes: u64,
}

impl Default for SandboxLimits {
    /// 10 s, 2 GiB address space, 64 MiB files, 64 KiB of output, 256 processes/threads.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: Some(2 << 30),
            file_bytes: 64 << 20,
            output_bytes: 64 << 10,
            processes: 256,
        }
    }
}

/// How strongly programs are isolated, weakest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// No namespaces: resource limits, another user than root, and landlock where the kernel has it.
    LimitsOnly,
    /// Only its own network namespace, plus what [`Isolation::LimitsOnly`] has.
    NetworkNamespace,
    /// The full jail: user, PID, mount, network, IPC and UTS namespaces with a private read-only root.
    Jail,
}

/// The isolation a run (or a whole evaluation: the weakest of its runs) had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxReport {
    /// Namespaces and root.
    pub isolation: Isolation,
    /// Landlock was enforced as well.
    pub landlock: bool,
}

impl SandboxReport {
    /// The weaker of two reports.
    pub fn weakest(self, other: Self) -> Self {
        Self {
            isolation: self.isolation.min(other.isolation),
            landlock: self.landlock && other.landlock,
        }
    }

    /// A warning line when this is weaker than the full jail.
    pub fn warning(&self) -> Option<String> {
        (self.isolation < Isolation::Jail).then(|| {
            let why = jail_unavailable_reason().map_or(String::new(), |r| format!(" ({r})"));
            format!(
                "model-written code ran at isolation level {:?}{}, not in the full jail{why}; run untrusted models' code in a container or VM",
                self.isolation,
                if self.landlock { " with landlock" } else { " without landlock" },
            )
        })
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOutcome {
    /// Exit code, when the process exited.
    pub code: Option<i32>,
    /// Signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Killed at the wall-clock limit (or by `RLIMIT_CPU`).
    pub timed_out: bool,
    /// Captured stdout (head and tail kept within the limit, lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (head and tail kept within the limit, lossy UTF-8).
    pub stderr: String,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Isolation in force.
    pub isolation: Isolation,
    /// Landlock was enforced.
    pub landlock: bool,
    /// The program ended while processes it started were still running (they were killed). Known in the jail.
    pub left_processes: bool,
}

impl SandboxOutcome {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The isolation of this run.
    pub fn report(&self) -> SandboxReport {
        SandboxReport {
            isolation: self.isolation,
            landlock: self.landlock,
        }
    }
}

/// What a run needs besides the command.
#[derive(Debug, Clone, Default)]
pub struct SandboxInput {
    /// Folders outside the system folders the runtime needs (read-only, at their own paths).
    pub runtime_dirs: Vec<PathBuf>,
    /// Environment variables besides `PATH`, `HOME`, `TMPDIR` and `LANG`.
    pub env: Vec<(String, OsString)>,
    /// Sent to the program's stdin (which is empty otherwise).
    pub stdin: Vec<u8>,
}

struct Probe {
    level: Isolation,
    reason: Option<String>,
}

fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let mut reasons = Vec::new();
        let Some(program) = resolve_program(Path::new("true")) else {
            return Probe {
                level: Isolation::LimitsOnly,
                reason: Some("`true` is not on PATH to probe with".into()),
            };
        };
        for level in [Isolation::Jail, Isolation::NetworkNamespace] {
            let attempt = tempfile::Builder::new()
                .prefix("tuneup-probe-")
                .tempdir()
                .and_then(|dir| {
                    let limits = SandboxLimits {
                        timeout: Duration::from_secs(10),
                        ..SandboxLimits::default()
                    };
                    run_at(level, Command::new(&program), dir.path(), limits, &SandboxInput::default())
                });
            match attempt {
                Ok(o) if o.success() => {
                    let reason = (!reasons.is_empty()).then(|| reasons.join("; "));
                    if level < Isolation::Jail {
                        eprintln!(
                            "warning: the code sandbox runs programs at isolation level {level:?}, not in the full jail: {}",
                            reason.as_deref().unwrap_or("")
                        );
                    }
                    return Probe { level, reason };
                }
                Ok(o) => reasons.push(format!("{level:?}: `true` exited with {:?} {}", o.code, o.stderr.trim())),
                Err(e) => reasons.push(format!("{level:?}: {e}")),
            }
        }
        let reason = reasons.join("; ");
        eprintln!("warning: the code sandbox has no namespaces here, only limits: {reason}");
        Probe {
            level: Isolation::LimitsOnly,
            reason: Some(reason),
        }
    })
}

/// The strongest isolation this machine allows (probed once by running `true` in it).
pub fn isolation() -> Isolation {
    probe().level
}

/// Why the full jail is not available, when it is not.
pub fn jail_unavailable_reason() -> Option<&'static str> {
    probe().reason.as_deref()
}

/// `name` as an absolute path with symlinks resolved, searched on `PATH` when it has no `/`.
pub fn resolve_program(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return std::fs::canonicalize(name).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .and_then(|p| std::fs::canonicalize(p).ok())
}

/// Whether every folder above `program` lets other users through.
fn reachable_by_others(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    program
        .ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// `unshare(CLONE_NEWNET)`, with a new user namespace when that alone is not permitted (non-root).
fn enter_network_namespace() -> io::Result<()> {
    // SAFETY: plain syscalls on the forked child, no allocation.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) == 0 {
            return Ok(());
        }
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
            return Ok(());
        }
    }
    Err(io::Error::last_os_error())
}

/// Runs `command` (an absolute program path) in the scratch folder `dir` at the strongest isolation
/// available, under `limits`; waits and reads output at most `limits.timeout` (plus a short drain).
pub fn run_sandboxed(
    command: Command,
    dir: &Path,
    limits: SandboxLimits,
    input: &SandboxInput,
) -> io::Result<SandboxOutcome> {
    run_at(isolation(), command, dir, limits, input)
}

/// Like [`run_sandboxed`] at `level` (no stronger than [`isolation`]); for testing the weaker levels.
pub fn run_sandboxed_at(
    level: Isolation,
    command: Command,
    dir: &Path,
    limits: SandboxLimits,
    input: &SandboxInput,
) -> io::Result<SandboxOutcome> {
    run_at(level.min(isolation()), command, dir, limits, input)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two new descriptors that we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Status records written by the jail and the program's process before `exec`.
#[derive(Debug, Default)]
struct Records {
    setup_failed: Option<(i32, i32)>,
    landlock: bool,
    exit: Option<(i32, bool)>,
}

fn read_records(fd: OwnedFd) -> Records {
    let mut file = std::fs::File::from(fd);
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut bytes = Vec::new();
    let _ = io::Read::read_to_end(&mut file, &mut bytes);
    let mut r = Records::default();
    for rec in bytes.chunks_exact(jail::RECORD_BYTES) {
        let int = |i: usize| i32::from_ne_bytes(rec[i..i + 4].try_into().expect("4 bytes"));
        match int(0) {
            jail::TAG_SETUP_FAILED => r.setup_failed = Some((int(4), int(8))),
            jail::TAG_LANDLOCK => r.landlock = int(4) == 1,
            jail::TAG_EXIT => r.exit = Some((int(4), int(8) == 1)),
            _ => {}
        }
    }
    r
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: sending a signal to a process group we created; failure (already gone) is fine.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The running child and the deadline.
struct Watch {
    child: std::process::Child,
    pgid: libc::pid_t,
    deadline: Instant,
    timed_out: bool,
    ended: Option<(ExitStatus, Instant)>,
}

impl Watch {
    /// Notes the child's end, or kills its group at the deadline; sleeps a little when `block` and it runs
    /// on. Returns when it ended.
    fn poll(&mut self, block: bool) -> io::Result<Option<Instant>> {
        if self.ended.is_none() {
            if let Some(s) = self.child.try_wait()? {
                self.ended = Some((s, Instant::now()));
            } else if Instant::now() >= self.deadline {
                self.timed_out = true;
                kill_group(self.pgid);
                self.ended = Some((self.child.wait()?, Instant::now()));
            } else if block {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(self.ended.map(|(_, at)| at))
    }
}

fn run_at(
    level: Isolation,
    mut command: Command,
    dir: &Path,
    limits: SandboxLimits,
    input: &SandboxInput,
) -> io::Result<SandboxOutcome> {
    // SAFETY: getters without arguments.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let (uid, gid) = if euid == 0 {
        (NOBODY, NOBODY)
    } else {
        (euid, egid)
    };
    // Outside the jail root becomes `nobody`, unless the runtime lies where `nobody` cannot reach it
    // (e.g. a pyenv interpreter under `/root`): then it stays root without capabilities.
    let switch_user = euid == 0
        && level < Isolation::Jail
        && reachable_by_others(Path::new(command.get_program()));
    if euid == 0 && (level == Isolation::Jail || switch_user) {
        std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY))?;
    }
    let plan = plan::JailPlan::new(dir, &input.runtime_dirs, uid, gid)?;
    let steps: Vec<String> = plan.steps.iter().map(plan::Step::describe).collect();
    let landlock = confine::ruleset(&LandlockPaths {
        read_only: plan.read_only.clone(),
        devices: plan.devices.clone(),
        scratch: dir.to_path_buf(),
        restrict_reads: level < Isolation::Jail,
    });
    let (status_r, status_w) = pipe()?;
    let workdir: OsString = if level == Isolation::Jail {
        JAIL_WORKDIR.into()
    } else {
        dir.into()
    };
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &workdir)
        .env("TMPDIR", &workdir)
        .env("LANG", "C.UTF-8")
        .envs(input.env.iter().map(|(k, v)| (k, v)))
        .stdin(if input.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut confinement = Confinement {
        address_space: limits.memory_bytes,
        cpu_seconds: limits.timeout.as_secs() + 2,
        file_bytes: limits.file_bytes,
        processes: limits.processes,
        switch_user: switch_user.then_some((uid, gid)),
        landlock,
        status: status_w.as_raw_fd(),
    };
    let status_fd = status_w.as_raw_fd();
    let pre_exec = move || -> io::Result<()> {
        match level {
            Isolation::Jail => jail::enter(&plan, status_fd)?,
            Isolation::NetworkNamespace => enter_network_namespace()?,
            Isolation::LimitsOnly => {}
        }
        confine::confine(&mut confinement)
    };
    // SAFETY: the closure only makes syscalls (see `jail` and `confine`): no allocation, no locks.
    unsafe { command.pre_exec(pre_exec) };
    let start = Instant::now();
    let spawned = command.spawn();
    drop(status_w);
    let mut child = spawned?;
    drop(command);
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its stdin is no error.
        let _ = stdin.write_all(&input.stdin);
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let mut watch = Watch {
        pgid: child.id() as libc::pid_t,
        child,
        deadline: start + limits.timeout,
        timed_out: false,
        ended: None,
    };
    let mut failure = None;
    let [out, err] = output::read_until(
        [
            stdout.as_ref().map(|s| s as &dyn AsRawFd),
            stderr.as_ref().map(|s| s as &dyn AsRawFd),
        ],
        limits.output_bytes,
        || match watch.poll(false) {
            Ok(ended) => ended.map(|at| at + output::DRAIN),
            Err(e) => {
                failure = Some(e);
                Some(Instant::now())
            }
        },
    );
    if let Some(e) = failure {
        kill_group(watch.pgid);
        return Err(e);
    }
    while watch.ended.is_none() {
        watch.poll(true)?;
    }
    let (status, ended_at) = watch.ended.expect("set above");
    let (pgid, mut timed_out) = (watch.pgid, watch.timed_out);
    // Processes that left the group (fallback levels) must not outlive the run either.
    kill_group(pgid);
    let records = read_records(status_r);
    if let Some((stage, errno)) = records.setup_failed {
        return Err(io::Error::other(format!(
            "building the sandbox failed while {}: {}",
            jail::stage_name(stage, &steps),
            io::Error::from_raw_os_error(errno)
        )));
    }
    let (status, left_processes) = match records.exit {
        Some((raw, strays)) if !timed_out => (ExitStatus::from_raw(raw), strays),
        _ => (status, false),
    };
    let signal = status.signal();
    timed_out |= signal == Some(libc::SIGXCPU);
    Ok(SandboxOutcome {
        code: status.code(),
        signal,
        timed_out,
        stdout: out.text(),
        stderr: err.text(),
        elapsed: ended_at - start,
        isolation: level,
        landlock: records.landlock,
        left_processes,
    })
}
