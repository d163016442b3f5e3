//! Model names: what a user may type after `-m`, and what it resolves to.
//!
//! A model is named by one of
//! - a built-in alias such as `smollm2-135m` (see [`known_models`](crate::known_models)),
//! - `hf:ORG/NAME[@REVISION][:FILE.gguf]` for the Hugging Face hub,
//! - a local path: a GGUF file, or a folder with `config.json` and safetensors weights.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::registry::{known_models, KnownModel};

/// Prefix that selects the Hugging Face hub.
pub const HF_PREFIX: &str = "hf:";

/// A parsed model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A built-in (or test-registry) alias.
    Alias(&'static KnownModel),
    /// A GGUF file or a Hugging Face style folder on disk.
    Local(PathBuf),
    /// A repository on the Hugging Face hub.
    HuggingFace {
        /// `ORG/NAME`.
        repo: String,
        /// A single file to fetch (a `.gguf`); `None` fetches the model folder.
        file: Option<String>,
        /// Branch, tag or commit; `None` means `main`.
        revision: Option<String>,
    },
}

/// Where a resolved model lives on disk; this is what runtime loaders take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    /// A single GGUF file.
    GgufFile(PathBuf),
    /// A folder with `config.json`, tokenizer files and safetensors weights.
    HfFolder(PathBuf),
}

impl ModelLocation {
    /// The file or folder path.
    pub fn path(&self) -> &Path {
        match self {
            ModelLocation::GgufFile(p) | ModelLocation::HfFolder(p) => p,
        }
    }
}

impl ModelSpec {
    /// Parses `s` against the built-in alias table (same as [`str::parse`]).
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_with(s, known_models())
    }

    /// Parses `s`, looking aliases up in `registry` instead of the built-in table.
    ///
    /// Order: `hf:` prefix, then alias, then existing local path. Anything else
    /// is [`Error::ModelNotFound`], listing the known aliases.
    pub fn parse_with(s: &str, registry: &'static [KnownModel]) -> Result<Self> {
        let trimmed = s.trim();
        if let Some(rest) = trimmed.strip_prefix(HF_PREFIX) {
            return parse_hf(trimmed, rest);
        }
        if !trimmed.is_empty() && !trimmed.contains(['/', '\\']) {
            if let Some(model) = crate::registry::find_in(registry, trimmed) {
                return Ok(ModelSpec::Alias(model));
            }
        }
        let path = PathBuf::from(trimmed);
        if !trimmed.is_empty() && path.exists() {
            return Ok(ModelSpec::Local(path));
        }
        Err(not_found(s, registry))
    }
}

impl FromStr for ModelSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The canonical form: `smollm2-135m`, `hf:ORG/NAME[@REV][:FILE]`, or the path.
impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Alias(m) => f.write_str(m.name),
            ModelSpec::Local(p) => write!(f, "{}", p.display()),
            ModelSpec::HuggingFace {
                repo,
                file,
                revision,
            } => {
                write!(f, "{HF_PREFIX}{repo}")?;
                if let Some(rev) = revision {
                    write!(f, "@{rev}")?;
                }
                if let Some(file) = file {
                    write!(f, ":{file}")?;
                }
                Ok(())
            }
        }
    }
}

/// Builds the "model not found" error for `spec`, listing `registry`'s names.
pub(crate) fn not_found(spec: &str, registry: &[KnownModel]) -> Error {
    let known = registry
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ");
    Error::ModelNotFound {
        spec: spec.to_string(),
        known,
    }
}

fn parse_hf(spec: &str, rest: &str) -> Result<ModelSpec> {
    let bad = |reason: &str| Error::InvalidHfSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (repo_part, file) = match rest.split_once(':') {
        Some((repo, file)) => (repo, Some(file)),
        None => (rest, None),
    };
    let (repo, revision) = match repo_part.split_once('@') {
        Some((repo, rev)) => (repo, Some(rev)),
        None => (repo_part, None),
    };
    let Some((org, name)) = repo.split_once('/') else {
        return Err(bad("repository must be ORG/NAME"));
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !valid(org) || !valid(name) || org.starts_with('.') || name.starts_with('.') {
        return Err(bad(
            "ORG and NAME must be non-empty and use only letters, digits, '-', '_' and '.'",
        ));
    }
    if let Some(rev) = revision {
        if rev.is_empty() || rev.chars().any(|c| c.is_whitespace()) {
            return Err(bad(
                "REVISION after '@' must be non-empty and contain no spaces",
            ));
        }
    }
    if let Some(file) = file {
        if file.is_empty() {
            return Err(bad("FILE after ':' is empty"));
        }
        if file.starts_with('/') || file.split('/').any(|c| c.is_empty() || c == "..") {
            return Err(bad("FILE must be a relative path inside the repository"));
        }
        if !file.to_ascii_lowercase().ends_with(".gguf") {
            return Err(bad(
                "FILE must be a .gguf file; omit it to fetch a safetensors model folder",
            ));
        }
    }
    Ok(ModelSpec::HuggingFace {
        repo: repo.to_string(),
        file: file.map(str::to_string),
        revision: revision.map(str::to_string),
    })
}

/// The four magic bytes every GGUF file starts with.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Classifies a local path: a GGUF file (checked by its magic bytes) or a folder
/// with `config.json` and safetensors weights.
pub fn classify_local(path: &Path) -> Result<ModelLocation> {
    let meta = match fs_err::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_found(&path.display().to_string(), known_models()))
        }
        Err(e) => return Err(e.into()),
    };
    let unsupported = |reason: String| Error::UnsupportedLocal {
        path: path.to_path_buf(),
        reason,
    };
    if meta.is_dir() {
        if !path.join("config.json").is_file() {
            return Err(unsupported("folder has no config.json".into()));
        }
        let has_weights = fs_err::read_dir(path)?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
            || path.join("model.safetensors.index.json").is_file();
        if !has_weights {
            return Err(unsupported(
                "folder has config.json but no *.safetensors weights".into(),
            ));
        }
        return Ok(ModelLocation::HfFolder(path.to_path_buf()));
    }
    let mut magic = [0u8; 4];
    let mut file = fs_err::File::open(path)?;
    let n = read_up_to(&mut file, &mut magic)?;
    if n == 4 && &magic == GGUF_MAGIC {
        Ok(ModelLocation::GgufFile(path.to_path_buf()))
    } else {
        Err(unsupported(format!(
            "not a GGUF file (first bytes {:?}, expected \"GGUF\") and not a folder with config.json",
            String::from_utf8_lossy(&magic[..n])
        )))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hf(repo: &str, file: Option<&str>, rev: Option<&str>) -> ModelSpec {
        ModelSpec::HuggingFace {
            repo: repo.into(),
            file: file.map(Into::into),
            revision: rev.map(Into::into),
        }
    }

    #[test]
    fn parses_aliases() {
        let spec: ModelSpec = "smollm2-135m-instruct".parse().unwrap();
        assert!(matches!(spec, ModelSpec::Alias(m) if m.name == "smollm2-135m"));
        assert_eq!(spec.to_string(), "smollm2-135m");
    }

    #[test]
    fn parses_hf_specs() {
        assert_eq!(
            ModelSpec::parse("hf:Qwen/Qwen2.5-0.5B").unwrap(),
            hf("Qwen/Qwen2.5-0.5B", None, None)
        );
        assert_eq!(
            ModelSpec::parse("hf:org/name:sub/model.Q4_K_M.gguf").unwrap(),
            hf("org/name", Some("sub/model.Q4_K_M.gguf"), None)
        );
        let s = "hf:org/name@v1.0:m.gguf";
        assert_eq!(
            ModelSpec::parse(s).unwrap(),
            hf("org/name", Some("m.gguf"), Some("v1.0"))
        );
        assert_eq!(ModelSpec::parse(s).unwrap().to_string(), s);
    }

    #[test]
    fn rejects_bad_hf_specs() {
        for bad in [
            "hf:",
            "hf:noslash",
            "hf:/name",
            "hf:org/",
            "hf:a/b/c",
            "hf:org/name:",
            "hf:org/name@:x.gguf",
            "hf:org/name:../x.gguf",
            "hf:org/name:model.safetensors",
            "hf:org name/x",
        ] {
            let err = ModelSpec::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidHfSpec { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("hf:ORG/NAME"), "{err}");
        }
    }

    #[test]
    fn unknown_names_list_aliases() {
        let err = ModelSpec::parse("no-such-model-xyz").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("model not found: no-such-model-xyz (not a known alias"),
            "{msg}"
        );
        assert!(
            msg.contains("smollm2-135m") && msg.contains("qwen2.5-coder-0.5b"),
            "{msg}"
        );
        assert!(ModelSpec::parse("").is_err());
    }

    #[test]
    fn local_paths_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("m.bin");
        std::fs::write(&gguf, b"GGUF\x03\0\0\0rest").unwrap();
        let spec = ModelSpec::parse(gguf.to_str().unwrap()).unwrap();
        assert_eq!(spec, ModelSpec::Local(gguf.clone()));
        assert_eq!(
            classify_local(&gguf).unwrap(),
            ModelLocation::GgufFile(gguf)
        );

        let junk = dir.path().join("junk.gguf");
        std::fs::write(&junk, b"GG").unwrap();
        assert!(matches!(
            classify_local(&junk),
            Err(Error::UnsupportedLocal { .. })
        ));

        let folder = dir.path().join("folder");
        std::fs::create_dir(&folder).unwrap();
        assert!(classify_local(&folder)
            .unwrap_err()
            .to_string()
            .contains("no config.json"));
        std::fs::write(folder.join("config.json"), b"{}").unwrap();
        assert!(classify_local(&folder)
            .unwrap_err()
            .to_string()
            .contains("no *.safetensors"));
        std::fs::write(folder.join("model.safetensors"), b"").unwrap();
        assert_eq!(
            classify_local(&folder).unwrap(),
            ModelLocation::HfFolder(folder.clone())
        );

        let missing = dir.path().join("missing.gguf");
        assert!(matches!(
            classify_local(&missing),
            Err(Error::ModelNotFound { .. })
        ));
        assert!(matches!(
            ModelSpec::parse(missing.to_str().unwrap()),
            Err(Error::ModelNotFound { .. })
        ));
    }
}
