//! A gzipped data file that decompresses past the cap (a gzip bomb: zeros compress about 1000:1) is refused
//! with an error naming the file, instead of being read into memory.

use std::io::Write;

use tuneup_eval_runner::dataset::{read_records, MAX_GUNZIPPED_BYTES};

/// The error and its sources, as the CLI prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[test]
fn a_gzip_bomb_is_refused_and_a_small_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&bomb).unwrap(),
        flate2::Compression::fast(),
    );
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..(MAX_GUNZIPPED_BYTES >> 20) + 1 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 8 << 20);
    let err = read_records(&bomb).expect_err("the bomb must be refused");
    let text = chain(&err);
    assert!(
        text.contains("bomb.jsonl.gz") && text.contains("gzip bomb"),
        "{text}"
    );

    let small = dir.path().join("small.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&small).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(b"{\"q\": 1}\n{\"q\": 2}\n").unwrap();
    gz.finish().unwrap();
    assert_eq!(read_records(&small).unwrap().len(), 2);
}
