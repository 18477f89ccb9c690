//! The harness's error type.

/// What went wrong while setting up a test fixture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// The operation or path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external tool (`docker-registry`, `skopeo`, `openssl`, `htpasswd`) failed.
    #[error("{tool}: {detail}")]
    Tool {
        /// The command.
        tool: String,
        /// Its stderr or exit status.
        detail: String,
    },
    /// Building an OCI object failed.
    #[error("building {what}: {detail}")]
    Build {
        /// The object.
        what: String,
        /// Why.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn tool(tool: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Tool {
            tool: tool.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn build(what: impl Into<String>, detail: impl ToString) -> Self {
        Error::Build {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs a command and returns its stdout, or a `Tool` error with its stderr.
pub(crate) fn run(cmd: &mut std::process::Command) -> Result<Vec<u8>> {
    let name = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::io(name.clone(), e))?;
    if !out.status.success() {
        return Err(Error::tool(
            name,
            format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(out.stdout)
}
