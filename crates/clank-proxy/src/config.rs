//! The proxy's configuration. Durations are milliseconds in JSON (`connect_timeout_ms`), so the
//! binary's config file needs no duration syntax.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clank_core::id::ServiceId;

use crate::cidr::IpNet;
use crate::tls::TlsCertificate;

/// Everything the proxy needs to start. `Default` is a loopback listener with conservative
/// limits, which is what tests and the embedded daemon start from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// The plain-HTTP listener.
    pub listen: SocketAddr,
    /// The LAN listener: plain HTTP for `lan_only` endpoints, never redirected. When it is
    /// set, `lan_only` names are served only here and every other route only on the public
    /// listeners; when unset, `lan_only` names are served on `listen`.
    pub lan_listen: Option<SocketAddr>,
    /// The TLS listener (rustls, SNI certificate selection, HTTP/2 or HTTP/1.1 by ALPN).
    pub tls_listen: Option<SocketAddr>,
    /// The port HTTP→HTTPS redirects point at; `tls_listen`'s port if unset.
    pub https_port: Option<u16>,
    /// Certificates brought as PEM files, loaded at start (more via `add_certificate`).
    pub tls_certificates: Vec<TlsCertificate>,
    /// Where `GET /metrics` (Prometheus text) and `GET /routes` are served; none if unset.
    pub admin_listen: Option<SocketAddr>,
    /// A Unix socket the control plane drives this proxy through (the `clank-daemon` runs
    /// its proxy as its own process this way); owner-only. None if unset.
    pub control_socket: Option<std::path::PathBuf>,
    /// Peers whose `X-Forwarded-For/-Proto/-Host` and `Forwarded` headers are kept (and
    /// appended to); from anyone else they are replaced, so a client cannot spoof its address.
    pub trusted_peers: Vec<IpNet>,
    /// TCP connect to an upstream address; past it the request is answered 504.
    #[serde(rename = "connect_timeout_ms", with = "ms")]
    pub connect_timeout: Duration,
    /// A client must send a complete request head within this time. The timer starts when the
    /// proxy starts waiting for a head, so it also closes keep-alive connections idle for this
    /// long and slowloris clients.
    #[serde(rename = "header_read_timeout_ms", with = "ms")]
    pub header_read_timeout: Duration,
    /// How long the upstream may stay silent between sending the request and its response
    /// head: 504 past it. Each piece of request body sent restarts it (a long upload is not
    /// cut off). Response bodies have no such limit (event streams may idle for long).
    #[serde(rename = "upstream_timeout_ms", with = "ms")]
    pub upstream_timeout: Duration,
    /// How long an idle pooled upstream connection is kept for reuse. Keep it below the
    /// apps' own keep-alive timeout (Node's default is 5 s): reusing a connection the app is
    /// closing at that moment fails the request with a 502.
    #[serde(rename = "upstream_idle_timeout_ms", with = "ms")]
    pub upstream_idle_timeout: Duration,
    /// Idle pooled connections kept per upstream address.
    pub upstream_max_idle: usize,
    /// Largest request body accepted; larger ones are answered 413.
    pub max_body_bytes: u64,
    /// Largest request head (request line + headers) accepted; 431 past it.
    pub max_header_bytes: usize,
    /// How long a request to a paused service is held before it is answered 503.
    #[serde(rename = "pause_timeout_ms", with = "ms")]
    pub pause_timeout: Duration,
    /// One health-gate probe attempt (connect + request + response head).
    #[serde(rename = "probe_timeout_ms", with = "ms")]
    pub probe_timeout: Duration,
    /// Where the route table is persisted (JSON) after every change and restored from at
    /// start, so the proxy keeps serving while the control plane restarts.
    pub state_file: Option<PathBuf>,
    /// Extra host names mapped to services, for routes without a routed endpoint (tests,
    /// byo setups). Matched like endpoint domains: case-insensitive, port ignored.
    pub host_aliases: BTreeMap<String, ServiceId>,
    /// The service receiving requests whose host matches nothing; unknown hosts get 404 if unset.
    pub fallback_service: Option<ServiceId>,
    /// The `tailscale` CLI run for `tailscale_https` endpoints (a bare name is looked up on
    /// `PATH`).
    pub tailscale_binary: PathBuf,
    /// Automatic certificates: when set, [`crate::run`] (the `clank-proxy` binary) keeps every
    /// routed `public_direct` name with ACME TLS certified. Embedders start an
    /// [`crate::AcmeManager`] themselves.
    pub acme: Option<AcmeSettings>,
}

/// The ACME part of the config file (the serialisable face of [`crate::AcmeConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSettings {
    /// The CA's directory (`https://acme-v02.api.letsencrypt.org/directory`).
    pub directory_url: String,
    /// Account, certificates and retry state (owner-only files).
    pub state_dir: PathBuf,
    /// Contact URIs for the account (`mailto:ops@example.com`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// Trust only this CA (PEM) for the directory's HTTPS (private or test CAs).
    #[serde(default)]
    pub server_root: Option<PathBuf>,
    /// `http-01` (answered on `listen`, port 80 in production) or `tls-alpn-01` (on
    /// `tls_listen`, port 443).
    #[serde(default)]
    pub challenge: crate::acme::Challenge,
    /// The longest pause between passes over the routed names (a newly routed name is
    /// ordered at once regardless). `CLANK_PROXY_ACME_CHECK_INTERVAL_MS`.
    #[serde(
        rename = "check_interval_ms",
        with = "ms",
        default = "default_check_interval"
    )]
    pub check_interval: Duration,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(3600)
}

impl AcmeSettings {
    pub fn to_acme_config(&self) -> crate::AcmeConfig {
        crate::AcmeConfig {
            contact: self.contact.clone(),
            server_root: self.server_root.clone(),
            challenge: self.challenge,
            check_interval: self.check_interval,
            ..crate::AcmeConfig::new(self.directory_url.clone(), self.state_dir.clone())
        }
    }

    fn validate(&self) -> Result<(), crate::ProxyError> {
        let bad =
            |field: &str, why: &str| Err(crate::ProxyError::Config(format!("{field}: {why}")));
        if !self.directory_url.starts_with("https://") {
            return bad(
                "acme.directory_url",
                "must be an https:// URL (ACME requires HTTPS)",
            );
        }
        if self.state_dir.as_os_str().is_empty() {
            return bad("acme.state_dir", "must not be empty");
        }
        if self.check_interval.is_zero() {
            return bad("acme.check_interval_ms", "must be greater than zero");
        }
        Ok(())
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            control_socket: None,
            tls_listen: None,
            https_port: None,
            tls_certificates: Vec::new(),
            trusted_peers: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            header_read_timeout: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(4),
            upstream_max_idle: 256,
            max_body_bytes: 64 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            pause_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(2),
            state_file: None,
            host_aliases: BTreeMap::new(),
            fallback_service: None,
            lan_listen: None,
            tailscale_binary: PathBuf::from("tailscale"),
            acme: None,
        }
    }
}

impl ProxyConfig {
    pub(crate) fn validate(&self) -> Result<(), crate::ProxyError> {
        // Below 8 KiB ordinary browser requests (cookies) are refused; hyper's HTTP/2 side
        // also panics on smaller buffers.
        if self.max_header_bytes < 8192 {
            return Err(crate::ProxyError::Config(
                "max_header_bytes must be at least 8192".into(),
            ));
        }
        if self.header_read_timeout.is_zero() || self.upstream_timeout.is_zero() {
            return Err(crate::ProxyError::Config(
                "timeouts must be greater than zero".into(),
            ));
        }
        if let Some(acme) = &self.acme {
            acme.validate()?;
        }
        Ok(())
    }

    /// Apply the `CLANK_PROXY_ACME_*` variables (looked up through `var`) over the file's
    /// `acme` section, one per setting: `DIRECTORY_URL` (turns ACME on), `STATE_DIR`, `CONTACT`
    /// (comma-separated), `SERVER_ROOT`, `CHALLENGE` (`http-01` / `tls-alpn-01`),
    /// `CHECK_INTERVAL_MS`. Errors name the variable.
    pub fn with_acme_env(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::ProxyError> {
        const PREFIX: &str = "CLANK_PROXY_ACME_";
        let get = |name: &str| var(&format!("{PREFIX}{name}")).filter(|v| !v.is_empty());
        let url = get("DIRECTORY_URL");
        if url.is_none() && self.acme.is_none() {
            return Ok(self);
        }
        let mut acme = match (self.acme.take(), url) {
            (Some(mut a), Some(url)) => {
                a.directory_url = url;
                a
            }
            (Some(a), None) => a,
            (None, Some(url)) => AcmeSettings {
                directory_url: url,
                state_dir: PathBuf::new(),
                contact: Vec::new(),
                server_root: None,
                challenge: crate::acme::Challenge::default(),
                check_interval: default_check_interval(),
            },
            (None, None) => return Ok(self),
        };
        if let Some(dir) = get("STATE_DIR") {
            acme.state_dir = PathBuf::from(dir);
        }
        if let Some(contact) = get("CONTACT") {
            acme.contact = contact.split(',').map(|c| c.trim().to_owned()).collect();
        }
        if let Some(root) = get("SERVER_ROOT") {
            acme.server_root = Some(PathBuf::from(root));
        }
        if let Some(challenge) = get("CHALLENGE") {
            acme.challenge = serde_json::from_value(serde_json::Value::String(challenge.clone()))
                .map_err(|_| {
                crate::ProxyError::Config(format!(
                    "{PREFIX}CHALLENGE: `{challenge}` is not `http-01` or `tls-alpn-01`"
                ))
            })?;
        }
        if let Some(ms) = get("CHECK_INTERVAL_MS") {
            acme.check_interval = ms
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    crate::ProxyError::Config(format!(
                        "{PREFIX}CHECK_INTERVAL_MS: `{ms}` is not a positive number of milliseconds"
                    ))
                })?;
        }
        if acme.state_dir.as_os_str().is_empty() {
            return Err(crate::ProxyError::Config(format!(
                "{PREFIX}STATE_DIR (or acme.state_dir): required when ACME is on"
            )));
        }
        self.acme = Some(acme);
        Ok(self)
    }
}

mod ms {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let ms = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn acme_stays_off_without_a_directory_url() {
        let c = ProxyConfig::default()
            .with_acme_env(env(&[("CLANK_PROXY_ACME_STATE_DIR", "/var/lib/acme")]))
            .unwrap();
        assert_eq!(c.acme, None);
    }

    #[test]
    fn acme_env_turns_acme_on_with_every_setting() {
        let c = ProxyConfig::default()
            .with_acme_env(env(&[
                ("CLANK_PROXY_ACME_DIRECTORY_URL", "https://ca.example/dir"),
                ("CLANK_PROXY_ACME_STATE_DIR", "/var/lib/clank/acme"),
                (
                    "CLANK_PROXY_ACME_CONTACT",
                    "mailto:a@example.com, mailto:b@example.com",
                ),
                ("CLANK_PROXY_ACME_SERVER_ROOT", "/etc/ca.pem"),
                ("CLANK_PROXY_ACME_CHALLENGE", "tls-alpn-01"),
                ("CLANK_PROXY_ACME_CHECK_INTERVAL_MS", "5000"),
            ]))
            .unwrap();
        let acme = c.acme.unwrap();
        assert_eq!(acme.check_interval, Duration::from_secs(5));
        assert_eq!(acme.directory_url, "https://ca.example/dir");
        assert_eq!(acme.state_dir, PathBuf::from("/var/lib/clank/acme"));
        assert_eq!(
            acme.contact,
            ["mailto:a@example.com", "mailto:b@example.com"]
        );
        assert_eq!(acme.server_root, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(acme.challenge, crate::acme::Challenge::TlsAlpn01);
    }

    #[test]
    fn acme_env_overrides_the_file_and_bad_values_name_the_variable() {
        let file: ProxyConfig = serde_json::from_str(
            r#"{"acme": {"directory_url": "https://file.example/dir", "state_dir": "/s", "check_interval_ms": 500}}"#,
        )
        .unwrap();
        let acme = file.acme.clone().unwrap();
        assert_eq!(acme.check_interval, Duration::from_millis(500));
        assert_eq!(acme.challenge, crate::acme::Challenge::Http01);
        let c = file
            .clone()
            .with_acme_env(env(&[(
                "CLANK_PROXY_ACME_DIRECTORY_URL",
                "https://env.example/dir",
            )]))
            .unwrap();
        assert_eq!(c.acme.unwrap().directory_url, "https://env.example/dir");

        let err = file
            .with_acme_env(env(&[("CLANK_PROXY_ACME_CHALLENGE", "dns-01")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("CLANK_PROXY_ACME_CHALLENGE"),
            "{err}"
        );
        let err = ProxyConfig::default()
            .with_acme_env(env(&[(
                "CLANK_PROXY_ACME_DIRECTORY_URL",
                "https://ca.example/dir",
            )]))
            .unwrap_err();
        assert!(
            err.to_string().contains("CLANK_PROXY_ACME_STATE_DIR"),
            "{err}"
        );
    }

    /// Each variable named after its file key (`check_interval_ms` → `..._CHECK_INTERVAL_MS`):
    /// a setting added to the file without its variable fails here.
    #[test]
    fn every_acme_setting_of_the_file_has_an_environment_variable() {
        let vars = [
            ("CLANK_PROXY_ACME_DIRECTORY_URL", "https://ca.example/dir"),
            ("CLANK_PROXY_ACME_STATE_DIR", "/var/lib/clank/acme"),
            ("CLANK_PROXY_ACME_CONTACT", "mailto:ops@example.com"),
            ("CLANK_PROXY_ACME_SERVER_ROOT", "/etc/ca.pem"),
            ("CLANK_PROXY_ACME_CHALLENGE", "tls-alpn-01"),
            ("CLANK_PROXY_ACME_CHECK_INTERVAL_MS", "5000"),
        ];
        let from_env = ProxyConfig::default()
            .with_acme_env(env(&vars))
            .unwrap()
            .acme
            .unwrap();
        let file = serde_json::to_value(&from_env).unwrap();
        let keys: Vec<String> = file
            .as_object()
            .unwrap()
            .keys()
            .map(|k| format!("CLANK_PROXY_ACME_{}", k.to_ascii_uppercase()))
            .collect();
        let mut names: Vec<&str> = vars.iter().map(|(k, _)| *k).collect();
        let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        names.sort_unstable();
        keys.sort_unstable();
        assert_eq!(keys, names, "file keys without a variable (or the reverse)");
        // Every variable took effect: nothing is left at its default.
        let defaults = AcmeSettings {
            directory_url: String::new(),
            state_dir: PathBuf::new(),
            contact: Vec::new(),
            server_root: None,
            challenge: crate::acme::Challenge::default(),
            check_interval: default_check_interval(),
        };
        let defaults = serde_json::to_value(&defaults).unwrap();
        for (key, value) in file.as_object().unwrap() {
            assert_ne!(Some(value), defaults.get(key), "{key} kept its default");
        }
    }

    #[test]
    fn a_bad_check_interval_names_its_variable() {
        for bad in ["0", "5s", "-1"] {
            let err = ProxyConfig::default()
                .with_acme_env(env(&[
                    ("CLANK_PROXY_ACME_DIRECTORY_URL", "https://ca.example/dir"),
                    ("CLANK_PROXY_ACME_STATE_DIR", "/s"),
                    ("CLANK_PROXY_ACME_CHECK_INTERVAL_MS", bad),
                ]))
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains("CLANK_PROXY_ACME_CHECK_INTERVAL_MS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn acme_settings_are_validated_naming_the_field() {
        let c = ProxyConfig {
            acme: Some(AcmeSettings {
                directory_url: "http://insecure.example/dir".into(),
                state_dir: PathBuf::from("/s"),
                contact: Vec::new(),
                server_root: None,
                challenge: crate::acme::Challenge::Http01,
                check_interval: Duration::from_secs(1),
            }),
            ..ProxyConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("acme.directory_url"), "{err}");
        let unknown = serde_json::from_str::<ProxyConfig>(
            r#"{"acme": {"directory_url": "https://x/dir", "state_dir": "/s", "statedir": 1}}"#,
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("statedir"), "{unknown}");
    }

    #[test]
    fn lan_listen_and_tailscale_binary_come_from_the_file() {
        let c: ProxyConfig = serde_json::from_str(
            r#"{"lan_listen": "192.168.1.10:80", "tailscale_binary": "/usr/local/bin/tailscale"}"#,
        )
        .unwrap();
        assert_eq!(c.lan_listen, Some("192.168.1.10:80".parse().unwrap()));
        assert_eq!(
            c.tailscale_binary,
            PathBuf::from("/usr/local/bin/tailscale")
        );
        assert_eq!(
            ProxyConfig::default().tailscale_binary,
            PathBuf::from("tailscale")
        );
    }
}
