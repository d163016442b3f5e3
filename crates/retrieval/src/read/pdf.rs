//! The text layer of a PDF, via `pdf-extract`.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Extracts the text of every page. `pdf-extract` can panic on malformed files, so the call is isolated with
/// `catch_unwind`; a panic, a parse error or an encrypted file becomes an error message.
pub(super) fn extract_text(bytes: &[u8]) -> Result<String, String> {
    if !bytes.starts_with(b"%PDF") {
        return Err("not a PDF file (no %PDF header)".into());
    }
    match catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem(bytes)
    })) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(format!("unreadable PDF (broken or encrypted): {e}")),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            Err(format!("unreadable PDF (parser failed: {why})"))
        }
    }
}
