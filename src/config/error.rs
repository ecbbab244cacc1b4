//! The one error a configuration problem produces: file, key, problem.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// Turns a deserialisation error into one that names the key it happened at.
    pub fn from_serde<E: fmt::Display>(
        file: &Path,
        error: serde_path_to_error::Error<E>,
    ) -> ConfigError {
        let mut key = error.path().to_string();
        let problem = error.inner().to_string();
        // serde reports an unknown key at its parent; name the key itself.
        if let Some(rest) = problem.strip_prefix("unknown field `") {
            if let Some(name) = rest.split('`').next() {
                key = if key == "." || key.is_empty() {
                    name.to_string()
                } else {
                    format!("{key}.{name}")
                };
            }
        }
        if key == "." {
            key = "(top level)".to_string();
        }
        ConfigError::new(file, key, problem)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "configuration error in {}: key `{}`: {}",
            self.file.display(),
            self.key,
            self.problem
        )
    }
}

impl std::error::Error for ConfigError {}
