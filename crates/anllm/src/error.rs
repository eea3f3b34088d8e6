//! The one error type of the core library.
//!
//! Variants carry the data a user needs to act on the failure (which file, which tensor, which
//! field); there is no catch-all string variant for model code to hide behind.

use std::path::PathBuf;

/// Everything that can go wrong in the core library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing or out of range.
    #[error("invalid config field `{field}`: {reason}")]
    Config {
        /// HF `config.json` / GGUF metadata name of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("tensor `{name}` is missing from {}", path.display())]
    MissingTensor {
        /// Checkpoint name of the tensor.
        name: String,
        /// File or directory that was searched.
        path: PathBuf,
    },
    /// A tensor or input has the wrong shape.
    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked (a tensor name or an operation).
        op: String,
        /// Expected shape, rendered.
        expected: String,
        /// Actual shape, rendered.
        got: String,
    },
    /// The request does not fit in the model's context window.
    #[error(
        "context full: {used} tokens already used + {requested} requested > context length {capacity}"
    )]
    ContextFull {
        /// Tokens already in the stream.
        used: usize,
        /// Tokens requested now.
        requested: usize,
        /// The model's maximum context length.
        capacity: usize,
    },
    /// The tokenizer cannot handle the input or the vocabulary is malformed.
    #[error("tokenizer: {reason}")]
    Tokenizer {
        /// What went wrong.
        reason: String,
    },
    /// A file is not in a format we can read (truncated, corrupt, wrong magic).
    #[error("cannot read {}: {reason}", path.display())]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A feature of a checkpoint or request that anllm does not support.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// An I/O error on a named path.
    #[error("{}", path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from the tensor backend.
    #[error(transparent)]
    Backend(#[from] candle_core::Error),
}

/// Result with the core library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::Tokenizer`].
    pub fn tokenizer(reason: impl std::fmt::Display) -> Self {
        Error::Tokenizer {
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::Config`].
    pub fn config(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(what: impl std::fmt::Display) -> Self {
        Error::Unsupported {
            what: what.to_string(),
        }
    }
}
