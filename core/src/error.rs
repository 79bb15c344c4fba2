use std::fmt;

/// Every failure the library reports: a one-line message that names the thing
/// at fault and what was expected of it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no usable GPU adapter ({0})")]
    NoAdapter(String),
    #[error("GPU device request failed: {0}")]
    Device(String),
    #[error(
        "buffer '{name}' needs {bytes} bytes but this adapter allows {limit} ({limit_name}); use a smaller batch, sequence or model"
    )]
    BufferTooLarge {
        name: String,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },
    #[error("shader '{shader}' entry '{entry}': {message}")]
    Shader {
        shader: String,
        entry: String,
        message: String,
    },
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, detail: impl fmt::Display) -> Self {
        Error::Shape {
            op,
            detail: detail.to_string(),
        }
    }

    pub fn file(path: impl AsRef<std::path::Path>, message: impl fmt::Display) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            message: message.to_string(),
        }
    }
}
