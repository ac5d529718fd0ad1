//! The dashboard's canvas: where each user put a project's service cards (a `CanvasLayout`
//! per user and project). A preference of that user only: reading and arranging it needs no
//! more than reading the project, and it changes nothing anyone else sees.

use std::collections::BTreeMap;

use clank_core::address::ProjectAddress;
use clank_core::id::{ServiceId, UserId};
use clank_core::model::{CanvasLayout, CardPosition};
use clank_core::store::catalog::Page;
use clank_core::{Error, InvalidInput, Result, Timestamp};

use crate::Platform;

impl Platform {
    /// `user`'s arrangement of the project's cards; empty when they never moved one.
    pub async fn canvas_layout(
        &self,
        addr: &ProjectAddress,
        user: UserId,
    ) -> Result<BTreeMap<ServiceId, CardPosition>> {
        let project = self.project(addr).await?;
        Ok(self
            .catalog
            .get::<CanvasLayout>(&CanvasLayout::key(user, project.id))
            .await?
            .map(|l| l.value.positions)
            .unwrap_or_default())
    }

    /// Place cards of the project for `user`: each given card moves, the others stay where
    /// they were. A card that is not a service of the project is refused.
    pub async fn place_cards(
        &self,
        addr: &ProjectAddress,
        user: UserId,
        moved: &BTreeMap<ServiceId, CardPosition>,
    ) -> Result<BTreeMap<ServiceId, CardPosition>> {
        let project = self.project(addr).await?;
        let services = self
            .catalog
            .services_in_project(project.id, Page::all())
            .await?;
        if let Some(stranger) = moved
            .keys()
            .find(|id| !services.items.iter().any(|s| s.value.id == **id))
        {
            return Err(InvalidInput::new(
                "positions",
                "not_found",
                format!("project `{}` has no service {stranger}", project.slug),
            )
            .into());
        }
        let key = CanvasLayout::key(user, project.id);
        loop {
            let current = self.catalog.get::<CanvasLayout>(&key).await?;
            let mut layout = current
                .as_ref()
                .map(|c| c.value.clone())
                .unwrap_or(CanvasLayout {
                    workspace_id: project.workspace_id,
                    project_id: project.id,
                    user_id: user,
                    positions: BTreeMap::new(),
                    updated_at: Timestamp::now(),
                });
            // Cards of services purged since are dropped as the layout is written again.
            layout
                .positions
                .retain(|id, _| services.items.iter().any(|s| s.value.id == *id));
            layout.positions.extend(moved.iter().map(|(k, v)| (*k, *v)));
            layout.updated_at = Timestamp::now();
            layout.validate()?;
            let written = match &current {
                Some(cur) => self.catalog.update(cur, &layout).await,
                None => self.catalog.create(&layout).await,
            };
            match written {
                Err(Error::WriteConflict { .. } | Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(layout.positions),
            }
        }
    }
}
