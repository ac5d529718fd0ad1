//! A stack: the services one template created in an environment, and the values its variables
//! took, so an upgrade re-renders with the same passwords instead of generating new ones.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::id::{EnvironmentId, ProjectId, ServiceId, StackId, WorkspaceId};
use crate::image::ImageRef;
use crate::model::Endpoint;
use crate::secret::{Keyring, SealedSecret, SecretAad, SecretString};
use crate::time::Timestamp;

/// One stored variable value: plain as given, secret sealed with the keyring exactly as a
/// secret config value is (associated data `stack:<id>` + the variable's name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum StackValue {
    Plain(String),
    Secret(SealedSecret),
}

/// A template instance in an environment. Unique by (environment, slug); its slug is its app
/// service's slug.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stack {
    pub id: StackId,
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
    pub environment_id: EnvironmentId,
    pub slug: String,
    /// The template's name in the catalog (`wordpress`).
    pub template: String,
    /// The template version the services were last rendered from.
    pub version: String,
    /// The text of that template file: what an upgrade compares the catalog's version with,
    /// even after the catalog moved on.
    pub template_text: String,
    /// Template service slug (`app`, `db`) → the service created for it.
    pub services: BTreeMap<String, ServiceId>,
    /// Values of the stored variables (inputs, generated secrets), by variable name.
    pub values: BTreeMap<String, StackValue>,
    /// The routed service's endpoint given at creation, re-used by upgrades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// Image overrides given at creation, by template service slug (an operator's mirror, a
    /// pinned digest). An upgrade keeps one while the template's image for that service is
    /// unchanged, and shows it replaced otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, ImageRef>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Stack {
    /// The associated data a secret value of this stack is sealed with.
    pub fn aad(&self, name: &str) -> SecretAad {
        SecretAad::new(format!("stack:{}", self.id), name)
    }

    /// Seal `value` (when `secret`) and store it under `name`.
    pub fn set_value(
        &mut self,
        keyring: &Keyring,
        name: &str,
        value: &str,
        secret: bool,
    ) -> Result<()> {
        let stored = if secret {
            StackValue::Secret(keyring.seal(value, &self.aad(name))?)
        } else {
            StackValue::Plain(value.to_owned())
        };
        self.values.insert(name.to_owned(), stored);
        Ok(())
    }

    /// Every stored value, secrets opened: (name, value, secret).
    pub fn open_values(&self, keyring: &Keyring) -> Result<Vec<(String, SecretString, bool)>> {
        let mut out = Vec::with_capacity(self.values.len());
        for (name, v) in &self.values {
            out.push(match v {
                StackValue::Plain(p) => (name.clone(), SecretString::new(p.clone()), false),
                StackValue::Secret(s) => (name.clone(), keyring.open(s, &self.aad(name))?, true),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_sealed_and_open_back() {
        let keyring = Keyring::new(
            crate::secret::KeyId::new("k1").unwrap(),
            Keyring::generate_key().unwrap(),
        );
        let now = Timestamp::now();
        let mut stack = Stack {
            id: StackId::new(),
            workspace_id: WorkspaceId::new(),
            project_id: ProjectId::new(),
            environment_id: EnvironmentId::new(),
            slug: "blog".into(),
            template: "wordpress".into(),
            version: "6.6".into(),
            template_text: String::new(),
            services: BTreeMap::new(),
            values: BTreeMap::new(),
            endpoint: None,
            images: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        };
        stack
            .set_value(&keyring, "db_password", "hunter2", true)
            .unwrap();
        stack.set_value(&keyring, "admin", "me", false).unwrap();
        let json = serde_json::to_string(&stack).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        let opened = stack.open_values(&keyring).unwrap();
        assert_eq!(opened[0].0, "admin");
        assert_eq!(opened[1].1.expose(), "hunter2");
        assert!(opened[1].2);
    }
}
