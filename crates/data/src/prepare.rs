//! The whole preparation: read every input, drop over-long records, remove duplicates, split, count, write.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::clean::{approx_tokens, drop_long, APPROX_TOKENS};
use crate::dedup::{normalized, Deduper};
use crate::error::{io, Error, Result};
use crate::read::{read_records, Format, ReadOptions, Rejected, SourcedRecord};
use crate::record::{write_atomic, write_jsonl, ChatRecord, RejectKind};
use crate::split::{assign, Split, SplitRatios};
use crate::stats::{histogram, token_stats, InputStats, Settings, SplitStats, Stats};

/// How to prepare a data set.
#[derive(Debug)]
pub struct PrepareOptions {
    /// Format of every input ([`Format::Auto`]: detected per file).
    pub format: Format,
    /// System prompt and text-to-SQL schemas.
    pub read: ReadOptions,
    /// Records with more tokens are dropped (0 = no limit).
    pub max_tokens: usize,
    /// Split seed.
    pub seed: u64,
    /// Split fractions.
    pub ratios: SplitRatios,
    /// Near-duplicate threshold: estimated Jaccard similarity in (0, 1].
    pub near_dup_threshold: f64,
    /// Keep each database's text-to-SQL records in one split.
    pub group_by_db: bool,
    /// How the token counter counts, for the statistics (e.g. `qwen2.5-coder-0.5b chat template`).
    pub token_counter: String,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            read: ReadOptions::default(),
            max_tokens: 2048,
            seed: 42,
            ratios: SplitRatios::default(),
            near_dup_threshold: 0.9,
            group_by_db: false,
            token_counter: APPROX_TOKENS.to_owned(),
        }
    }
}

/// A prepared data set.
#[derive(Debug)]
pub struct Prepared {
    /// Train, validation and test records (index with `Split as usize`), each in input order.
    pub splits: [Vec<SourcedRecord>; 3],
    /// Every record not kept, by input file and line.
    pub rejected: Vec<Rejected>,
    /// The statistics.
    pub stats: Stats,
}

/// Prepares `inputs` with [`approx_tokens`] as the token counter.
pub fn prepare_approx(inputs: &[PathBuf], opts: &PrepareOptions) -> Result<Prepared> {
    prepare(inputs, opts, &approx_tokens)
}

/// Reads every input ([`read_records`]), drops records over `max_tokens` by `count`, removes exact and near
/// duplicates in input order (the first occurrence is kept), and assigns the rest to splits by a seeded hash
/// of their normalised text (of their `db_id` with `group_by_db`).
pub fn prepare(
    inputs: &[PathBuf],
    opts: &PrepareOptions,
    count: &dyn Fn(&ChatRecord) -> usize,
) -> Result<Prepared> {
    if !(opts.near_dup_threshold > 0.0 && opts.near_dup_threshold <= 1.0) {
        return Err(Error::Invalid(format!(
            "near-duplicate threshold {} is not in (0, 1]",
            opts.near_dup_threshold
        )));
    }
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    let mut input_stats = Vec::new();
    for path in inputs {
        let outcome = read_records(path, opts.format, &opts.read)?;
        input_stats.push(InputStats {
            file: path.clone(),
            format: outcome.format,
            records: outcome.records.len(),
            rejected: outcome.rejected.len(),
        });
        records.extend(outcome.records);
        rejected.extend(outcome.rejected);
    }
    let read = records.len() + rejected.len();

    let (counted, too_long) = drop_long(records, opts.max_tokens, count);
    rejected.extend(too_long);

    let mut deduper = Deduper::new(opts.near_dup_threshold);
    let mut splits: [Vec<SourcedRecord>; 3] = Default::default();
    let mut split_stats: BTreeMap<Split, SplitStats> = Split::ALL
        .iter()
        .map(|&s| (s, SplitStats::default()))
        .collect();
    let mut kept_tokens = Vec::new();
    for (r, tokens) in counted {
        if let Some((kind, reason)) = deduper.check(&r.record, &r.source, r.db_id.as_deref()) {
            rejected.push(Rejected {
                source: r.source,
                kind,
                reason,
            });
            continue;
        }
        let key = match (&r.db_id, opts.group_by_db) {
            (Some(db), true) => format!("db_id:{db}"),
            _ => normalized(&r.record.full_text()),
        };
        let split = assign(&key, opts.seed, &opts.ratios);
        let st = split_stats.entry(split).or_default();
        st.records += 1;
        st.tokens += tokens;
        kept_tokens.push(tokens);
        splits[split as usize].push(r);
    }

    // Report rejections in input order, whatever stage found them.
    let order: HashMap<&Path, usize> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| (p.as_path(), i))
        .collect();
    rejected.sort_by_key(|r| (order.get(r.source.path.as_path()).copied(), r.source.line));

    let mut by_kind: BTreeMap<RejectKind, usize> =
        RejectKind::ALL.iter().map(|&k| (k, 0)).collect();
    for r in &rejected {
        *by_kind.entry(r.kind).or_default() += 1;
    }
    let stats = Stats {
        inputs: input_stats,
        read,
        rejected: by_kind,
        kept: kept_tokens.len(),
        splits: split_stats,
        tokens: token_stats(&opts.token_counter, &kept_tokens),
        histogram: histogram(&kept_tokens),
        settings: Settings {
            seed: opts.seed,
            split: opts.ratios,
            max_tokens: opts.max_tokens,
            near_dup_threshold: opts.near_dup_threshold,
            group_by_db: opts.group_by_db,
        },
    };
    Ok(Prepared {
        splits,
        rejected,
        stats,
    })
}

impl Prepared {
    /// The records of `split`.
    pub fn split(&self, split: Split) -> &[SourcedRecord] {
        &self.splits[split as usize]
    }

    /// Writes `dir/{train,validation,test}.jsonl` (OpenAI chat JSONL), `dir/rejected.jsonl` and
    /// `dir/stats.json`, each atomically; creates `dir` when missing.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for s in Split::ALL {
            write_jsonl(
                &dir.join(format!("{}.jsonl", s.name())),
                self.split(s).iter().map(|r| &r.record),
            )?;
        }
        write_jsonl(&dir.join("rejected.jsonl"), &self.rejected)?;
        let stats = dir.join("stats.json");
        let mut json = serde_json::to_vec_pretty(&self.stats).map_err(|e| Error::Io {
            path: stats.clone(),
            source: e.into(),
        })?;
        json.push(b'\n');
        write_atomic(&stats, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_chat_jsonl;

    fn alpaca_line(i: usize, output: &str) -> String {
        serde_json::json!({"instruction": format!("Question number {i}?"), "output": output})
            .to_string()
    }

    #[test]
    fn end_to_end_in_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let mut lines: Vec<String> = (0..200)
            .map(|i| alpaca_line(i, &format!("Answer {i}.")))
            .collect();
        lines.push(alpaca_line(0, "answer  0."));
        lines.push(alpaca_line(7, &"word ".repeat(3000)));
        lines.push("{broken".into());
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();

        let opts = PrepareOptions::default();
        let p = prepare_approx(std::slice::from_ref(&input), &opts).unwrap();
        let kinds: Vec<(usize, RejectKind)> =
            p.rejected.iter().map(|r| (r.source.line, r.kind)).collect();
        assert_eq!(
            kinds,
            [
                (201, RejectKind::ExactDuplicate),
                (202, RejectKind::TooLong),
                (203, RejectKind::Malformed)
            ]
        );
        assert_eq!(p.stats.read, 203);
        assert_eq!(p.stats.kept, 200);
        assert!(p.split(Split::Validation).len() + p.split(Split::Test).len() > 5);
        assert!(p.split(Split::Train).len() > 160);

        let out = dir.path().join("out");
        p.write(&out).unwrap();
        let train = read_chat_jsonl(&out.join("train.jsonl")).unwrap();
        assert_eq!(train.len(), p.split(Split::Train).len());
        let rejected = std::fs::read_to_string(out.join("rejected.jsonl")).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(rejected.lines().next().unwrap()).unwrap();
        assert_eq!(first["line"], 201);
        assert_eq!(first["unit"], "line");
        assert_eq!(first["kind"], "exact_duplicate");
        assert!(
            first["reason"].as_str().unwrap().ends_with("in.jsonl:1"),
            "{first}"
        );
        let stats: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
        assert_eq!(stats["kept"], 200);
        assert_eq!(stats["rejected"]["too_long"], 1);

        // Adding records moves none of the others.
        let mut more = lines.clone();
        more.extend((200..300).map(|i| alpaca_line(i, &format!("Answer {i}."))));
        std::fs::write(&input, more.join("\n") + "\n").unwrap();
        let q = prepare_approx(std::slice::from_ref(&input), &opts).unwrap();
        for s in Split::ALL {
            let lines_q: Vec<usize> = q
                .split(s)
                .iter()
                .map(|r| r.source.line)
                .filter(|&l| l <= 203)
                .collect();
            let lines_p: Vec<usize> = p.split(s).iter().map(|r| r.source.line).collect();
            assert_eq!(lines_p, lines_q, "{s:?}");
        }
    }

    #[test]
    fn bad_threshold_is_an_error() {
        let opts = PrepareOptions {
            near_dup_threshold: 1.5,
            ..PrepareOptions::default()
        };
        assert!(prepare_approx(&[], &opts).is_err());
    }
}
