//! One-click templates: the file format, the catalog (built-ins plus an operator's directory),
//! validation and rendering into the ordinary services of a stack. Pure logic: the only I/O is
//! reading the operator's directory in [`Catalog::load`], and the OS random generator for
//! generated secrets.
//!
//! ```text
//! Catalog::load(dir) ─► Template (validated) ─► render(..) ─► RenderedStack { services, values }
//!                                             └► upgrade_plan(old, new, ..) ─► UpgradePlan
//! ```
//!
//! The file format is documented for operators in this crate's `README.md`.

mod catalog;
mod error;
mod format;
mod interpolate;
mod render;
mod upgrade;
mod validate;

pub use catalog::{BUILTIN, Catalog};
pub use error::{CatalogError, RenderError, TemplateError};
pub use format::{
    Encoding, Role, ServiceTemplate, Template, TemplateSummary, TemplateVolume, Variable,
};
pub use render::{
    RenderContext, RenderedService, RenderedStack, RenderedVar, Values, VarValue, render,
    service_slug,
};
pub use upgrade::{Change, UpgradePlan, upgrade_plan};
pub use validate::{DATA_PATHS, SECRET_BYTES, data_path};

#[cfg(test)]
mod tests;
