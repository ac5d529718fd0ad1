//! Where one user put a project's service cards on the dashboard's canvas: a preference of
//! that user, one record per user and project, never read by anything but the dashboard.

use std::collections::BTreeMap;

use crate::error::InvalidInput;
use crate::id::{ProjectId, ServiceId, UserId, WorkspaceId};
use crate::time::Timestamp;

/// The largest coordinate a card may have, in CSS pixels: room for a thousand services.
pub const MAX_CANVAS_COORDINATE: u32 = 100_000;
/// The most cards one layout holds (a project's services, with room for deleted ones).
pub const MAX_CANVAS_CARDS: usize = 5_000;

/// A card's top-left corner on the canvas, in CSS pixels from the canvas's top-left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardPosition {
    pub x: u32,
    pub y: u32,
}

/// One user's arrangement of one project's cards.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanvasLayout {
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
    pub user_id: UserId,
    /// Each placed service's card; services not in here get the default grid.
    pub positions: BTreeMap<ServiceId, CardPosition>,
    pub updated_at: Timestamp,
}

impl CanvasLayout {
    /// The record's key: the user and the project.
    pub fn key(user: UserId, project: ProjectId) -> String {
        format!("{user}:{project}")
    }

    /// Check every position; the error names the first offending card.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.positions.len() > MAX_CANVAS_CARDS {
            return Err(InvalidInput::new(
                "positions",
                "too_many",
                format!(
                    "{} cards is more than a layout holds ({MAX_CANVAS_CARDS})",
                    self.positions.len()
                ),
            ));
        }
        for (id, p) in &self.positions {
            if p.x > MAX_CANVAS_COORDINATE || p.y > MAX_CANVAS_COORDINATE {
                return Err(InvalidInput::new(
                    "positions",
                    "range",
                    format!(
                        "card {id} at ({}, {}) is outside 0..={MAX_CANVAS_COORDINATE}",
                        p.x, p.y
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(x: u32, y: u32) -> CanvasLayout {
        CanvasLayout {
            workspace_id: WorkspaceId::new(),
            project_id: ProjectId::new(),
            user_id: UserId::new(),
            positions: BTreeMap::from([(ServiceId::new(), CardPosition { x, y })]),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn a_card_inside_the_canvas_is_accepted_and_one_beyond_it_is_refused() {
        assert!(layout(0, MAX_CANVAS_COORDINATE).validate().is_ok());
        let e = layout(MAX_CANVAS_COORDINATE + 1, 0).validate().unwrap_err();
        assert_eq!(e.field, "positions");
    }

    #[test]
    fn the_key_names_user_then_project() {
        let l = layout(1, 2);
        let key = CanvasLayout::key(l.user_id, l.project_id);
        assert_eq!(key, format!("{}:{}", l.user_id, l.project_id));
    }
}
