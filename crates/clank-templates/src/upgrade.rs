//! Moving a stack to a newer template version: render both versions with the stack's stored
//! values (so no password is regenerated) and list every difference, for a preview the user
//! confirms. Secret values print as the mask in every `Display` and `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use clank_core::image::ImageRef;

use crate::error::RenderError;
use crate::format::Template;
use crate::render::{RenderContext, RenderedService, RenderedStack, Values, VarValue, render};

/// One difference between the stack as rendered from the old template and from the new one.
/// Services are named by their rendered slug.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    ServiceAdded {
        service: String,
    },
    ServiceRemoved {
        service: String,
    },
    Image {
        service: String,
        from: ImageRef,
        to: ImageRef,
    },
    Setting {
        service: String,
        setting: &'static str,
        from: String,
        to: String,
    },
    Command {
        service: String,
        from: Option<Vec<String>>,
        to: Option<Vec<String>>,
    },
    VolumeAdded {
        service: String,
        mount_path: String,
    },
    VolumeRemoved {
        service: String,
        mount_path: String,
    },
    ConfigAdded {
        service: String,
        key: String,
        value: VarValue,
    },
    ConfigChanged {
        service: String,
        key: String,
        from: VarValue,
        to: VarValue,
    },
    ConfigRemoved {
        service: String,
        key: String,
    },
    /// A stored variable the new version introduces (a freshly generated secret, an input's
    /// default).
    VariableAdded {
        name: String,
        value: VarValue,
    },
    VariableRemoved {
        name: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::ServiceAdded { service } => write!(f, "+ service {service}"),
            Change::ServiceRemoved { service } => write!(f, "- service {service}"),
            Change::Image { service, from, to } => write!(f, "~ {service}: image {from} -> {to}"),
            Change::Setting {
                service,
                setting,
                from,
                to,
            } => {
                write!(f, "~ {service}: {setting} {from} -> {to}")
            }
            Change::Command { service, from, to } => {
                write!(f, "~ {service}: command {from:?} -> {to:?}")
            }
            Change::VolumeAdded {
                service,
                mount_path,
            } => {
                write!(f, "+ {service}: volume at {mount_path}")
            }
            Change::VolumeRemoved {
                service,
                mount_path,
            } => {
                write!(
                    f,
                    "- {service}: volume at {mount_path} (the volume itself is kept)"
                )
            }
            Change::ConfigAdded {
                service,
                key,
                value,
            } => write!(f, "+ {service}: {key}={value}"),
            Change::ConfigChanged {
                service,
                key,
                from,
                to,
            } => {
                write!(f, "~ {service}: {key} {from} -> {to}")
            }
            Change::ConfigRemoved { service, key } => write!(f, "- {service}: {key}"),
            Change::VariableAdded { name, value } => write!(f, "+ variable {name}={value}"),
            Change::VariableRemoved { name } => write!(f, "- variable {name}"),
        }
    }
}

/// What an upgrade would change, and the stack to apply if the user confirms.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UpgradePlan {
    pub template: String,
    pub from_version: String,
    pub to_version: String,
    pub changes: Vec<Change>,
    /// The new version rendered with the existing values; its `values` holds what to store
    /// (existing ones unchanged, new ones generated).
    pub stack: RenderedStack,
}

impl UpgradePlan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for UpgradePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {} ({} change{})",
            self.template,
            self.from_version,
            self.to_version,
            self.changes.len(),
            if self.changes.len() == 1 { "" } else { "s" }
        )?;
        for c in &self.changes {
            write!(f, "\n  {c}")?;
        }
        Ok(())
    }
}

/// Plan moving stack `stack`, created from `old` with stored values `existing`, to `new`.
pub fn upgrade_plan(
    old: &Template,
    new: &Template,
    stack: &str,
    existing: &Values,
    ctx: &RenderContext,
) -> Result<UpgradePlan, RenderError> {
    let none = BTreeMap::new();
    let before = render(old, stack, &none, existing, ctx)?;
    // What the old render had to generate (missing from `existing`) is the stack's value too:
    // the new render must not roll it again and report a change that is not one.
    let mut kept = before.values.clone();
    kept.extend(existing.iter().map(|(k, v)| (k.clone(), v.clone())));
    let after = render(new, stack, &none, &kept, ctx)?;
    let mut changes = Vec::new();
    for name in after.values.keys() {
        if !existing.contains_key(name) {
            changes.push(Change::VariableAdded {
                name: name.clone(),
                value: after.values[name].clone(),
            });
        }
    }
    for name in existing.keys() {
        if !after.values.contains_key(name) {
            changes.push(Change::VariableRemoved { name: name.clone() });
        }
    }
    for s in &after.services {
        match before.services.iter().find(|b| b.slug == s.slug) {
            None => changes.push(Change::ServiceAdded {
                service: s.slug.clone(),
            }),
            Some(b) => diff_service(b, s, &mut changes),
        }
    }
    for b in &before.services {
        if !after.services.iter().any(|s| s.slug == b.slug) {
            changes.push(Change::ServiceRemoved {
                service: b.slug.clone(),
            });
        }
    }
    Ok(UpgradePlan {
        template: new.name().to_owned(),
        from_version: old.version().to_owned(),
        to_version: new.version().to_owned(),
        changes,
        stack: after,
    })
}

fn diff_service(b: &RenderedService, a: &RenderedService, changes: &mut Vec<Change>) {
    let service = a.slug.clone();
    if b.image != a.image {
        changes.push(Change::Image {
            service: service.clone(),
            from: b.image.clone(),
            to: a.image.clone(),
        });
    }
    let (bs, s) = (&b.settings, &a.settings);
    let settings: [(&'static str, String, String); 8] = [
        ("port", format!("{:?}", bs.port), format!("{:?}", s.port)),
        (
            "health_check_path",
            format!("{:?}", bs.health_check_path),
            format!("{:?}", s.health_check_path),
        ),
        (
            "health_check_interval_s",
            bs.health_check_interval_s.to_string(),
            s.health_check_interval_s.to_string(),
        ),
        (
            "health_check_retries",
            bs.health_check_retries.to_string(),
            s.health_check_retries.to_string(),
        ),
        (
            "deploy_timeout_s",
            bs.deploy_timeout_s.to_string(),
            s.deploy_timeout_s.to_string(),
        ),
        (
            "cpu_limit",
            bs.cpu_limit.to_string(),
            s.cpu_limit.to_string(),
        ),
        (
            "memory_limit_mb",
            bs.memory_limit_mb.to_string(),
            s.memory_limit_mb.to_string(),
        ),
        (
            "is_public",
            bs.is_public.to_string(),
            s.is_public.to_string(),
        ),
    ];
    for (setting, from, to) in settings {
        if from != to {
            changes.push(Change::Setting {
                service: service.clone(),
                setting,
                from,
                to,
            });
        }
    }
    let command = |s: &RenderedService| s.processes.get("web").and_then(|p| p.command.clone());
    if command(b) != command(a) {
        changes.push(Change::Command {
            service: service.clone(),
            from: command(b),
            to: command(a),
        });
    }
    for v in &a.volumes {
        if !b.volumes.iter().any(|o| o.mount_path == v.mount_path) {
            changes.push(Change::VolumeAdded {
                service: service.clone(),
                mount_path: v.mount_path.clone(),
            });
        }
    }
    for v in &b.volumes {
        if !a.volumes.iter().any(|n| n.mount_path == v.mount_path) {
            changes.push(Change::VolumeRemoved {
                service: service.clone(),
                mount_path: v.mount_path.clone(),
            });
        }
    }
    for var in &a.config {
        match b.config.iter().find(|o| o.key == var.key) {
            None => changes.push(Change::ConfigAdded {
                service: service.clone(),
                key: var.key.clone(),
                value: var.value.clone(),
            }),
            Some(o) if o.value != var.value => changes.push(Change::ConfigChanged {
                service: service.clone(),
                key: var.key.clone(),
                from: o.value.clone(),
                to: var.value.clone(),
            }),
            Some(_) => {}
        }
    }
    for var in &b.config {
        if !a.config.iter().any(|n| n.key == var.key) {
            changes.push(Change::ConfigRemoved {
                service: service.clone(),
                key: var.key.clone(),
            });
        }
    }
}
