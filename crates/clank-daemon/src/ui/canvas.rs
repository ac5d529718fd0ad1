//! A project's canvas: each environment's services as cards the signed-in user arranges (their
//! positions kept per user, `Platform::place_cards`), and the connections we know between them
//! as edges — a service's `depends_on`, a template stack's companions, and a config value
//! naming another service of the environment as its host (`postgres://db:5432`). Without
//! JavaScript the cards are a list and the edges a list of sentences; the script lays the
//! cards out at their positions, draws the edges and saves what is dragged.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clank_api::StackView;
use clank_core::address::ProjectAddress;
use clank_core::config::ResolvedVarView;
use clank_core::id::ServiceId;
use clank_core::model::{CardPosition, Permission, Service};
use maud::{Markup, html};

use super::session::{Posted, Signed};
use super::{UiResult, UiState};
use crate::api::error::ApiError;

/// The default grid of cards nobody has placed: this many across, this far apart.
const GRID_COLUMNS: u32 = 3;
const GRID_DX: u32 = 300;
const GRID_DY: u32 = 230;
const GRID_MARGIN: u32 = 16;

/// A known connection between two services of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) from: ServiceId,
    pub(crate) to: ServiceId,
    /// Why, in words: `depends on`, `DATABASE_URL`, `stack blog`.
    pub(crate) why: String,
}

/// The host a config value points at, when it reads as an address: `scheme://[user@]host[:port]…`
/// or `host:port`. A bare word is not taken as a host (`APP_MODE=worker` is no connection).
pub(crate) fn host_of(value: &str) -> Option<&str> {
    let (rest, has_scheme) = match value.split_once("://") {
        Some((_, rest)) => (rest, true),
        None => (value, false),
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = port.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (!host.is_empty() && (has_scheme || port_ok)).then_some(host)
}

/// The edges of one environment: `depends_on` first, then config, then stack companions; at
/// most one edge between any two services.
pub(crate) fn edges(
    services: &[Service],
    config: &BTreeMap<ServiceId, Vec<ResolvedVarView>>,
    stacks: &[StackView],
) -> Vec<Edge> {
    let by_slug: BTreeMap<&str, ServiceId> =
        services.iter().map(|s| (s.slug.as_str(), s.id)).collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut add = |from: ServiceId, to: ServiceId, why: String| {
        let pair = if from < to { (from, to) } else { (to, from) };
        if from != to && seen.insert(pair) {
            out.push(Edge { from, to, why });
        }
    };
    for s in services {
        for dep in &s.depends_on {
            if let Some(&to) = by_slug.get(dep.as_str()) {
                add(s.id, to, "depends on".to_owned());
            }
        }
    }
    for s in services {
        for v in config.get(&s.id).into_iter().flatten() {
            // A secret is masked here; its host stays unknown.
            if v.secret {
                continue;
            }
            if let Some(&to) = host_of(&v.value).and_then(|h| by_slug.get(h)) {
                add(s.id, to, v.key.clone());
            }
        }
    }
    for stack in stacks {
        let members: Vec<ServiceId> = stack
            .services
            .iter()
            .filter_map(|m| by_slug.get(m.service.as_str()).copied())
            .collect();
        if let Some((&first, rest)) = members.split_first() {
            for &other in rest {
                add(other, first, format!("stack {}", stack.slug));
            }
        }
    }
    out
}

/// Where card `i` of an environment sits when its user has not placed it.
pub(crate) fn default_position(i: usize) -> CardPosition {
    let i = u32::try_from(i).unwrap_or(u32::MAX / GRID_DX);
    CardPosition {
        x: GRID_MARGIN + (i % GRID_COLUMNS) * GRID_DX,
        y: GRID_MARGIN + (i / GRID_COLUMNS).saturating_mul(GRID_DY),
    }
}

/// One environment's canvas: `cards` (each with its service id and position) and the edges
/// between them, both readable as lists without the script.
pub(crate) fn environment_canvas(
    s: &Signed,
    save_url: &str,
    cards: &[(ServiceId, CardPosition, Markup)],
    edges: &[Edge],
    names: &BTreeMap<ServiceId, String>,
) -> Markup {
    html! {
        div.canvas data-save=(save_url) data-csrf=(s.csrf) {
            ul.cards {
                @for (id, at, card) in cards {
                    li.card tabindex="0" data-card=(id.to_string()) data-x=(at.x) data-y=(at.y)
                        aria-roledescription="movable card" { (card) }
                }
            }
        }
        @if !edges.is_empty() {
            h3.connections { "Connections" }
            ul.edges {
                @for e in edges {
                    li data-from=(e.from.to_string()) data-to=(e.to.to_string()) {
                        (names.get(&e.from).map_or("?", String::as_str)) " → "
                        (names.get(&e.to).map_or("?", String::as_str))
                        " " span.muted { "(" (e.why) ")" }
                    }
                }
            }
        }
    }
}

/// `POST /ui/workspaces/{ws}/projects/{p}/canvas`: the signed-in user moved cards. The form's
/// `positions` is `{service id}:{x},{y}` entries joined by `;`. Answers 204.
pub(crate) async fn place(
    State(st): State<UiState>,
    Path((ws, slug)): Path<(String, String)>,
    posted: Posted,
) -> UiResult<Response> {
    let p = &posted.signed.principal;
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    let moved = parse_positions(posted.form.get("positions").unwrap_or(""))?;
    let addr = ProjectAddress::new(&ws, &slug)?;
    st.app.platform.place_cards(&addr, p.user, &moved).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn parse_positions(text: &str) -> Result<BTreeMap<ServiceId, CardPosition>, ApiError> {
    let bad = |entry: &str| {
        ApiError::from(clank_core::InvalidInput::new(
            "positions",
            "format",
            format!("`{entry}` is not `{{service id}}:{{x}},{{y}}`"),
        ))
    };
    let mut out = BTreeMap::new();
    for entry in text.split(';').filter(|e| !e.is_empty()) {
        let (id, xy) = entry.split_once(':').ok_or_else(|| bad(entry))?;
        let (x, y) = xy.split_once(',').ok_or_else(|| bad(entry))?;
        let id: ServiceId = id.parse().map_err(|_| bad(entry))?;
        let x = x.parse().map_err(|_| bad(entry))?;
        let y = y.parse().map_err(|_| bad(entry))?;
        out.insert(id, CardPosition { x, y });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_or_host_and_port_names_a_host_and_a_bare_word_does_not() {
        assert_eq!(host_of("postgres://app:pw@db:5432/shop"), Some("db"));
        assert_eq!(host_of("http://api/health"), Some("api"));
        assert_eq!(host_of("redis:6379"), Some("redis"));
        assert_eq!(host_of("worker"), None);
        assert_eq!(host_of("a:b"), None);
        assert_eq!(host_of("https:///x"), None);
    }

    #[test]
    fn positions_parse_and_a_malformed_entry_is_refused() {
        let id = ServiceId::new();
        let parsed = parse_positions(&format!("{id}:10,20;")).unwrap();
        assert_eq!(parsed[&id], CardPosition { x: 10, y: 20 });
        assert!(parse_positions("x:1,2").is_err());
        assert!(parse_positions(&format!("{id}:-1,2")).is_err());
        assert!(parse_positions(&format!("{id}:1")).is_err());
    }

    fn services(slugs: &[&str]) -> Vec<Service> {
        let (ws, p, e) = Default::default();
        slugs
            .iter()
            .map(|slug| {
                let source = clank_core::model::ServiceSource::DockerImage {
                    image: clank_core::ImageRef::parse("nginx:1.27").unwrap(),
                    credentials_secret: None,
                };
                Service::new(ws, p, e, slug, source, clank_core::Timestamp(0)).unwrap()
            })
            .collect()
    }

    fn var(owner: ServiceId, key: &str, value: &str, secret: bool) -> ResolvedVarView {
        ResolvedVarView {
            key: key.to_owned(),
            value: value.to_owned(),
            secret,
            source: clank_core::config::Scope::Service(owner),
            overridden: Vec::new(),
        }
    }

    #[test]
    fn edges_come_from_depends_on_config_hosts_and_stacks_at_most_one_per_pair() {
        let mut all = services(&["app", "db", "cache", "mail", "worker"]);
        all[0].depends_on = vec!["db".into(), "gone".into()];
        let (app, db, cache, mail, worker) =
            (all[0].id, all[1].id, all[2].id, all[3].id, all[4].id);
        let config = BTreeMap::from([(
            app,
            vec![
                // Already connected by depends_on: no second edge.
                var(app, "DATABASE_URL", "postgres://u@db:5432/x", false),
                var(app, "CACHE", "cache:6379", false),
                var(app, "MODE", "worker", false),
                var(app, "SMTP", "********", true),
            ],
        )]);
        let stack = StackView {
            id: clank_core::id::StackId::new(),
            slug: "mailer".into(),
            template: "t".into(),
            version: "1".into(),
            available_version: None,
            endpoint: None,
            services: ["mail", "worker"]
                .iter()
                .map(|s| clank_api::templates::StackServiceView {
                    template_slug: (*s).into(),
                    service: (*s).into(),
                    service_id: ServiceId::new(),
                    image: "nginx:1.27".into(),
                    active: false,
                    status: None,
                    deployment: None,
                })
                .collect(),
            variables: Vec::new(),
            created_at: clank_core::Timestamp(0),
            updated_at: clank_core::Timestamp(0),
        };
        let found: Vec<(ServiceId, ServiceId, String)> = edges(&all, &config, &[stack])
            .into_iter()
            .map(|e| (e.from, e.to, e.why))
            .collect();
        assert_eq!(
            found,
            vec![
                (app, db, "depends on".to_owned()),
                (app, cache, "CACHE".to_owned()),
                (worker, mail, "stack mailer".to_owned()),
            ]
        );
    }

    #[test]
    fn the_default_grid_fills_rows_of_three() {
        assert_eq!(default_position(0), CardPosition { x: 16, y: 16 });
        assert_eq!(default_position(4), CardPosition { x: 316, y: 246 });
    }
}
