//! Tool calls in the model's own output: the parser lives in [`tuneup_agent::toolcall`].
pub use tuneup_agent::toolcall::*;
