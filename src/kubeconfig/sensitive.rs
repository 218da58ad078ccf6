//! Holders for secret material (tokens, private keys, whole kubeconfigs) whose `Debug` never shows it.

use std::fmt;

use serde::{Deserialize, Serialize};

const REDACTED: &str = "<redacted>";

/// A secret string, such as a bearer token or base64 private key. `Debug` prints `<redacted>`,
/// there is no `Display`, and the value is read with [`SecretString::expose`] only.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call it only where the value leaves the process on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Secret bytes, such as a rendered kubeconfig or an Argo CD cluster config. `Debug` prints
/// `<redacted>` and the length only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps secret bytes.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(value.into())
    }

    /// The bytes themselves; call it only where they leave the process on purpose.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Gives the bytes up, e.g. to put them into a Secret's `data`.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REDACTED} ({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let cases: [(String, &str); 3] = [
            (format!("{:?}", SecretString::new("hunter2")), "hunter2"),
            (
                format!("{:?}", SecretBytes::new(b"hunter2".to_vec())),
                "hunter2",
            ),
            (
                format!("{:#?}", Some(SecretString::new("s3cr3t"))),
                "s3cr3t",
            ),
        ];
        for (debug, secret) in cases {
            assert!(debug.contains(REDACTED), "{debug}");
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn serde_is_transparent() {
        let s = SecretString::new("tok");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"tok\"");
        let back: SecretString = serde_json::from_str("\"tok\"").unwrap();
        assert_eq!(back.expose(), "tok");
    }
}
