//! Endpoint plans: what each access mode (DESIGN.md §5) asks of the platform, as data.
//!
//! [`plan`] turns a service's [`Endpoint`] into an [`EndpointPlan`] — proxy routes with their
//! TLS and redirect policy, a host port to publish, the `tailscale serve` argument vectors, or
//! a `cloudflared` connector with its ingress rules — without touching anything. Backends apply
//! the plan: `clank-proxy` serves the routes (and drives `tailscale`), the engine publishes
//! ports and starts workloads. Keeping the decision here means one table test covers every
//! mode, and the appliers stay dumb.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::config::{ConfigValue, EnvValue};
use crate::error::InvalidInput;
use crate::image::ImageRef;
use crate::model::{DeploymentSnapshot, Endpoint, TlsMode};
use crate::runtime::{NetworkAttachment, Owner, PortBinding, RestartPolicy, WorkloadSpec};
use crate::secret::SecretString;
use crate::validate;

/// The image the tunnel connector runs. `latest` because Cloudflare supports only recent
/// connector releases; pin it by pulling and tagging a version locally if you need to.
pub const CLOUDFLARED_IMAGE: &str = "cloudflare/cloudflared:latest";
/// The variable `cloudflared tunnel run` reads its token from. The token never goes in argv,
/// where `ps` and `docker inspect`'s command line would show it.
pub const TUNNEL_TOKEN_ENV: &str = "TUNNEL_TOKEN";
/// The process name a connector workload runs under.
pub const CLOUDFLARED_PROCESS: &str = "cloudflared";

/// What the plan needs to know about the service beyond its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointContext {
    /// The service's slug: its DNS alias in the project network.
    pub service_alias: String,
    /// The project network (where a tunnel connector must run to reach the alias).
    pub network: String,
    /// The port the application listens on inside its workload (`settings.port`).
    pub container_port: u16,
}

/// Which of the proxy's listeners serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listener {
    /// The public listeners (plain HTTP for redirects and ACME HTTP-01, TLS for traffic).
    Public,
    /// The plain-HTTP listener on the LAN address.
    Lan,
}

/// Where a routed name's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CertificateSource {
    /// Ordered and renewed over ACME (HTTP-01 or TLS-ALPN-01, answered by the proxy).
    Acme,
    /// A PEM certificate and key the user stored as the config secret of this name.
    Custom { secret: String },
}

/// One host name the proxy serves for the service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostRoute {
    /// Normalised (lowercase, no trailing dot).
    pub domain: String,
    pub listener: Listener,
    /// `None` = plain HTTP only.
    pub tls: Option<CertificateSource>,
    /// Plain-HTTP requests get a 308 to HTTPS (ACME HTTP-01 challenges excepted).
    pub redirect_to_https: bool,
}

/// `tailscale serve` mapping HTTPS on the tailnet (port `https_port` of this node's
/// `*.ts.net` name, certificate by Tailscale) to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TailscaleServePlan {
    pub https_port: u16,
}

impl TailscaleServePlan {
    /// The argument vector (without the program) that points the tailnet's HTTPS port at
    /// `upstream`, persistently (`--bg`: kept by tailscaled across restarts) and without a
    /// prompt (`--yes`). Running it again with a new upstream replaces the mapping.
    pub fn add_argv(&self, upstream: SocketAddr) -> Vec<String> {
        vec![
            "serve".to_owned(),
            "--bg".to_owned(),
            "--yes".to_owned(),
            format!("--https={}", self.https_port),
            format!("http://{upstream}"),
        ]
    }

    /// The argument vector that removes the mapping again.
    pub fn remove_argv(&self) -> Vec<String> {
        vec![
            "serve".to_owned(),
            format!("--https={}", self.https_port),
            "off".to_owned(),
        ]
    }
}

/// One `cloudflared` ingress rule: requests for `hostname` (all, when `None`) go to `service`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `http://alias:port`, or `http_status:404` for the catch-all.
    pub service: String,
}

/// The connector workload: `cloudflared tunnel --no-autoupdate run`, token from a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CloudflaredConnector {
    pub image: ImageRef,
    pub command: Vec<String>,
    /// The config secret holding the tunnel token (passed as `TUNNEL_TOKEN`).
    pub token_secret: String,
    /// The project network: the connector reaches the service by its alias there.
    pub network: String,
}

impl CloudflaredConnector {
    /// The workload to start. `token` is the decrypted `token_secret`, and it goes only into
    /// the environment. No port is published: the connector dials out to Cloudflare.
    pub fn workload_spec(&self, name: String, owner: Owner, token: SecretString) -> WorkloadSpec {
        WorkloadSpec {
            name,
            owner,
            image: Some(self.image.clone()),
            command: Some(self.command.clone()),
            env: vec![(TUNNEL_TOKEN_ENV.to_owned(), EnvValue::Secret(token))],
            working_dir: None,
            port: None,
            publish: None,
            network: Some(NetworkAttachment {
                network: self.network.clone(),
                aliases: Vec::new(),
            }),
            volumes: Vec::new(),
            cpu_limit: 0.25,
            memory_limit_mb: 128,
            restart: RestartPolicy::UnlessStopped,
        }
    }
}

/// A tunnel: the connector to run and the ingress it must be given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CloudflareTunnel {
    pub hostname: String,
    pub connector: CloudflaredConnector,
    /// In order; the last rule is always the `http_status:404` catch-all cloudflared requires.
    pub ingress: Vec<IngressRule>,
}

impl CloudflareTunnel {
    /// The ingress as a `cloudflared` config file (`config.yml`) for a locally-managed tunnel.
    /// Values are JSON-quoted, which YAML reads as double-quoted scalars, so a name like
    /// `*.example.com` cannot turn into a YAML alias.
    pub fn config_yaml(&self) -> String {
        let mut out =
            String::from("# Rendered by Clank: the last rule must stay the catch-all.\ningress:\n");
        for rule in &self.ingress {
            let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
            match &rule.hostname {
                Some(host) => {
                    let _ = writeln!(out, "  - hostname: {}", quote(host));
                    let _ = writeln!(out, "    service: {}", quote(&rule.service));
                }
                None => {
                    let _ = writeln!(out, "  - service: {}", quote(&rule.service));
                }
            }
        }
        out
    }

    /// The ingress as the Cloudflare API's tunnel configuration body (`PUT
    /// /accounts/{account}/cfd_tunnel/{tunnel}/configurations`) for a remotely-managed tunnel.
    pub fn api_configuration(&self) -> serde_json::Value {
        serde_json::json!({ "config": { "ingress": self.ingress } })
    }
}

/// What the platform does for one service's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum EndpointPlan {
    /// `public_direct` and `lan_only`: the proxy serves these names.
    Routes { routes: Vec<HostRoute> },
    /// `byo_proxy`: the `web` workload's port is published here; the proxy routes nothing.
    Publish { binding: PortBinding },
    /// `tailscale_https`: the proxy drives `tailscale serve` at each cutover.
    Tailscale { serve: TailscaleServePlan },
    /// `cloudflare_tunnel`: a connector in the project network with these ingress rules.
    CloudflareTunnel { tunnel: CloudflareTunnel },
}

impl EndpointPlan {
    /// The names the ACME client must hold certificates for.
    pub fn acme_names(&self) -> Vec<&str> {
        match self {
            EndpointPlan::Routes { routes } => routes
                .iter()
                .filter(|r| r.tls == Some(CertificateSource::Acme))
                .map(|r| r.domain.as_str())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The host binding for the `web` workload, when the mode publishes one.
    pub fn host_publish(&self) -> Option<PortBinding> {
        match self {
            EndpointPlan::Publish { binding } => Some(*binding),
            _ => None,
        }
    }

    /// The workload the mode runs beside the service's own (the `cloudflared` connector).
    pub fn connector(&self) -> Option<&CloudflaredConnector> {
        match self {
            EndpointPlan::CloudflareTunnel { tunnel } => Some(&tunnel.connector),
            _ => None,
        }
    }
}

/// The fixed host address a version's `web` workloads publish on (`byo_proxy`), if any. Two
/// versions with overlapping addresses cannot run side by side.
pub fn fixed_publish(snapshot: &DeploymentSnapshot) -> Option<PortBinding> {
    match snapshot.applied_endpoint()? {
        Endpoint::ByoProxy { host_ip, host_port } => Some(PortBinding {
            host_ip: *host_ip,
            host_port: Some(*host_port),
        }),
        _ => None,
    }
}

/// What a version's endpoint needs from its resolved config but does not find there, as the
/// reason to fail it with before anything starts: a tunnel's `token_secret` must be a secret.
pub fn missing_config(snapshot: &DeploymentSnapshot) -> Option<String> {
    let Some(Endpoint::CloudflareTunnel { token_secret, .. }) = snapshot.applied_endpoint() else {
        return None;
    };
    match snapshot.config.get(token_secret).map(|var| &var.value) {
        Some(ConfigValue::Secret(_)) => None,
        Some(ConfigValue::Plain(_)) => Some(format!(
            "the cloudflare_tunnel endpoint's token_secret `{token_secret}` is a plain variable; \
             store the tunnel token as a secret"
        )),
        None => Some(format!(
            "the cloudflare_tunnel endpoint's token_secret `{token_secret}` is not set in the \
             service's config; set the tunnel token as a secret of that name"
        )),
    }
}

/// Plan `endpoint` for a service described by `ctx`. The endpoint is validated (on a copy, so
/// names are normalised in the plan) and every error names the offending field.
pub fn plan(endpoint: &Endpoint, ctx: &EndpointContext) -> Result<EndpointPlan, InvalidInput> {
    let mut endpoint = endpoint.clone();
    endpoint.validate()?;
    validate::validate_slug("service_alias", &ctx.service_alias)?;
    validate::validate_port("settings.port", u32::from(ctx.container_port))?;
    Ok(match endpoint {
        Endpoint::PublicDirect { domains, tls } => {
            let source = match tls {
                TlsMode::Acme => CertificateSource::Acme,
                TlsMode::Custom { certificate } => CertificateSource::Custom {
                    secret: certificate,
                },
            };
            EndpointPlan::Routes {
                routes: domains
                    .into_iter()
                    .map(|domain| HostRoute {
                        domain,
                        listener: Listener::Public,
                        tls: Some(source.clone()),
                        redirect_to_https: true,
                    })
                    .collect(),
            }
        }
        Endpoint::LanOnly { domains } => EndpointPlan::Routes {
            routes: domains
                .into_iter()
                .map(|domain| HostRoute {
                    domain,
                    listener: Listener::Lan,
                    tls: None,
                    redirect_to_https: false,
                })
                .collect(),
        },
        Endpoint::ByoProxy { host_ip, host_port } => EndpointPlan::Publish {
            binding: PortBinding {
                host_ip,
                host_port: Some(host_port),
            },
        },
        Endpoint::TailscaleHttps { https_port } => EndpointPlan::Tailscale {
            serve: TailscaleServePlan { https_port },
        },
        Endpoint::CloudflareTunnel {
            hostname,
            token_secret,
        } => {
            if ctx.network.is_empty() {
                return Err(InvalidInput::new(
                    "network",
                    "empty",
                    "a tunnel connector needs the project network to reach the service",
                ));
            }
            let image = ImageRef::parse(CLOUDFLARED_IMAGE).map_err(|e| e.within("connector"))?;
            EndpointPlan::CloudflareTunnel {
                tunnel: CloudflareTunnel {
                    ingress: vec![
                        IngressRule {
                            hostname: Some(hostname.clone()),
                            service: format!("http://{}:{}", ctx.service_alias, ctx.container_port),
                        },
                        IngressRule {
                            hostname: None,
                            service: "http_status:404".to_owned(),
                        },
                    ],
                    hostname,
                    connector: CloudflaredConnector {
                        image,
                        command: ["tunnel", "--no-autoupdate", "run"]
                            .map(str::to_owned)
                            .to_vec(),
                        token_secret,
                        network: ctx.network.clone(),
                    },
                },
            }
        }
    })
}

/// Plan a service's endpoint: `None` when it has none or is not public (DESIGN.md §5: one
/// endpoint per service, none when `is_public` is false).
pub fn plan_service(
    service: &crate::model::Service,
    network: &str,
) -> Result<Option<EndpointPlan>, InvalidInput> {
    let Some(endpoint) = &service.endpoint else {
        return Ok(None);
    };
    if !service.settings.is_public {
        return Ok(None);
    }
    let Some(port) = service.settings.port else {
        return Err(InvalidInput::new(
            "settings.port",
            "required",
            "an endpoint needs the service's `port` to be set",
        ));
    };
    plan(
        endpoint,
        &EndpointContext {
            service_alias: service.slug.clone(),
            network: network.to_owned(),
            container_port: port,
        },
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
    use crate::model::{Service, ServiceSource};
    use crate::time::Timestamp;

    fn ctx() -> EndpointContext {
        EndpointContext {
            service_alias: "api".into(),
            network: "clank-project-shop".into(),
            container_port: 8080,
        }
    }

    fn route(domain: &str, listener: Listener, tls: Option<CertificateSource>) -> HostRoute {
        HostRoute {
            domain: domain.into(),
            redirect_to_https: tls.is_some(),
            listener,
            tls,
        }
    }

    fn tunnel_plan() -> CloudflareTunnel {
        let e = Endpoint::CloudflareTunnel {
            hostname: "Shop.Example.com".into(),
            token_secret: "CF_TUNNEL_TOKEN".into(),
        };
        match plan(&e, &ctx()).unwrap() {
            EndpointPlan::CloudflareTunnel { tunnel } => tunnel,
            other => panic!("expected a tunnel, got {other:?}"),
        }
    }

    #[test]
    fn each_mode_plans_to_what_design_section_5_says() {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let cases: Vec<(&str, Endpoint, EndpointPlan)> = vec![
            (
                "public_direct with ACME: TLS by ACME, HTTP redirected",
                Endpoint::PublicDirect {
                    domains: vec!["shop.example.com".into(), "WWW.Shop.Example.com.".into()],
                    tls: TlsMode::Acme,
                },
                EndpointPlan::Routes {
                    routes: vec![
                        route(
                            "shop.example.com",
                            Listener::Public,
                            Some(CertificateSource::Acme),
                        ),
                        route(
                            "www.shop.example.com",
                            Listener::Public,
                            Some(CertificateSource::Acme),
                        ),
                    ],
                },
            ),
            (
                "public_direct with a custom certificate names its secret",
                Endpoint::PublicDirect {
                    domains: vec!["shop.example.com".into()],
                    tls: TlsMode::Custom {
                        certificate: "SHOP_PEM".into(),
                    },
                },
                EndpointPlan::Routes {
                    routes: vec![route(
                        "shop.example.com",
                        Listener::Public,
                        Some(CertificateSource::Custom {
                            secret: "SHOP_PEM".into(),
                        }),
                    )],
                },
            ),
            (
                "lan_only: plain HTTP on the LAN listener, no redirect",
                Endpoint::LanOnly {
                    domains: vec!["api.lan".into()],
                },
                EndpointPlan::Routes {
                    routes: vec![route("api.lan", Listener::Lan, None)],
                },
            ),
            (
                "byo_proxy: the requested host address, fixed port",
                Endpoint::ByoProxy {
                    host_ip: loopback,
                    host_port: 9000,
                },
                EndpointPlan::Publish {
                    binding: PortBinding {
                        host_ip: loopback,
                        host_port: Some(9000),
                    },
                },
            ),
            (
                "tailscale_https: the tailnet port",
                Endpoint::TailscaleHttps { https_port: 8443 },
                EndpointPlan::Tailscale {
                    serve: TailscaleServePlan { https_port: 8443 },
                },
            ),
        ];
        for (name, endpoint, want) in cases {
            assert_eq!(plan(&endpoint, &ctx()).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn only_acme_public_names_need_certificates_ordered() {
        let cases = [
            (
                Endpoint::PublicDirect {
                    domains: vec!["a.example.com".into(), "b.example.com".into()],
                    tls: TlsMode::Acme,
                },
                vec!["a.example.com", "b.example.com"],
            ),
            (
                Endpoint::PublicDirect {
                    domains: vec!["a.example.com".into()],
                    tls: TlsMode::Custom {
                        certificate: "PEM".into(),
                    },
                },
                vec![],
            ),
            (
                Endpoint::LanOnly {
                    domains: vec!["a.lan".into()],
                },
                vec![],
            ),
            (Endpoint::TailscaleHttps { https_port: 443 }, vec![]),
        ];
        for (endpoint, want) in cases {
            let p = plan(&endpoint, &ctx()).unwrap();
            assert_eq!(p.acme_names(), want, "{endpoint:?}");
        }
    }

    #[test]
    fn only_byo_proxy_publishes_a_host_port() {
        let byo = Endpoint::ByoProxy {
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 8081,
        };
        let binding = plan(&byo, &ctx()).unwrap().host_publish().unwrap();
        assert_eq!(binding.host_port, Some(8081));
        assert!(binding.host_ip.is_unspecified());
        let lan = Endpoint::LanOnly {
            domains: vec!["a.lan".into()],
        };
        assert_eq!(plan(&lan, &ctx()).unwrap().host_publish(), None);
    }

    #[test]
    fn tailscale_argv_serves_in_background_and_turns_off_by_port() {
        let serve = TailscaleServePlan { https_port: 443 };
        let upstream: SocketAddr = "127.0.0.1:49152".parse().unwrap();
        assert_eq!(
            serve.add_argv(upstream),
            [
                "serve",
                "--bg",
                "--yes",
                "--https=443",
                "http://127.0.0.1:49152"
            ]
        );
        assert_eq!(serve.remove_argv(), ["serve", "--https=443", "off"]);
        let v6 = TailscaleServePlan { https_port: 10000 }.add_argv("[::1]:8080".parse().unwrap());
        assert_eq!(v6[3..], ["--https=10000", "http://[::1]:8080"]);
    }

    #[test]
    fn tunnel_routes_hostname_to_service_alias_and_ends_with_404_catch_all() {
        let t = tunnel_plan();
        assert_eq!(t.hostname, "shop.example.com");
        assert_eq!(
            t.ingress,
            [
                IngressRule {
                    hostname: Some("shop.example.com".into()),
                    service: "http://api:8080".into()
                },
                IngressRule {
                    hostname: None,
                    service: "http_status:404".into()
                },
            ]
        );
    }

    #[test]
    fn tunnel_config_yaml_is_the_ingress_with_quoted_values() {
        assert_eq!(
            tunnel_plan().config_yaml(),
            "# Rendered by Clank: the last rule must stay the catch-all.\n\
             ingress:\n  \
               - hostname: \"shop.example.com\"\n    \
                 service: \"http://api:8080\"\n  \
               - service: \"http_status:404\"\n"
        );
    }

    #[test]
    fn tunnel_api_configuration_has_the_same_rules() {
        assert_eq!(
            tunnel_plan().api_configuration(),
            serde_json::json!({"config": {"ingress": [
                {"hostname": "shop.example.com", "service": "http://api:8080"},
                {"service": "http_status:404"},
            ]}})
        );
    }

    #[test]
    fn tunnel_connector_runs_cloudflared_with_token_only_in_env() {
        let t = tunnel_plan();
        let owner = Owner {
            workspace: WorkspaceId::new(),
            project: ProjectId::new(),
            environment: EnvironmentId::new(),
            service: ServiceId::new(),
            deployment: DeploymentId::new(),
            process: CLOUDFLARED_PROCESS.into(),
            replica: 0,
        };
        let spec = t.connector.workload_spec(
            "clank-shop-cloudflared".into(),
            owner,
            SecretString::new("eyJ-secret-token"),
        );
        assert_eq!(spec.image.unwrap().to_string(), CLOUDFLARED_IMAGE);
        assert_eq!(
            spec.command.as_deref().unwrap(),
            ["tunnel", "--no-autoupdate", "run"]
        );
        assert!(
            !spec
                .command
                .iter()
                .flatten()
                .any(|a| a.contains("eyJ-secret-token"))
        );
        assert_eq!(spec.env.len(), 1);
        assert_eq!(spec.env[0].0, "TUNNEL_TOKEN");
        assert!(matches!(&spec.env[0].1, EnvValue::Secret(s) if s.expose() == "eyJ-secret-token"));
        assert_eq!(spec.network.unwrap().network, "clank-project-shop");
        assert_eq!((spec.port, spec.publish), (None, None));
        assert_eq!(t.connector.token_secret, "CF_TUNNEL_TOKEN");
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let cases: Vec<(&str, Endpoint, EndpointContext)> = vec![
            (
                "endpoint.domains",
                Endpoint::PublicDirect {
                    domains: vec![],
                    tls: TlsMode::Acme,
                },
                ctx(),
            ),
            (
                "endpoint.domains[1]",
                Endpoint::LanOnly {
                    domains: vec!["a.lan".into(), "bad domain".into()],
                },
                ctx(),
            ),
            (
                "endpoint.tls.certificate",
                Endpoint::PublicDirect {
                    domains: vec!["a.example.com".into()],
                    tls: TlsMode::Custom {
                        certificate: "not a key".into(),
                    },
                },
                ctx(),
            ),
            (
                "endpoint.host_port",
                Endpoint::ByoProxy {
                    host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    host_port: 0,
                },
                ctx(),
            ),
            (
                "endpoint.https_port",
                Endpoint::TailscaleHttps { https_port: 0 },
                ctx(),
            ),
            (
                "endpoint.hostname",
                Endpoint::CloudflareTunnel {
                    hostname: "-bad-".into(),
                    token_secret: "T".into(),
                },
                ctx(),
            ),
            (
                "endpoint.token_secret",
                Endpoint::CloudflareTunnel {
                    hostname: "a.example.com".into(),
                    token_secret: "has space".into(),
                },
                ctx(),
            ),
            (
                "network",
                Endpoint::CloudflareTunnel {
                    hostname: "a.example.com".into(),
                    token_secret: "T".into(),
                },
                EndpointContext {
                    network: String::new(),
                    ..ctx()
                },
            ),
            (
                "settings.port",
                Endpoint::TailscaleHttps { https_port: 443 },
                EndpointContext {
                    container_port: 0,
                    ..ctx()
                },
            ),
            (
                "service_alias",
                Endpoint::TailscaleHttps { https_port: 443 },
                EndpointContext {
                    service_alias: "Not A Slug".into(),
                    ..ctx()
                },
            ),
        ];
        for (field, endpoint, ctx) in cases {
            let err = plan(&endpoint, &ctx).unwrap_err();
            assert_eq!(err.field, field, "{endpoint:?}: {err}");
        }
    }

    fn service() -> Service {
        let mut s = Service::new(
            WorkspaceId::new(),
            ProjectId::new(),
            EnvironmentId::new(),
            "api",
            ServiceSource::DockerImage {
                image: "nginx:1.27".parse().unwrap(),
                credentials_secret: None,
            },
            Timestamp(0),
        )
        .unwrap();
        s.endpoint = Some(Endpoint::TailscaleHttps { https_port: 443 });
        s
    }

    #[test]
    fn service_without_endpoint_or_not_public_plans_nothing() {
        let mut s = service();
        assert!(plan_service(&s, "net").unwrap().is_some());
        s.settings.is_public = false;
        assert_eq!(plan_service(&s, "net").unwrap(), None);
        let mut s = service();
        s.endpoint = None;
        assert_eq!(plan_service(&s, "net").unwrap(), None);
    }

    #[test]
    fn service_endpoint_without_port_names_settings_port() {
        let mut s = service();
        s.settings.port = None;
        assert_eq!(plan_service(&s, "net").unwrap_err().field, "settings.port");
    }

    #[test]
    fn plans_round_trip_through_json_with_their_mode() {
        let p = plan(&Endpoint::TailscaleHttps { https_port: 443 }, &ctx()).unwrap();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["mode"], "tailscale");
        assert_eq!(serde_json::from_value::<EndpointPlan>(json).unwrap(), p);
    }
}
