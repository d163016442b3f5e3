//! LoRA adapters served beside the base model. A request's `model` of
//! `BASE+NAME` selects adapter `NAME`; each adapter is a copy of the decoder
//! whose projections are wrapped with the adapter's factors (the base weights
//! are shared, not copied). Adapters load at start-up (`--lora NAME=DIR`) or at
//! run time through the admin endpoints, and unload without a restart; a
//! generation already running keeps its adapter until it ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tuneup_models::Decoder;

/// One loaded adapter.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// Its name (the part after `+` in the model id).
    pub name: String,
    /// The folder it was read from.
    pub path: PathBuf,
    /// Number of adapted projections.
    pub modules: usize,
    /// The base decoder with this adapter attached.
    pub decoder: Arc<Decoder>,
}

/// Why an adapter could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The name is not usable in a model id.
    #[error("adapter name '{0}' is invalid: use 1-64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    /// The name is taken.
    #[error("an adapter named '{0}' is already loaded; unload it first")]
    Exists(String),
    /// The folder is not an adapter for this base model.
    #[error("cannot load adapter '{name}' from {}: {message}", path.display())]
    Load {
        /// Adapter name.
        name: String,
        /// Folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The adapters of one base model.
#[derive(Debug)]
pub struct Adapters {
    base: Decoder,
    loaded: RwLock<BTreeMap<String, Adapter>>,
}

impl Adapters {
    /// No adapters yet over `base` (a clone of the served decoder; it shares the weights).
    pub fn new(base: Decoder) -> Self {
        Self {
            base,
            loaded: RwLock::new(BTreeMap::new()),
        }
    }

    /// Reads the PEFT adapter in `dir` and serves it as `name` (blocking: reads files).
    pub fn load(&self, name: &str, dir: &Path) -> Result<Adapter, AdapterError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(AdapterError::BadName(name.to_string()));
        }
        if self.get(name).is_some() {
            return Err(AdapterError::Exists(name.to_string()));
        }
        let mut decoder = self.base.clone();
        let modules =
            tuneup_train::attach_adapter(&mut decoder, dir).map_err(|e| AdapterError::Load {
                name: name.to_string(),
                path: dir.to_path_buf(),
                message: e.to_string(),
            })?;
        let adapter = Adapter {
            name: name.to_string(),
            path: dir.to_path_buf(),
            modules,
            decoder: Arc::new(decoder),
        };
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        if loaded.contains_key(name) {
            return Err(AdapterError::Exists(name.to_string()));
        }
        loaded.insert(name.to_string(), adapter.clone());
        Ok(adapter)
    }

    /// Stops serving `name`; whether it was loaded.
    pub fn unload(&self, name: &str) -> bool {
        self.loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some()
    }

    /// The adapter called `name`.
    pub fn get(&self, name: &str) -> Option<Adapter> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every loaded adapter, by name.
    pub fn list(&self) -> Vec<Adapter> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
