//! Config at each scope (workspace, team, project, environment, service): read, and change in
//! bulk; and a service's resolved config, with where each value comes from.
//!
//! One handler per verb serves the four scopes: which scope is which route matched, and each
//! scope's route and OpenAPI operations are made from the same [`Scope`] table.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use clank_api::ConfigRequest;
use clank_core::config::{ConfigChange, ConfigVarView, ResolvedVarView};
use clank_core::model::Permission;
use clank_platform::ConfigTarget;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, ObjectBuilder, Ref, Required, Response, ResponseBuilder, Type,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited, config_details};
use super::auth::Principal;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, ServicePath, env_addr, project_addr, service_addr};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    Scope::ALL
        .into_iter()
        .fold(OpenApiRouter::new(), |router, scope| {
            router.merge(scope.routes())
        })
        .routes(routes!(resolved_config))
}

/// Where config is kept, from the widest scope to the narrowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Workspace,
    Project,
    Environment,
    Service,
    /// A team of the workspace (`/teams/{t}/config`): between the workspace and its projects.
    Team,
}

/// A team scope's path parameters.
const TEAM_PARAMETERS: [(&str, &str); 2] = [("ws", "workspace slug"), ("t", "team slug or id")];

/// Every path parameter a scope can have, widest first, with its description.
const PARAMETERS: [(&str, &str); 4] = [
    ("ws", "workspace slug"),
    ("p", "project slug"),
    ("e", "environment name"),
    ("s", "service slug"),
];

impl Scope {
    const ALL: [Scope; 5] = [
        Scope::Workspace,
        Scope::Project,
        Scope::Environment,
        Scope::Service,
        Scope::Team,
    ];

    /// As operation ids name it (`project_config`, `set_project_config`).
    fn name(self) -> &'static str {
        match self {
            Scope::Workspace => "workspace",
            Scope::Project => "project",
            Scope::Environment => "environment",
            Scope::Service => "service",
            Scope::Team => "team",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Scope::Workspace => "/v1/workspaces/{ws}/config",
            Scope::Project => "/v1/workspaces/{ws}/projects/{p}/config",
            Scope::Environment => "/v1/workspaces/{ws}/projects/{p}/environments/{e}/config",
            Scope::Service => {
                "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/config"
            }
            Scope::Team => "/v1/workspaces/{ws}/teams/{t}/config",
        }
    }

    /// The path's parameters, widest first.
    fn parameters(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Scope::Team => &TEAM_PARAMETERS,
            _ => &PARAMETERS[..self as usize + 1],
        }
    }

    /// What a change of config at this scope needs.
    fn change_needs(self) -> Permission {
        match self {
            Scope::Workspace | Scope::Team => Permission::ManageTeamSettings,
            Scope::Project | Scope::Environment => Permission::ManageProjects,
            Scope::Service => Permission::ManageServices,
        }
    }

    /// The target the path names, once the workspace is `p`'s own.
    fn target(self, p: &Principal, path: &[(String, String)]) -> ApiResult<ConfigTarget> {
        let values: Vec<&str> = path.iter().map(|(_, v)| v.as_str()).collect();
        if let Some(ws) = values.first() {
            p.in_workspace(ws)?;
        }
        Ok(match (self, values.as_slice()) {
            (Scope::Workspace, [ws]) => ConfigTarget::Workspace((*ws).to_owned()),
            (Scope::Project, [ws, proj]) => ConfigTarget::Project(project_addr(ws, proj)?),
            (Scope::Environment, [ws, proj, e]) => {
                ConfigTarget::Environment(env_addr(ws, proj, e)?)
            }
            (Scope::Service, [ws, proj, e, s]) => {
                ConfigTarget::Service(service_addr(ws, proj, e, s)?)
            }
            (Scope::Team, [ws, team]) => ConfigTarget::Team {
                workspace: (*ws).to_owned(),
                team: (*team).to_owned(),
            },
            // The route is `path()`, which has exactly `parameters()`.
            _ => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("the {} config route has unexpected parameters", self.name()),
                ));
            }
        })
    }

    /// This scope's route: both verbs, and their OpenAPI operations.
    fn routes(self) -> OpenApiRouter<AppState> {
        let method_router = get(
            move |p: Principal,
                  State(st): State<AppState>,
                  Path(path): Path<Vec<(String, String)>>| { read(self, p, st, path) },
        )
        .patch(
            move |p: Principal,
                  State(st): State<AppState>,
                  Path(path): Path<Vec<(String, String)>>,
                  Body(req): Body<ConfigRequest>| write(self, p, st, path, req),
        );
        let mut router = OpenApiRouter::new().route(self.path(), method_router);
        let doc = router.get_openapi_mut();
        let mut item = PathItem::new(
            HttpMethod::Get,
            self.operation(format!("{}_config", self.name())),
        );
        item.patch = Some(self.set_operation());
        doc.paths.paths.insert(self.path().to_owned(), item);
        let mut schemas = vec![
            (ConfigRequest::name().into_owned(), ConfigRequest::schema()),
            (ConfigVarView::name().into_owned(), ConfigVarView::schema()),
        ];
        <ConfigRequest as ToSchema>::schemas(&mut schemas);
        <ConfigVarView as ToSchema>::schemas(&mut schemas);
        doc.components
            .get_or_insert_with(Default::default)
            .schemas
            .extend(schemas);
        router
    }

    /// The read: the operation every config operation at this scope starts from.
    fn operation(self, id: String) -> Operation {
        let json = |schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
            ContentBuilder::new().schema(Some(schema)).build()
        };
        let listed: Response = ResponseBuilder::new()
            .description("success")
            .content(
                "application/json",
                json(
                    ArrayBuilder::new()
                        .items(Ref::from_schema_name(ConfigVarView::name()))
                        .into(),
                ),
            )
            .build();
        let refused: Response = ResponseBuilder::new()
            .description("refused; `field` names the offending input")
            .content(
                "application/json",
                json(Ref::from_schema_name(ErrorBody::name()).into()),
            )
            .build();
        let parameters: Vec<Parameter> = self
            .parameters()
            .iter()
            .map(|(name, description)| {
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Path)
                    .description(Some(*description))
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build()
            })
            .collect();
        OperationBuilder::new()
            .tag("config")
            .operation_id(Some(id))
            .parameters(Some(parameters))
            .response("200", listed)
            .response("4XX", refused)
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .build()
    }

    /// The bulk change: the read's operation with a [`ConfigRequest`] body.
    fn set_operation(self) -> Operation {
        let mut op = self.operation(format!("set_{}_config", self.name()));
        op.request_body = Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(ConfigRequest::name())))
                        .build(),
                )
                .required(Some(Required::True))
                .build()
                .into(),
        );
        op
    }
}

fn changes(req: ConfigRequest) -> ApiResult<Vec<ConfigChange>> {
    Ok(req.into_changes()?)
}

/// `GET` at any scope: the config kept there (secrets masked).
async fn read(
    scope: Scope,
    p: Principal,
    st: AppState,
    path: Vec<(String, String)>,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    let target = scope.target(&p, &path)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.config(&target).await?))
}

/// `PATCH` at any scope: the changes applied in one write, audited (never a secret's value).
async fn write(
    scope: Scope,
    p: Principal,
    st: AppState,
    path: Vec<(String, String)>,
    req: ConfigRequest,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    let target = scope.target(&p, &path)?;
    let target_name = match &target {
        ConfigTarget::Workspace(ws) => ws.clone(),
        ConfigTarget::Project(a) => a.to_string(),
        ConfigTarget::Environment(a) => a.to_string(),
        ConfigTarget::Service(a) => a.to_string(),
        ConfigTarget::Team { workspace, team } => format!("{workspace}/teams/{team}"),
    };
    let changes = changes(req);
    let details = match &changes {
        Ok(c) => config_details(c),
        Err(_) => serde_json::Value::Null,
    };
    let change = Change::new("config.set", target_name).details(details);
    audited(&st, &p, change, async {
        p.require(scope.change_needs())?;
        let changes = changes?;
        Ok(Json(st.platform.set_config(&target, &changes).await?))
    })
    .await
}

/// The service-scope `PATCH` for another client of the same state (the dashboard): the same
/// target, permission, write and `config.set` audit event.
pub(super) async fn write_service(
    p: Principal,
    st: AppState,
    at: &ServicePath,
    req: ConfigRequest,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    let path = [("ws", &at.ws), ("p", &at.p), ("e", &at.e), ("s", &at.s)]
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .to_vec();
    write(Scope::Service, p, st, path, req).await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/config/resolved",
    tag = "config",
    params(ServicePath),
    responses(
        (status = 200, description = "success", body = [ResolvedVarView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn resolved_config(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
) -> ApiResult<Json<Vec<ResolvedVarView>>> {
    let addr = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.resolved_config(&addr).await?))
}

#[cfg(test)]
mod tests {
    use clank_core::Timestamp;
    use clank_core::id::{TokenId, UserId};
    use clank_core::model::{Role, Workspace};

    use super::*;

    fn principal(ws: &str) -> Principal {
        Principal {
            workspace: Workspace::new(ws, Some(ws), Timestamp::now()).unwrap(),
            user: UserId::new(),
            token: TokenId::new(),
            token_name: "t".into(),
            role: Role::Owner,
        }
    }

    fn path(values: &[&str]) -> Vec<(String, String)> {
        Scope::Service
            .parameters()
            .iter()
            .zip(values)
            .map(|((name, _), v)| ((*name).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn each_scope_path_has_exactly_its_parameters_in_order() {
        for scope in Scope::ALL {
            let in_path: Vec<&str> = scope
                .path()
                .split('{')
                .skip(1)
                .map(|p| &p[..p.find('}').unwrap()])
                .collect();
            let declared: Vec<&str> = scope.parameters().iter().map(|(n, _)| *n).collect();
            assert_eq!(in_path, declared, "{scope:?}");
        }
    }

    #[test]
    fn a_scope_names_its_target_and_another_workspace_is_not_found() {
        let p = principal("acme");
        let all = ["acme", "shop", "production", "web"];
        for (i, scope) in Scope::ALL.into_iter().take(4).enumerate() {
            let target = scope.target(&p, &path(&all[..=i])).unwrap();
            let name = match target {
                ConfigTarget::Workspace(ws) => ws,
                ConfigTarget::Project(a) => a.to_string(),
                ConfigTarget::Environment(a) => a.to_string(),
                ConfigTarget::Service(a) => a.to_string(),
                ConfigTarget::Team { .. } => unreachable!("the first four are not teams"),
            };
            assert_eq!(name, all[..=i].join("/"), "{scope:?}");
            let elsewhere = ["other", "shop", "production", "web"];
            let err = scope.target(&p, &path(&elsewhere[..=i])).unwrap_err();
            assert_eq!(err.status(), StatusCode::NOT_FOUND, "{scope:?}");
        }
        assert_eq!(
            Scope::Project
                .target(&p, &path(&["acme"]))
                .unwrap_err()
                .status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn a_change_needs_the_permission_of_its_scope() {
        assert_eq!(
            Scope::ALL.map(Scope::change_needs),
            [
                Permission::ManageTeamSettings,
                Permission::ManageProjects,
                Permission::ManageProjects,
                Permission::ManageServices,
                Permission::ManageTeamSettings,
            ]
        );
    }

    #[test]
    fn the_team_scope_names_its_team_and_another_workspace_is_not_found() {
        let p = principal("acme");
        let at = |ws: &str| vec![("ws".to_owned(), ws.to_owned()), ("t".into(), "ops".into())];
        assert_eq!(
            Scope::Team.target(&p, &at("acme")).unwrap(),
            ConfigTarget::Team {
                workspace: "acme".into(),
                team: "ops".into()
            }
        );
        let err = Scope::Team.target(&p, &at("other")).unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
    }
}
