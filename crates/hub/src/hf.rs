//! Fetching from the Hugging Face hub through hf-hub's synchronous API.
//!
//! Files land in hf-hub's own cache (`$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`) and are returned from its snapshot directory.
//! `HF_ENDPOINT` selects the endpoint and `HF_TOKEN` (else hf-hub's token file)
//! authenticates. Files already in the cache are used without any network access.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Repo, RepoType};

use crate::error::{Error, Result};
use crate::progress::{HfProgress, PullProgress};
use crate::pull::PullOptions;
use crate::spec::ModelLocation;

/// Default hub endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Files always fetched for a model folder.
pub const REQUIRED_FOLDER_FILES: &[&str] =
    &["config.json", "tokenizer.json", "tokenizer_config.json"];
/// Files fetched for a model folder when the repository has them.
pub const OPTIONAL_FOLDER_FILES: &[&str] = &["generation_config.json"];
/// Single-file safetensors weights.
pub const SINGLE_WEIGHTS: &str = "model.safetensors";
/// Index of sharded safetensors weights.
pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// A repository handle: hf-hub's API plus its cache, for one repo and revision.
pub(crate) struct Hub {
    api: Option<Api>,
    builder: Option<ApiBuilder>,
    cache: hf_hub::Cache,
    repo: Repo,
    repo_id: String,
    revision: String,
    endpoint: String,
}

impl Hub {
    /// A handle for `repo_id` at `revision` (default `main`); builds no network client yet.
    pub fn new(repo_id: &str, revision: Option<&str>, opts: &PullOptions) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let endpoint = opts
            .hf_endpoint
            .clone()
            .or_else(|| env("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let cache = opts
            .hf_cache_dir
            .clone()
            .map(hf_hub::Cache::new)
            .unwrap_or_else(hf_hub::Cache::from_env);
        let mut builder = ApiBuilder::from_cache(cache.clone())
            .with_endpoint(endpoint.clone())
            .with_progress(false);
        if let Some(token) = env("HF_TOKEN") {
            builder = builder.with_token(Some(token));
        }
        let revision = revision.unwrap_or("main").to_string();
        let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.clone());
        Self {
            api: None,
            builder: Some(builder),
            cache,
            repo,
            repo_id: repo_id.to_string(),
            revision,
            endpoint,
        }
    }

    /// The cached copy of `file`, without network access.
    pub fn cached(&self, file: &str) -> Option<PathBuf> {
        self.cache.repo(self.repo.clone()).get(file)
    }

    /// `file` from the cache, else downloaded.
    pub fn get(&mut self, file: &str, progress: &mut dyn PullProgress) -> Result<PathBuf> {
        if let Some(path) = self.cached(file) {
            return Ok(path);
        }
        if self.api.is_none() {
            let builder = self
                .builder
                .take()
                .unwrap_or_else(|| ApiBuilder::from_cache(self.cache.clone()));
            self.api = Some(builder.build().map_err(|e| self.classify(file, e))?);
        }
        let Some(api) = self.api.as_ref() else {
            return Err(self.other(file, "no API client"));
        };
        tracing::info!(repo = %self.repo_id, file, "downloading from the Hugging Face hub");
        api.repo(self.repo.clone())
            .download_with_progress(file, HfProgress::new(progress))
            .map_err(|e| self.classify(file, e))
    }

    /// Like [`Hub::get`], but a file missing from the repository is `Ok(None)`.
    pub fn get_optional(
        &mut self,
        file: &str,
        progress: &mut dyn PullProgress,
    ) -> Result<Option<PathBuf>> {
        match self.get(file, progress) {
            Ok(p) => Ok(Some(p)),
            Err(Error::HubFileNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn other(&self, file: &str, detail: impl Into<String>) -> Error {
        Error::Hub {
            repo: self.repo_id.clone(),
            file: file.to_string(),
            detail: detail.into(),
        }
    }

    fn classify(&self, file: &str, err: ApiError) -> Error {
        match err {
            ApiError::TooManyRetries(inner) => self.classify(file, *inner),
            ApiError::RequestError(boxed) => match *boxed {
                ureq::Error::Status(404, _) => Error::HubFileNotFound {
                    repo: self.repo_id.clone(),
                    revision: self.revision.clone(),
                    file: file.to_string(),
                },
                ureq::Error::Status(status @ (401 | 403), _) => Error::HubAccessDenied {
                    repo: self.repo_id.clone(),
                    file: file.to_string(),
                    status,
                },
                ureq::Error::Status(status, response) => self.other(
                    file,
                    format!(
                        "HTTP {status} {} from {}",
                        response.status_text(),
                        self.endpoint
                    ),
                ),
                ureq::Error::Transport(t) => Error::HubUnreachable {
                    endpoint: self.endpoint.clone(),
                    repo: self.repo_id.clone(),
                    file: file.to_string(),
                    detail: t.to_string(),
                },
            },
            other => self.other(file, other.to_string()),
        }
    }
}

/// Fetches one file (a `.gguf`) and returns its local path.
pub(crate) fn pull_file(
    hub: &mut Hub,
    file: &str,
    progress: &mut dyn PullProgress,
) -> Result<ModelLocation> {
    hub.get(file, progress).map(ModelLocation::GgufFile)
}

/// The model folder if every needed file is already cached (no network).
pub(crate) fn cached_folder(hub: &Hub) -> Option<ModelLocation> {
    let mut names: Vec<String> = REQUIRED_FOLDER_FILES
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(index) = hub.cached(WEIGHTS_INDEX) {
        names.extend(shard_files(&std::fs::read_to_string(index).ok()?).ok()?);
    } else {
        names.push(SINGLE_WEIGHTS.to_string());
    }
    let paths = names
        .iter()
        .map(|n| hub.cached(n))
        .collect::<Option<Vec<_>>>()?;
    same_snapshot(&names, &paths).map(ModelLocation::HfFolder)
}

/// Fetches a model folder: config, tokenizer files and safetensors weights
/// (single file, or index plus every shard it lists).
pub(crate) fn pull_folder(hub: &mut Hub, progress: &mut dyn PullProgress) -> Result<ModelLocation> {
    if let Some(found) = cached_folder(hub) {
        return Ok(found);
    }
    let mut names: Vec<String> = REQUIRED_FOLDER_FILES
        .iter()
        .map(|s| s.to_string())
        .collect();
    for name in REQUIRED_FOLDER_FILES {
        hub.get(name, progress)?;
    }
    for name in OPTIONAL_FOLDER_FILES {
        if hub.get_optional(name, progress)?.is_some() {
            names.push(name.to_string());
        }
    }
    match hub.get_optional(WEIGHTS_INDEX, progress)? {
        Some(index) => {
            let text = fs_err::read_to_string(&index)?;
            let shards = shard_files(&text).map_err(|reason| Error::BadShardIndex {
                path: index.clone(),
                reason,
            })?;
            for shard in &shards {
                hub.get(shard, progress)?;
            }
            names.push(WEIGHTS_INDEX.to_string());
            names.extend(shards);
        }
        None => {
            hub.get(SINGLE_WEIGHTS, progress)?;
            names.push(SINGLE_WEIGHTS.to_string());
        }
    }
    // If the branch moved while we were downloading, files can be spread over two
    // snapshots; fetching again through the (now updated) ref gathers them in one.
    for _ in 0..3 {
        let paths = names
            .iter()
            .map(|n| hub.get(n, progress))
            .collect::<Result<Vec<_>>>()?;
        if let Some(dir) = same_snapshot(&names, &paths) {
            return Ok(ModelLocation::HfFolder(dir));
        }
    }
    Err(hub.other(
        "config.json",
        "the repository kept changing while downloading; try again",
    ))
}

/// The common snapshot directory if every `paths[i]` is `<dir>/<names[i]>`.
fn same_snapshot(names: &[String], paths: &[PathBuf]) -> Option<PathBuf> {
    let dir = paths.first()?.parent()?.to_path_buf();
    names
        .iter()
        .zip(paths)
        .all(|(n, p)| *p == dir.join(n))
        .then_some(dir)
}

/// The shard files listed by a `model.safetensors.index.json`, sorted and deduplicated.
pub fn shard_files(index_json: &str) -> std::result::Result<Vec<String>, String> {
    let value: serde_json::Value =
        serde_json::from_str(index_json).map_err(|e| format!("not valid JSON: {e}"))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| "missing \"weight_map\" object".to_string())?;
    let mut files = BTreeSet::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| format!("weight_map entry {tensor:?} is not a string"))?;
        let safe = !file.is_empty()
            && Path::new(file)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !safe || file.contains('\\') {
            return Err(format!(
                "shard name {file:?} for {tensor:?} is not a plain relative path"
            ));
        }
        files.insert(file.to_string());
    }
    if files.is_empty() {
        return Err("\"weight_map\" lists no shards".into());
    }
    Ok(files.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_shards_sorted_and_unique() {
        let index = r#"{"metadata": {"total_size": 10}, "weight_map": {
            "b.weight": "model-00002-of-00002.safetensors",
            "a.weight": "model-00001-of-00002.safetensors",
            "c.weight": "model-00001-of-00002.safetensors"}}"#;
        assert_eq!(
            shard_files(index).unwrap(),
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
    }

    #[test]
    fn rejects_bad_indexes() {
        assert!(shard_files("not json")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(shard_files(r#"{"metadata": {}}"#)
            .unwrap_err()
            .contains("weight_map"));
        assert!(shard_files(r#"{"weight_map": {}}"#)
            .unwrap_err()
            .contains("no shards"));
        assert!(shard_files(r#"{"weight_map": {"a": 3}}"#)
            .unwrap_err()
            .contains("not a string"));
        assert!(shard_files(r#"{"weight_map": {"a": "../x.safetensors"}}"#).is_err());
        assert!(shard_files(r#"{"weight_map": {"a": "/abs.safetensors"}}"#).is_err());
    }

    #[test]
    fn snapshot_dir_must_be_shared() {
        let names = vec!["config.json".to_string(), "model.safetensors".to_string()];
        let a = PathBuf::from("/hf/snapshots/abc");
        let same = vec![a.join("config.json"), a.join("model.safetensors")];
        assert_eq!(same_snapshot(&names, &same), Some(a.clone()));
        let split = vec![
            a.join("config.json"),
            PathBuf::from("/hf/snapshots/def/model.safetensors"),
        ];
        assert_eq!(same_snapshot(&names, &split), None);
    }
}
