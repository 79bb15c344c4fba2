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
    #[error("the GPU ran out of memory ({0}); use a smaller batch, sequence or model")]
    OutOfMemory(String),
    #[error(
        "the GPU device was lost ({0}); if it ran out of memory use a smaller batch, sequence or model, otherwise check the driver (samnet doctor) and run again"
    )]
    DeviceLost(String),
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

    /// The same error, saying what was being done; GPU faults keep their kind.
    pub fn during(self, what: impl fmt::Display) -> Self {
        match self {
            Error::Gpu(m) => Error::Gpu(format!("{what}: {m}")),
            Error::OutOfMemory(m) => Error::OutOfMemory(format!("{what}: {m}")),
            Error::DeviceLost(m) => Error::DeviceLost(format!("{what}: {m}")),
            other => other,
        }
    }

    pub fn file(path: impl AsRef<std::path::Path>, message: impl fmt::Display) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            message: message.to_string(),
        }
    }
}
