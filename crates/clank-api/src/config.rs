//! Config edits: one change to a key at a scope, as the REST API and the bindings both send it.

use clank_core::InvalidInput;
use clank_core::config::ConfigChange;

/// One config edit: set `value` (sealed as a secret when `secret`), or remove the key with
/// `"unset": true` (and no value).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfigEdit {
    /// The variable's name (`DATABASE_URL`).
    pub key: String,
    /// The value to set; absent (or `null`) for an unset.
    #[serde(default)]
    pub value: Option<String>,
    /// Store the value sealed and show it only as `********`.
    #[serde(default)]
    pub secret: bool,
    /// Remove the key at this scope (the next scope up then wins).
    #[serde(default)]
    pub unset: bool,
}

impl ConfigEdit {
    /// Set `key` to a plain `value`.
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> Self {
        ConfigEdit {
            key: key.into(),
            value: Some(value.into()),
            secret: false,
            unset: false,
        }
    }

    /// Set `key` to a secret `value`.
    pub fn set_secret(key: impl Into<String>, value: impl Into<String>) -> Self {
        ConfigEdit {
            secret: true,
            ..ConfigEdit::set(key, value)
        }
    }

    /// Remove `key`.
    pub fn unset(key: impl Into<String>) -> Self {
        ConfigEdit {
            key: key.into(),
            value: None,
            secret: false,
            unset: true,
        }
    }

    /// The change it asks for; `index` is its place in the request, for the error's field.
    pub fn into_change(self, index: usize) -> Result<ConfigChange, InvalidInput> {
        match (self.unset, self.value) {
            (true, None) if !self.secret => Ok(ConfigChange::unset(self.key)),
            (true, _) => Err(InvalidInput::new(
                format!("changes[{index}]"),
                "conflict",
                "an unset takes no value or secret flag",
            )),
            (false, Some(v)) if self.secret => Ok(ConfigChange::set_secret(self.key, v)),
            (false, Some(v)) => Ok(ConfigChange::set_plain(self.key, v)),
            (false, None) => Err(InvalidInput::new(
                format!("changes[{index}].value"),
                "required",
                "a set needs a value (or `\"unset\": true`)",
            )),
        }
    }
}

impl std::fmt::Debug for ConfigEdit {
    /// Never prints a value: it may be a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigEdit")
            .field("key", &self.key)
            .field("set", &self.value.is_some())
            .field("secret", &self.secret)
            .field("unset", &self.unset)
            .finish()
    }
}

/// Config edits applied in one write, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    pub changes: Vec<ConfigEdit>,
}

impl ConfigRequest {
    /// Every edit as a change, or the first that is malformed.
    pub fn into_changes(self) -> Result<Vec<ConfigChange>, InvalidInput> {
        self.changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_change(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_value() {
        let edit = ConfigEdit::set_secret("API_KEY", "hunter2-visible-nowhere");
        assert!(!format!("{edit:?}").contains("hunter2-visible-nowhere"));
        let request = ConfigRequest {
            changes: vec![edit],
        };
        assert!(!format!("{request:?}").contains("hunter2-visible-nowhere"));
    }

    #[test]
    fn an_edit_is_a_set_or_an_unset_never_both() {
        assert!(ConfigEdit::set("A", "1").into_change(0).is_ok());
        assert!(ConfigEdit::unset("A").into_change(0).is_ok());
        let both = ConfigEdit {
            unset: true,
            ..ConfigEdit::set("A", "1")
        };
        assert_eq!(both.into_change(3).unwrap_err().field, "changes[3]");
        let neither: ConfigEdit = serde_json::from_str(r#"{"key":"A"}"#).unwrap();
        assert_eq!(
            neither.into_change(0).unwrap_err().field,
            "changes[0].value"
        );
    }
}
