//! Deployment events as they happen, for a client following more than one deployment (the
//! bindings' `events()` against a daemon): every event of the workspace's services, or of one
//! service, as Server-Sent Events named by kind, until the client goes or shutdown begins.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use clank_api::events::EventsQuery;
use clank_core::address::{AddressDefaults, ServiceAddress};
use clank_core::id::{ServiceId, WorkspaceId};
use clank_core::model::{Permission, Service};
use futures_util::{Stream, StreamExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Params, WorkspacePath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// How many services' workspaces one stream remembers before it starts over (each is one
/// catalog read, made on a service's first event).
const KNOWN_SERVICES: usize = 4096;

/// Which events a stream passes on.
enum Filter {
    One(ServiceId),
    /// The workspace's services: whether each service seen so far is one of them.
    Workspace {
        id: WorkspaceId,
        known: HashMap<ServiceId, bool>,
    },
}

impl Filter {
    async fn passes(&mut self, st: &AppState, service: ServiceId) -> bool {
        match self {
            Filter::One(id) => *id == service,
            Filter::Workspace { id, known } => {
                if let Some(ours) = known.get(&service) {
                    return *ours;
                }
                // A service that cannot be read (deleted since) is not shown: when in doubt,
                // another tenant's.
                let ours = matches!(
                    st.platform.catalog().get::<Service>(&service.to_string()).await,
                    Ok(Some(s)) if s.value.workspace_id == *id
                );
                if known.len() >= KNOWN_SERVICES {
                    known.clear();
                }
                known.insert(service, ours);
                ours
            }
        }
    }
}

/// Server-Sent Events of the workspace's deployments from now on (`created`, `transition`,
/// `log`, `restarted`; the data is the event), of one service with `service`. A follower that
/// falls behind the engine's buffer skips the events it missed.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/events",
    tag = "deployments",
    params(WorkspacePath, EventsQuery),
    responses(
        (status = 200, description = "Server-Sent Events of the workspace's deployments", content_type = "text/event-stream"),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn events(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<WorkspacePath>,
    Params(q): Params<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    p.in_workspace(&at.ws)?;
    p.require(Permission::Read)?;
    let slot = st.streams.reserve(&p)?;
    // Subscribed before the service is looked up: nothing after this call is missed.
    let events = st.platform.events();
    let filter = match &q.service {
        Some(address) => {
            let defaults = AddressDefaults {
                workspace: at.ws.clone(),
                environment: "production".into(),
            };
            let addr =
                ServiceAddress::parse(address, &defaults).map_err(clank_core::Error::from)?;
            if addr.workspace() != at.ws {
                return Err(super::error::ApiError::not_found(format!(
                    "service `{address}` not found in workspace `{}`",
                    at.ws
                )));
            }
            Filter::One(st.platform.service(&addr).await?.id)
        }
        None => Filter::Workspace {
            id: p.workspace.id,
            known: HashMap::new(),
        },
    };
    let stream = futures_util::stream::unfold(
        (events, filter, st),
        |(mut events, mut filter, st)| async move {
            loop {
                let ev = events.next().await?;
                if filter.passes(&st, ev.service).await {
                    let sse = SseEvent::default()
                        .event(ev.kind.name())
                        .json_data(&ev)
                        .unwrap_or_default();
                    return Some((Ok(sse), (events, filter, st)));
                }
            }
        },
    );
    Ok(Sse::new(slot.carry(stream)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
