//! A plan as people read it: one block per service with its action, the image, the fields
//! and config keys that differ (a secret only ever as `********`, which is all the daemon
//! sends), and what the target keeps. Shared by every command that shows a plan (`clank
//! promote`, `clank apply`).

use clank_api::plans::{ConfigChangeKind, PlanAction, PlanKind, PlanView, ServicePlan};

/// The whole plan, ending with how to apply it.
pub(crate) fn render(plan: &PlanView) -> String {
    let kind = match plan.kind {
        PlanKind::Promotion => "promotion",
        PlanKind::Apply => "apply",
    };
    // A stored plan: its id applies exactly it, until it expires.
    let mut out = vec![
        format!(
            "Plan {} ({kind}): {} → {}",
            plan.id, plan.source, plan.target
        ),
        format!("  valid until {}", plan.expires_at),
    ];
    if plan.unchanged {
        out.push("  nothing to change: the target already runs this".to_owned());
    }
    for service in &plan.services {
        out.extend(service_lines(plan.kind, service));
    }
    if let Some(at) = plan.applied_at {
        out.push(format!("  applied at {at}"));
    }
    out.join("\n")
}

fn symbol(action: PlanAction) -> (&'static str, &'static str) {
    match action {
        PlanAction::Create => ("+", "create"),
        PlanAction::Update => ("~", "update"),
        PlanAction::Deploy => (">", "deploy"),
        PlanAction::Unchanged => ("=", "unchanged"),
    }
}

fn service_lines(kind: PlanKind, s: &ServicePlan) -> Vec<String> {
    let (mark, action) = symbol(s.action);
    let mut out = vec![format!("{mark} {}  ({action})", s.service)];
    if let Some(image) = &s.image {
        let digest = image
            .digest
            .iter()
            .chain(&image.build)
            .map(|d| format!(" ({d})"))
            .collect::<String>();
        out.push(format!(
            "    image     {} → {}{digest}",
            image.from.as_deref().unwrap_or("(none)"),
            image.to
        ));
    }
    for f in &s.fields {
        out.push(format!(
            "    {:<28} {} → {}",
            f.field,
            f.from.as_deref().unwrap_or("(unset)"),
            f.to.as_deref().unwrap_or("(unset)")
        ));
    }
    if !s.config.is_empty() {
        out.push(match kind {
            PlanKind::Promotion => {
                "    config that differs from the source (the target keeps its own):".to_owned()
            }
            PlanKind::Apply => "    config (keys only the target has are kept):".to_owned(),
        });
        for c in &s.config {
            let secret = if c.secret { " (secret)" } else { "" };
            let (from, to) = (
                c.from.as_deref().unwrap_or(""),
                c.to.as_deref().unwrap_or(""),
            );
            let line = match (kind, c.change) {
                (PlanKind::Promotion, ConfigChangeKind::Added) => {
                    format!("only the source sets it: {to}")
                }
                (PlanKind::Promotion, ConfigChangeKind::Removed) => {
                    format!("only the target sets it: {from}")
                }
                (PlanKind::Promotion, ConfigChangeKind::Changed) => {
                    format!("target {from} / source {to}")
                }
                (PlanKind::Apply, ConfigChangeKind::Added) => format!("set: {to}"),
                (PlanKind::Apply, ConfigChangeKind::Removed) => {
                    format!("kept (not in the file): {from}")
                }
                (PlanKind::Apply, ConfigChangeKind::Changed) => format!("{from} → {to}"),
            };
            out.push(format!("      {:<24} {line}{secret}", c.key));
        }
    }
    for k in &s.kept {
        out.push(format!("    keeps     {k}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_api::plans::{ConfigDiff, FieldChange, ImageChange, MASK};
    use clank_core::Timestamp;

    #[test]
    fn a_rendered_plan_shows_each_change_and_masks_secrets() {
        let plan = PlanView {
            id: "p1".into(),
            kind: PlanKind::Promotion,
            source: "acme/shop/staging/api".into(),
            target: "acme/shop/production".into(),
            created_at: Timestamp(0),
            expires_at: Timestamp(1_800_000),
            services: vec![ServicePlan {
                service: "acme/shop/production/api".into(),
                action: PlanAction::Update,
                image: Some(ImageChange {
                    from: Some("app:1".into()),
                    to: "app:2".into(),
                    digest: None,
                    build: Some("v3 (commit 1a2b3c4)".into()),
                }),
                fields: vec![FieldChange {
                    field: "settings.port".into(),
                    from: Some("80".into()),
                    to: Some("8080".into()),
                }],
                config: vec![ConfigDiff {
                    key: "API_KEY".into(),
                    change: ConfigChangeKind::Changed,
                    secret: true,
                    from: Some(MASK.into()),
                    to: Some(MASK.into()),
                }],
                kept: vec!["domains: api.example.com".into()],
            }],
            unchanged: false,
            applied_at: None,
        };
        let text = render(&plan);
        assert!(
            text.contains("~ acme/shop/production/api  (update)"),
            "{text}"
        );
        assert!(
            text.contains("app:1 → app:2 (v3 (commit 1a2b3c4))"),
            "{text}"
        );
        assert!(text.contains("settings.port"), "{text}");
        assert!(
            text.contains("API_KEY") && text.contains("(secret)"),
            "{text}"
        );
        assert!(
            text.contains("keeps     domains: api.example.com"),
            "{text}"
        );
        // The same plan made by `clank apply`: the file's values are what gets set.
        let mut applied = plan;
        applied.kind = PlanKind::Apply;
        applied.services[0].config.push(ConfigDiff {
            key: "MODE".into(),
            change: ConfigChangeKind::Changed,
            secret: false,
            from: Some("blue".into()),
            to: Some("green".into()),
        });
        let text = render(&applied);
        assert!(text.contains("Plan p1 (apply)"), "{text}");
        assert!(
            text.contains("MODE") && text.contains("blue → green"),
            "{text}"
        );
        assert!(!text.contains("differs from the source"), "{text}");
    }
}
