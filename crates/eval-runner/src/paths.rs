//! Paths in task files: `${VAR}` / `${VAR:-default}` expansion and resolution against the task's folder.

use std::path::{Path, PathBuf};

/// Expands `${VAR}` and `${VAR:-default}` in `text` from the environment (`TUNEUP_HOME` defaults to the
/// cache root).
pub fn expand_env(text: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let value = std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                // `TUNEUP_HOME` defaults to the model cache root, as everywhere in tuneup.
                (name == tuneup_hub::TUNEUP_HOME_ENV)
                    .then(crate::data::tuneup_home)
                    .flatten()
                    .map(|p| p.to_string_lossy().into_owned())
            });
        match (value, default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (in {text:?})"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands the environment in `path` and makes it absolute against `base` (when relative).
pub fn resolve_path(path: &Path, base: &Path) -> std::result::Result<PathBuf, String> {
    let expanded = PathBuf::from(expand_env(&path.to_string_lossy())?);
    Ok(if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    })
}
