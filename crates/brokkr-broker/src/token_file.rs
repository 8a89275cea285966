//! Reading `admin.token_file`: one capped read of a regular file, refused with a reason that never shows the content.

use std::path::{Path, PathBuf};

use brokkr_config::{Secret, secret::is_visible_ascii};

use crate::mounted_file;

/// The largest token file read, in bytes: a token is tens of bytes, and a wrong path must not cost memory.
pub const MAX_TOKEN_FILE: u64 = 4096;

/// The shortest token taken from the file, in bytes: the same bound as `admin.token`'s.
pub use brokkr_config::secret::MIN_TOKEN_BYTES;

/// Why `admin.token_file` could not be used; the token in force stays. No variant shows the file's content.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read: missing, a dangling `..data` link, no permission, not a regular file, or over
    /// [`MAX_TOKEN_FILE`].
    #[error("admin.token_file {path} cannot be read")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty, or holds only a newline.
    #[error("admin.token_file {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The token is shorter than [`MIN_TOKEN_BYTES`].
    #[error("admin.token_file {path} holds a token shorter than {MIN_TOKEN_BYTES} bytes")]
    TooShort {
        /// The file.
        path: PathBuf,
    },
    /// The file holds a byte that is not visible ASCII, so the token could not be sent in a header.
    #[error(
        "admin.token_file {path} holds a character that cannot be sent in an HTTP header (only visible ASCII is \
         allowed); content not shown: it is a secret"
    )]
    NotVisibleAscii {
        /// The file.
        path: PathBuf,
    },
}

/// The token in `path`, without one trailing newline (`echo token > file`, or `\r\n`).
pub fn read_token(path: &Path) -> Result<Secret, TokenFileError> {
    let bytes = mounted_file::read_capped(path, MAX_TOKEN_FILE)
        .map_err(|source| TokenFileError::Read { path: path.to_owned(), source })?;
    let text = match bytes.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => &bytes,
    };
    if text.is_empty() {
        return Err(TokenFileError::Empty { path: path.to_owned() });
    }
    let Some(token) = std::str::from_utf8(text).ok().filter(|t| is_visible_ascii(t)) else {
        return Err(TokenFileError::NotVisibleAscii { path: path.to_owned() });
    };
    if token.len() < MIN_TOKEN_BYTES {
        return Err(TokenFileError::TooShort { path: path.to_owned() });
    }
    Ok(Secret::new(token))
}
