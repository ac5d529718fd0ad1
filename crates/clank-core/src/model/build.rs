//! Builds of git services: versioned v1, v2, … per service, with what was used and the result.

use crate::id::{BuildId, DeploymentId, ServiceId};
use crate::image::ImageRef;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// One build attempt. The log lives beside it in the store (it can be large and streams).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Build {
    pub id: BuildId,
    pub service_id: ServiceId,
    /// The deployment this build is for (a deployment's number and a build's differ once a
    /// build failed or a deployment needed none). `None` on records older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<DeploymentId>,
    /// v1, v2, … per service.
    pub number: u64,
    pub repo_url: String,
    pub git_ref: String,
    /// The commit actually checked out: recorded as soon as the checkout resolves the ref
    /// (so a build that fails later still says what it built).
    pub commit_sha: Option<String>,
    /// The first line of that commit's message, cleaned by [`commit_subject`]. Recorded with
    /// `commit_sha`; `None` on records older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_subject: Option<String>,
    /// The Dockerfile used: the repository's own, or the one generated for the framework.
    pub dockerfile: Option<String>,
    pub procfile: Option<String>,
    /// Detected framework, when the Dockerfile was generated.
    pub framework: Option<String>,
    pub image: Option<ImageRef>,
    pub status: BuildStatus,
    pub failure: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// Longest commit subject kept, in characters.
pub const COMMIT_SUBJECT_MAX: usize = 200;

/// A commit message's subject as Clank keeps and shows it: the first line, without control
/// characters (a message is attacker controlled: no terminal escapes, no line tricks), trimmed,
/// at most [`COMMIT_SUBJECT_MAX`] characters (cut with `…`); `None` when nothing is left.
pub fn commit_subject(message: &str) -> Option<String> {
    let line = message.lines().next().unwrap_or_default();
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return None;
    }
    if clean.chars().count() <= COMMIT_SUBJECT_MAX {
        return Some(clean.to_owned());
    }
    let mut cut: String = clean.chars().take(COMMIT_SUBJECT_MAX - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    Some(cut)
}

impl Build {
    pub fn version_label(&self) -> String {
        format!("v{}", self.number)
    }

    /// How long the build ran; `None` while it runs.
    pub fn duration(&self) -> Option<std::time::Duration> {
        self.finished_at.map(|f| f.since(self.started_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_subject_is_its_first_line_without_control_characters_and_bounded() {
        assert_eq!(
            commit_subject("Fix the login page\n\nLonger body.").as_deref(),
            Some("Fix the login page")
        );
        assert_eq!(
            commit_subject("  red \u{1b}[31malert\u{7}  ").as_deref(),
            Some("red  [31malert"),
            "escape and bell characters are blanked, the ends trimmed"
        );
        assert_eq!(commit_subject(""), None);
        assert_eq!(commit_subject("\n\nbody only"), None);
        let long = "é".repeat(500);
        let cut = commit_subject(&long).unwrap();
        assert_eq!(cut.chars().count(), COMMIT_SUBJECT_MAX);
        assert!(cut.ends_with('…'), "{cut}");
    }
}
