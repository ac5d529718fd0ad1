//! Errors: a template file that breaks a rule (file, field, rule), a catalog that failed to
//! load, and a render that could not be completed.

use std::fmt;

use clank_core::error::InvalidInput;

/// A template file that breaks a rule: `templates/wordpress.toml: services[1].image: must pin a
/// tag, not "latest"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct TemplateError {
    /// The file as the operator knows it (`templates/wordpress.toml` for a built-in).
    pub file: String,
    /// Dotted path of the offending field (`services[1].image`), or `line N` when only the
    /// position is known (TOML syntax errors).
    pub field: String,
    /// Short machine-readable rule name: `latest`, `undefined_variable`, `cycle`, ...
    pub rule: &'static str,
    pub message: String,
}

impl TemplateError {
    pub(crate) fn new(
        file: &str,
        field: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) -> Self {
        TemplateError {
            file: file.to_owned(),
            field: field.into(),
            rule,
            message: message.into(),
        }
    }

    /// A clank-core validation error, its field placed under `parent`.
    pub(crate) fn invalid(file: &str, parent: &str, err: InvalidInput) -> Self {
        let err = if parent.is_empty() {
            err
        } else {
            err.within(parent)
        };
        TemplateError {
            file: file.to_owned(),
            field: err.field,
            rule: err.rule,
            message: err.message,
        }
    }
}

/// Every broken file of a catalog directory, reported together so an operator fixes them in one
/// pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    pub errors: Vec<TemplateError>,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogError {}

/// Why a template could not be rendered into services.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A stack name, input or derived slug that is not acceptable (field `stack`,
    /// `inputs.<name>`, ...).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The operating system's random generator failed while generating a secret.
    #[error("generating `{variable}`: the OS random generator failed: {reason}")]
    Random { variable: String, reason: String },
}
