//! The jail's private root, planned in the parent: every path, flag and file descriptor the child needs is
//! prepared here (allocation is fine here, not after `fork`), so that the child only makes syscalls.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// System folders exposed read-only (or recreated as the same symlink, as on merged-`/usr` systems).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Entries of `/etc` that runtimes read: the dynamic loader's cache, Debian's alternatives (the `java` link),
/// the JDK's configuration folders (`java-*`), the time zone.
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
];

/// Device nodes bind-mounted from the host.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// Where the scratch folder appears inside the jail (also `HOME`, `TMPDIR` and the working directory).
pub const JAIL_WORKDIR: &str = "/sandbox";

/// One step of building the root, run inside the new tmpfs root (paths relative to it).
#[derive(Debug)]
pub(crate) enum Step {
    /// `mkdir` (an existing folder is fine).
    Dir(CString),
    /// An empty file to mount a device node on.
    File(CString),
    /// `symlink(target, link)`.
    Symlink { target: CString, link: CString },
    /// Bind-mount the host's folder or file (opened by the init before it drops to the mapped user, then
    /// mounted through `/proc/self/fd/N`), read-only when `remount_flags` are given.
    Bind {
        host: PathBuf,
        source: CString,
        dest: CString,
        remount_flags: Option<libc::c_ulong>,
    },
    /// A fresh `/proc` for the new PID namespace.
    Proc(CString),
}

impl Step {
    /// What the step does, for error messages.
    pub(crate) fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Step::Dir(d) => format!("creating /{}", s(d)),
            Step::File(f) => format!("creating /{}", s(f)),
            Step::Symlink { target, link } => format!("linking /{} to {}", s(link), s(target)),
            Step::Bind { host, dest, .. } => {
                format!("bind-mounting {} at /{}", host.display(), s(dest))
            }
            Step::Proc(d) => format!("mounting a new proc at /{}", s(d)),
        }
    }
}

/// Everything the jail's child needs, prepared in the parent.
#[derive(Debug)]
pub(crate) struct JailPlan {
    /// Steps inside the new root.
    pub steps: Vec<Step>,
    /// Host folders exposed read-only (for the landlock rules).
    pub read_only: Vec<PathBuf>,
    /// Host device nodes exposed.
    pub devices: Vec<PathBuf>,
    /// `uid_map` and `gid_map` contents.
    pub uid_map: Vec<u8>,
    /// `gid_map` contents.
    pub gid_map: Vec<u8>,
    /// `/sandbox` inside the jail.
    pub workdir: CString,
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other(format!("path {} contains a NUL byte", p.display())))
}

/// `p` without its leading `/`, as a C string.
fn relative(p: &Path) -> std::io::Result<CString> {
    cstring(p.strip_prefix("/").unwrap_or(p))
}

/// Mount flags a read-only remount must keep (locked by the kernel when the source came from a more
/// privileged mount namespace): `nosuid`, `nodev`, `noexec` and the atime mode.
fn remount_flags(path: &Path) -> std::io::Result<libc::c_ulong> {
    let c = cstring(path)?;
    // SAFETY: statvfs with a valid path and a zeroed out-struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let f = st.f_flag;
    let mut flags =
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    if f & libc::ST_NOEXEC != 0 {
        flags |= libc::MS_NOEXEC;
    }
    flags |= if f & libc::ST_NOATIME != 0 {
        libc::MS_NOATIME
    } else if f & libc::ST_RELATIME != 0 {
        libc::MS_RELATIME
    } else {
        libc::MS_STRICTATIME
    };
    if f & libc::ST_NODIRATIME != 0 {
        flags |= libc::MS_NODIRATIME;
    }
    Ok(flags)
}

/// Most bind mounts a plan may have (the init keeps their descriptors in a fixed array).
pub(crate) const MAX_BINDS: usize = 64;

impl JailPlan {
    /// Bind steps so far.
    pub(crate) fn binds(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Bind { .. }))
            .count()
    }

    /// Plans a root with the system folders, `runtime_dirs` (read-only, at their own paths), `/dev` nodes,
    /// a fresh `/proc`, and `scratch` read-write at `/sandbox` and `/tmp`; the jail's root user is `uid`/`gid`
    /// outside.
    pub(crate) fn new(
        scratch: &Path,
        runtime_dirs: &[PathBuf],
        uid: u32,
        gid: u32,
    ) -> std::io::Result<Self> {
        let mut plan = JailPlan {
            steps: Vec::new(),
            read_only: Vec::new(),
            devices: Vec::new(),
            uid_map: format!("0 {uid} 1\n").into_bytes(),
            gid_map: format!("0 {gid} 1\n").into_bytes(),
            workdir: CString::new(JAIL_WORKDIR).expect("no NUL"),
        };
        for dir in SYSTEM_DIRS {
            plan.expose(Path::new(dir))?;
        }
        plan.steps
            .push(Step::Dir(CString::new("etc").expect("no NUL")));
        let mut etc: Vec<PathBuf> = ETC_ENTRIES
            .iter()
            .map(|e| Path::new("/etc").join(e))
            .collect();
        if let Ok(entries) = std::fs::read_dir("/etc") {
            etc.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().as_bytes().starts_with(b"java"))
                    .map(|e| e.path()),
            );
        }
        for entry in etc {
            plan.expose(&entry)?;
        }
        for dir in runtime_dirs {
            let covered = plan.read_only.iter().any(|r| dir.starts_with(r));
            if !covered {
                plan.parents(dir);
                plan.expose(dir)?;
            }
        }
        plan.steps
            .push(Step::Dir(CString::new("dev").expect("no NUL")));
        for dev in DEVICES {
            let host = Path::new("/dev").join(dev);
            if host.exists() {
                plan.steps.push(Step::File(relative(&host)?));
                plan.bind(&host, &host, None)?;
                plan.devices.push(host);
            }
        }
        for (link, target) in [
            ("dev/fd", "/proc/self/fd"),
            ("dev/stdin", "/proc/self/fd/0"),
            ("dev/stdout", "/proc/self/fd/1"),
            ("dev/stderr", "/proc/self/fd/2"),
        ] {
            plan.steps.push(Step::Symlink {
                target: CString::new(target).expect("no NUL"),
                link: CString::new(link).expect("no NUL"),
            });
        }
        plan.steps
            .push(Step::Dir(CString::new("proc").expect("no NUL")));
        plan.steps
            .push(Step::Proc(CString::new("proc").expect("no NUL")));
        for at in [JAIL_WORKDIR, "/tmp"] {
            plan.steps.push(Step::Dir(relative(Path::new(at))?));
            plan.bind(scratch, Path::new(at), None)?;
        }
        Ok(plan)
    }

    /// Folders above `dir` inside the root.
    fn parents(&mut self, dir: &Path) {
        let ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
        for a in ancestors.into_iter().rev() {
            if a != Path::new("/") {
                if let Ok(c) = relative(a) {
                    self.steps.push(Step::Dir(c));
                }
            }
        }
    }

    /// Exposes `path` (folder, file or symlink) read-only at the same place, if it exists.
    fn expose(&mut self, path: &Path) -> std::io::Result<()> {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return Ok(());
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path)?;
            self.steps.push(Step::Symlink {
                target: cstring(&target)?,
                link: relative(path)?,
            });
            return Ok(());
        }
        self.steps.push(if meta.is_dir() {
            Step::Dir(relative(path)?)
        } else {
            Step::File(relative(path)?)
        });
        self.read_only.push(path.to_path_buf());
        self.bind(path, path, Some(remount_flags(path)?))
    }

    fn bind(
        &mut self,
        source: &Path,
        dest: &Path,
        remount_flags: Option<libc::c_ulong>,
    ) -> std::io::Result<()> {
        if self.binds() >= MAX_BINDS {
            return Err(std::io::Error::other(format!(
                "the sandbox takes at most {MAX_BINDS} bind mounts ({} is one too many)",
                source.display()
            )));
        }
        self.steps.push(Step::Bind {
            host: source.to_path_buf(),
            source: cstring(source)?,
            dest: relative(dest)?,
            remount_flags,
        });
        Ok(())
    }
}
