//! What the program's own process does just before `exec`, jail or not: resource limits, another user when
//! running as root without a user namespace, landlock, and dropping every capability. Runs after `fork`, so
//! it only makes syscalls; the landlock ruleset was built in the parent ([`ruleset`]).

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, ABI,
};

use super::jail::{report, TAG_LANDLOCK};

/// The newest landlock ABI asked for; older kernels enforce what they know (best effort).
const LANDLOCK_ABI: ABI = ABI::V6;

/// Limits and identity applied in the program's process.
#[derive(Debug)]
pub(crate) struct Confinement {
    /// `RLIMIT_AS` in bytes.
    pub address_space: Option<u64>,
    /// `RLIMIT_CPU` in seconds.
    pub cpu_seconds: u64,
    /// `RLIMIT_FSIZE` in bytes.
    pub file_bytes: u64,
    /// `RLIMIT_NPROC`.
    pub processes: u64,
    /// Become this uid/gid (root without a user namespace).
    pub switch_user: Option<(u32, u32)>,
    /// Landlock ruleset to enforce (taken once).
    pub landlock: Option<RulesetCreated>,
    /// Status pipe for the landlock record.
    pub status: RawFd,
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: setrlimit with a valid pointer to a local struct.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Applies `c` to the calling process (after `fork`, before `exec`).
pub(crate) fn confine(c: &mut Confinement) -> io::Result<()> {
    if let Some(bytes) = c.address_space {
        set_limit(libc::RLIMIT_AS, bytes)?;
    }
    set_limit(libc::RLIMIT_CPU, c.cpu_seconds)?;
    set_limit(libc::RLIMIT_FSIZE, c.file_bytes)?;
    set_limit(libc::RLIMIT_CORE, 0)?;
    set_limit(libc::RLIMIT_NPROC, c.processes)?;
    // SAFETY: plain syscalls on this process.
    unsafe {
        if let Some((uid, gid)) = c.switch_user {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
        }
        // Root (of the user namespace) must not regain capabilities at exec.
        const SECBIT_NOROOT: libc::c_ulong = 1;
        const SECBIT_NOROOT_LOCKED: libc::c_ulong = 2;
        libc::prctl(
            libc::PR_SET_SECUREBITS,
            SECBIT_NOROOT | SECBIT_NOROOT_LOCKED,
            0,
            0,
            0,
        );
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
    }
    if let Some(ruleset) = c.landlock.take() {
        // `restrict_self` also sets no_new_privs; on success it makes syscalls only.
        let enforced = match ruleset.restrict_self() {
            Ok(s) => s.ruleset != RulesetStatus::NotEnforced,
            Err(_) => return Err(io::Error::from_raw_os_error(libc::EPERM)),
        };
        report(c.status, TAG_LANDLOCK, i32::from(enforced), 0);
    }
    drop_capabilities()
}

/// Empties the effective, permitted, inheritable and ambient sets, and sets no_new_privs.
fn drop_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset with valid header and data arrays; prctl without pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    }
}

/// What the landlock ruleset allows.
#[derive(Debug, Default)]
pub(crate) struct LandlockPaths {
    /// Folders the program may read and execute from (the runtime).
    pub read_only: Vec<PathBuf>,
    /// Device nodes it may read and write.
    pub devices: Vec<PathBuf>,
    /// The scratch folder: anything.
    pub scratch: PathBuf,
    /// Also restrict reading (outside a private root, where the host's files are in view).
    pub restrict_reads: bool,
}

/// Builds the ruleset in the parent, on the host's inodes (bind mounts of them inside the jail share them):
/// writing, creating and removing only under the scratch folder and on the device nodes, executing only from
/// the runtime folders, and — with `restrict_reads` — reading only those plus `/proc`. `None` when the
/// ruleset could not be built.
pub(crate) fn ruleset(paths: &LandlockPaths) -> Option<RulesetCreated> {
    let all = AccessFs::from_all(LANDLOCK_ABI);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let handled = if paths.restrict_reads {
        all
    } else {
        all & !read
    };
    let build = || -> Result<RulesetCreated, landlock::RulesetError> {
        let mut rs = Ruleset::default().handle_access(handled)?.create()?;
        // Rules on a file may only name file accesses.
        let rule = |p: &Path, access: landlock::BitFlags<AccessFs>| {
            let access = if p.is_dir() {
                access
            } else {
                access & AccessFs::from_file(LANDLOCK_ABI)
            };
            PathFd::new(p).ok().map(|fd| PathBeneath::new(fd, access))
        };
        for dir in &paths.read_only {
            if let Some(r) = rule(dir, (read | AccessFs::Execute) & handled) {
                rs = rs.add_rule(r)?;
            }
        }
        if paths.restrict_reads {
            if let Some(r) = rule(Path::new("/proc"), read) {
                rs = rs.add_rule(r)?;
            }
        }
        let device = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate;
        for dev in &paths.devices {
            if let Some(r) = rule(dev, device & handled) {
                rs = rs.add_rule(r)?;
            }
        }
        if let Some(r) = rule(&paths.scratch, handled) {
            rs = rs.add_rule(r)?;
        }
        Ok(rs)
    };
    // Best effort: on a kernel without landlock this still succeeds, and `restrict_self` reports it as
    // not enforced.
    build().ok()
}
