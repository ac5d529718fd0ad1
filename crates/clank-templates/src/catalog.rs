//! The catalog: the templates built into Clank, overridden or extended by an operator's
//! directory of `*.toml` files.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{CatalogError, TemplateError};
use crate::format::{Template, TemplateSummary};

/// The built-in templates, embedded in the binary: (file name, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("ghost.toml", include_str!("../templates/ghost.toml")),
    ("gitea.toml", include_str!("../templates/gitea.toml")),
    ("mariadb.toml", include_str!("../templates/mariadb.toml")),
    ("minio.toml", include_str!("../templates/minio.toml")),
    ("mongodb.toml", include_str!("../templates/mongodb.toml")),
    ("mysql.toml", include_str!("../templates/mysql.toml")),
    ("n8n.toml", include_str!("../templates/n8n.toml")),
    (
        "plausible.toml",
        include_str!("../templates/plausible.toml"),
    ),
    ("postgres.toml", include_str!("../templates/postgres.toml")),
    ("redis.toml", include_str!("../templates/redis.toml")),
    (
        "uptime-kuma.toml",
        include_str!("../templates/uptime-kuma.toml"),
    ),
    (
        "wordpress.toml",
        include_str!("../templates/wordpress.toml"),
    ),
];

/// Templates by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    templates: BTreeMap<String, Template>,
}

impl Catalog {
    /// Only the built-in templates.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::load(None)
    }

    /// The built-ins, then every `*.toml` file of `dir` (not recursive): a file whose `name` is
    /// a built-in's replaces it, others are added. A file's `name` must be its file name
    /// without `.toml`. Every broken file is reported, each as `file: field: rule`.
    pub fn load(dir: Option<&Path>) -> Result<Catalog, CatalogError> {
        let mut templates = BTreeMap::new();
        let mut errors = Vec::new();
        for (file, text) in BUILTIN {
            add(
                &mut templates,
                &mut errors,
                &format!("templates/{file}"),
                file,
                text,
            );
        }
        if let Some(dir) = dir {
            match read_dir(dir) {
                Ok(files) => {
                    for (path, text) in files {
                        let label = path.display().to_string();
                        let file_name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        match text {
                            Ok(text) => {
                                add(&mut templates, &mut errors, &label, &file_name, &text);
                            }
                            Err(e) => errors.push(TemplateError::new(
                                &label,
                                "(file)",
                                "io",
                                format!("cannot be read: {e}"),
                            )),
                        }
                    }
                }
                Err(e) => errors.push(TemplateError::new(
                    &dir.display().to_string(),
                    "(directory)",
                    "io",
                    format!("cannot be listed: {e}"),
                )),
            }
        }
        if errors.is_empty() {
            Ok(Catalog { templates })
        } else {
            Err(CatalogError { errors })
        }
    }

    pub fn get(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    /// Every template, by name.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    /// Name, title, version and category of every template, by name.
    pub fn list(&self) -> Vec<TemplateSummary> {
        self.templates.values().map(Template::summary).collect()
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }
}

fn add(
    templates: &mut BTreeMap<String, Template>,
    errors: &mut Vec<TemplateError>,
    label: &str,
    file_name: &str,
    text: &str,
) {
    match Template::parse(label, text) {
        Ok(t) => {
            let stem = file_name.strip_suffix(".toml").unwrap_or(file_name);
            if t.name() != stem {
                errors.push(TemplateError::new(
                    label,
                    "name",
                    "file_name",
                    format!(
                        "the template is called `{}` but its file is `{file_name}`; name the \
                         file `{}.toml`",
                        t.name(),
                        t.name()
                    ),
                ));
            } else {
                templates.insert(t.name().to_owned(), t);
            }
        }
        Err(e) => errors.push(e),
    }
}

type DirEntryText = (std::path::PathBuf, std::io::Result<String>);

/// The `*.toml` files of `dir`, sorted by name, with their text.
fn read_dir(dir: &Path) -> std::io::Result<Vec<DirEntryText>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p);
            (p, text)
        })
        .collect())
}
