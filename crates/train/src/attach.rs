//! Attaching a saved adapter to a loaded model for inference
//! (`tuneup chat --adapter DIR`, the server, evaluation).

use std::path::Path;

use tuneup_models::Decoder;

use crate::error::{Error, Result};
use crate::lora::{LoraInit, LoraWrapper};
use crate::peft::{self, QkRowOrder};

/// Reads the PEFT adapter in `dir` and wraps the matching projections of
/// `decoder`. Returns the number of adapted modules. Fails when the adapter
/// names a module the model does not have or its shapes do not fit.
pub fn attach_adapter(decoder: &mut Decoder, dir: &Path) -> Result<usize> {
    let order = QkRowOrder::of(decoder);
    let adapter = peft::load(dir, order)?;
    let wanted = adapter.factors.len();
    let names: Vec<String> = adapter.factors.keys().cloned().collect();
    let wrapper = LoraWrapper::new(
        adapter.config,
        LoraInit::Given(adapter.factors),
        decoder.device(),
    )?;
    decoder
        .wrap_linears(&wrapper)
        .map_err(|e| Error::bad_file(dir, e.to_string()))?;
    let attached = wrapper.adapters().modules;
    if attached.len() != wanted {
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !attached.contains_key(*n))
            .collect();
        return Err(Error::bad_file(
            dir,
            format!(
                "the adapter has weights for modules this model does not have: {missing:?} \
                 (was it trained on another base model?)"
            ),
        ));
    }
    Ok(attached.len())
}
