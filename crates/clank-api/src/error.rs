//! The one error shape every failed call answers with.

/// Every error answer: a stable `code`, a message a user can act on, and the offending input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Machine-readable error code (`not_found`, `invalid_input`, `conflict`, ...).
    pub code: String,
    /// What went wrong, for a human.
    pub message: String,
    /// The input field at fault (`changes[0].value`, `settings.port`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
}
