//! Readable multi-stage Dockerfiles for detected apps.
//!
//! Every base image is an `ARG` with a default (`NODE_IMAGE`, `PYTHON_IMAGE`, `GO_IMAGE`,
//! `RUNTIME_IMAGE`, `STATIC_IMAGE`), so a build arg overrides it. The defaults are the
//! operator's: a base image chosen per framework, or the Docker Hub image behind the
//! operator's registry prefix ([`Options`]), so a server without registry access (or with a
//! mirror) builds from its own images and the recorded Dockerfile names them. The app listens
//! on the service's port, given as `PORT` in the environment and, where a server is started by
//! the image, on its command line.
//!
//! Static sites (plain, or built single-page apps) are served by busybox httpd with a
//! generated config ([`support_files`]): `404.html` answers unknown paths with 404, or, with the
//! single-page-app fallback, `index.html` answers them with 200 (busybox `nc` hands each
//! connection to a small script that rewrites the request before `httpd -i` serves it).

use std::collections::BTreeMap;

use super::detect::{
    App, GoApp, NodeApp, NodeDeps, NodeStart, PackageManager, PythonApp, PythonDeps, PythonServer,
    SpaApp,
};

/// Where a static site's published files are placed in the build context (the generated
/// context of a static build holds only these and Clank's own files).
pub const SITE_IN_CONTEXT: &str = ".clank.site";
/// The busybox httpd config of static images, in the context.
pub const HTTPD_CONF_IN_CONTEXT: &str = ".clank.httpd.conf";
/// The single-page-app request rewriter of static images, in the context.
pub const SPA_SCRIPT_IN_CONTEXT: &str = ".clank.spa.sh";

/// How generated Dockerfiles choose base images and serve static sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Base images by build arg (`STATIC_IMAGE`, ...): the operator's choice, replacing the
    /// default (and its detected version).
    pub base_images: BTreeMap<String, String>,
    /// Prepended to default base images that are Docker Hub names (`busybox:1.36` becomes
    /// `registry.local:5000/library/busybox:1.36`); images naming a registry are left as is.
    pub image_prefix: String,
    /// The directory whose files a static site publishes, or where a single-page app's build
    /// writes them (relative to the build context); `None`: the context, or the detected one.
    pub publish_dir: Option<String>,
    /// `index.html` (200) for paths that are no file; `None`: on for single-page apps.
    pub spa_fallback: Option<bool>,
}

impl Options {
    /// The image for `arg` whose default is `default`.
    pub fn image(&self, arg: &str, default: &str) -> String {
        if let Some(image) = self.base_images.get(arg) {
            return image.clone();
        }
        let first = default.split('/').next().unwrap_or_default();
        let names_registry = default.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        if names_registry {
            default.to_owned()
        } else {
            format!("{}{default}", self.image_prefix)
        }
    }

    /// Whether unknown paths of `app`'s site get `index.html`.
    pub fn spa_fallback_for(&self, app: &App) -> bool {
        self.spa_fallback.unwrap_or(matches!(app, App::Spa(_)))
    }
}

/// Default Node.js major version when `engines.node` says nothing.
pub const DEFAULT_NODE_MAJOR: u32 = 22;
/// Default Python version when nothing pins one.
pub const DEFAULT_PYTHON: &str = "3.12";
/// Default Go version when go.mod has no `go` line.
pub const DEFAULT_GO: &str = "1.22";
/// The default base image of static sites.
pub const DEFAULT_STATIC_IMAGE: &str = "busybox:1.36";
/// The default base image that runs Go binaries.
pub const DEFAULT_RUNTIME_IMAGE: &str = "gcr.io/distroless/static-debian12";
/// The build args that name base images, as generated Dockerfiles declare them.
pub const BASE_IMAGE_ARGS: &[&str] = &[
    "NODE_IMAGE",
    "PYTHON_IMAGE",
    "GO_IMAGE",
    "RUNTIME_IMAGE",
    "STATIC_IMAGE",
];

/// The Dockerfile for `app`, listening on `port`, with the default base images.
pub fn render(app: &App, port: u16) -> String {
    render_with(app, port, &Options::default())
}

/// The Dockerfile for `app`, listening on `port`, as `options` say.
pub fn render_with(app: &App, port: u16, options: &Options) -> String {
    match app {
        App::Node(node) => node_app(node, port, options),
        App::Spa(spa) => spa_app(spa, port, options),
        App::Python(py) => python_app(py, port, options),
        App::Go(go) => go_app(go, port, options),
        App::Static => static_site(port, options, options.spa_fallback_for(app)),
    }
}

/// The files a generated Dockerfile for `app` copies from the context besides the app's own
/// (the static server's config and request rewriter), by path in the context.
pub fn support_files(app: &App, options: &Options) -> Vec<(&'static str, String)> {
    if !matches!(app, App::Static | App::Spa(_)) {
        return Vec::new();
    }
    let mut files = vec![(
        HTTPD_CONF_IN_CONTEXT,
        "# Generated by Clank: the site's 404.html (if any) answers unknown paths.\n\
         E404:/srv/404.html\n"
            .to_owned(),
    )];
    if options.spa_fallback_for(app) {
        files.push((SPA_SCRIPT_IN_CONTEXT, SPA_SCRIPT.to_owned()));
    }
    files
}

/// Where the rewriter lives in the image.
const SPA_SCRIPT_IN_IMAGE: &str = "/etc/clank-spa.sh";

/// One request per connection (`nc -ll -e`): read the request line and head, and when the
/// path names no file under /srv (nor a directory with an index.html), ask httpd for
/// `/index.html` instead, so client-side routes load the app with 200. Paths with `..` are
/// passed on untouched (httpd refuses them). httpd answers with `Connection: close`.
const SPA_SCRIPT: &str = r#"# Generated by Clank: the single-page-app fallback of busybox httpd.
cr=$(printf '\r')
IFS= read -r -t 60 request || exit 0
set -f
set -- ${request%"$cr"}
head=""
while IFS= read -r -t 60 line; do
  line=${line%"$cr"}
  [ -z "$line" ] && break
  head="$head$line$cr
"
done
file=$(busybox httpd -d "${2%%\?*}")
case "$file" in
  */../*|*/..) ;;
  *) if [ ! -f "/srv$file" ] && [ ! -f "/srv${file%/}/index.html" ]; then
       set -- "$1" /index.html "$3"
     fi ;;
esac
printf '%s %s %s\r\n%s\r\n' "$1" "$2" "$3" "$head" | busybox httpd -i -v -h /srv -c /etc/httpd.conf
"#;

/// The serving stage's tail shared by static sites and single-page apps: the server config
/// (and rewriter), the port, and the command.
fn static_serve(port: u16, spa_fallback: bool) -> String {
    let port_s = port.to_string();
    let mut s = format!("COPY {HTTPD_CONF_IN_CONTEXT} /etc/httpd.conf\n");
    let cmd = if spa_fallback {
        s.push_str(&format!(
            "# Paths that are no file get index.html (200), for client-side routes.\n\
             COPY {SPA_SCRIPT_IN_CONTEXT} {SPA_SCRIPT_IN_IMAGE}\n"
        ));
        exec_form(&[
            "busybox",
            "nc",
            "-ll",
            "-p",
            &port_s,
            "-e",
            "busybox",
            "sh",
            SPA_SCRIPT_IN_IMAGE,
        ])
    } else {
        exec_form(&[
            "busybox",
            "httpd",
            "-f",
            "-v",
            "-p",
            &port_s,
            "-h",
            "/srv",
            "-c",
            "/etc/httpd.conf",
        ])
    };
    s.push_str(&format!(
        "ENV PORT={port}\n\
         EXPOSE {port}\n\
         CMD {cmd}\n"
    ));
    s
}

/// A JSON array for an exec-form `CMD`.
fn exec_form(args: &[&str]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn node_image(deps: &NodeDeps, options: &Options) -> String {
    options.image(
        "NODE_IMAGE",
        &format!(
            "node:{}-slim",
            deps.node_major.unwrap_or(DEFAULT_NODE_MAJOR)
        ),
    )
}

fn describe_deps(deps: &NodeDeps) -> String {
    match deps.lockfile {
        Some(lock) => format!("{} ({lock})", deps.manager.name()),
        None => format!("{} (no lockfile)", deps.manager.name()),
    }
}

/// The install stage shared by Node apps and single-page apps: manifests first, so the
/// dependency layer stays cached until they change.
fn node_install(deps: &NodeDeps) -> String {
    let manifests = match deps.lockfile {
        Some(lock) => format!("package.json {lock}"),
        None => "package.json".to_owned(),
    };
    let install = match (deps.manager, deps.lockfile.is_some()) {
        (PackageManager::Npm, true) => "npm ci",
        (PackageManager::Npm, false) => "npm install",
        (PackageManager::Yarn, true) => "yarn install --frozen-lockfile",
        (PackageManager::Yarn, false) => "yarn install",
        (PackageManager::Pnpm, true) => "corepack enable pnpm && pnpm install --frozen-lockfile",
        (PackageManager::Pnpm, false) => "corepack enable pnpm && pnpm install",
    };
    let mut s = format!(
        "FROM ${{NODE_IMAGE}} AS build\n\
         WORKDIR /app\n\
         ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false\n\
         COPY {manifests} ./\n\
         RUN {install}\n\
         COPY . .\n"
    );
    if deps.build_script {
        s.push_str(&format!("RUN {} run build\n", deps.manager.name()));
    }
    s
}

fn node_app(app: &NodeApp, port: u16, options: &Options) -> String {
    let deps = &app.deps;
    let mut s = format!(
        "# Generated by Clank for a Node.js app: {}{}.\n\
         # Base image: override with the NODE_IMAGE build arg.\n\
         ARG NODE_IMAGE={}\n\n",
        describe_deps(deps),
        if deps.build_script {
            ", `build` script"
        } else {
            ""
        },
        node_image(deps, options)
    );
    s.push_str(&node_install(deps));
    let prune = match deps.manager {
        PackageManager::Npm => "npm prune --omit=dev",
        PackageManager::Yarn => "yarn install --production --ignore-scripts --prefer-offline",
        PackageManager::Pnpm => "pnpm prune --prod",
    };
    s.push_str(&format!("RUN {prune}\n\n"));
    let cmd = match &app.start {
        NodeStart::Node(args) => {
            let mut v = vec!["node"];
            v.extend(args.iter().map(String::as_str));
            exec_form(&v)
        }
        NodeStart::Script => exec_form(&[deps.manager.name(), "start"]),
    };
    s.push_str(&format!(
        "FROM ${{NODE_IMAGE}}\n\
         WORKDIR /app\n\
         ENV NODE_ENV=production PORT={port}\n\
         COPY --from=build /app ./\n\
         EXPOSE {port}\n\
         CMD {cmd}\n"
    ));
    s
}

fn spa_app(app: &SpaApp, port: u16, options: &Options) -> String {
    let deps = &app.deps;
    let output_dir = options.publish_dir.as_deref().unwrap_or(&app.output_dir);
    format!(
        "# Generated by Clank for a single-page app: {}, built with `build` into {output_dir}/,\n\
         # served by busybox httpd. Base images: override with the NODE_IMAGE and STATIC_IMAGE build args.\n\
         ARG NODE_IMAGE={}\n\
         ARG STATIC_IMAGE={}\n\n\
         {}\n\
         FROM ${{STATIC_IMAGE}}\n\
         WORKDIR /srv\n\
         COPY --from=build /app/{output_dir}/ /srv/\n\
         {}",
        describe_deps(deps),
        node_image(deps, options),
        options.image("STATIC_IMAGE", DEFAULT_STATIC_IMAGE),
        node_install(deps),
        static_serve(port, options.spa_fallback_for(&App::Spa(app.clone()))),
    )
}

fn python_app(app: &PythonApp, port: u16, options: &Options) -> String {
    let version = app.version.as_deref().unwrap_or(DEFAULT_PYTHON);
    let image = options.image("PYTHON_IMAGE", &format!("python:{version}-slim"));
    let (deps_text, install) = match app.deps {
        PythonDeps::Requirements => (
            "dependencies from requirements.txt",
            "COPY requirements.txt ./\n\
             RUN mkdir -p /deps && python -m pip install --no-cache-dir --disable-pip-version-check --target=/deps -r requirements.txt\n"
                .to_owned(),
        ),
        PythonDeps::Pyproject => (
            "dependencies from pyproject.toml",
            "COPY . .\n\
             RUN mkdir -p /deps && python -m pip install --no-cache-dir --disable-pip-version-check --target=/deps .\n"
                .to_owned(),
        ),
        PythonDeps::Pipfile => (
            "dependencies from Pipfile",
            "COPY Pipfile* ./\n\
             RUN python -m pip install --no-cache-dir --disable-pip-version-check pipenv \\\n \
             && python -m pipenv requirements > requirements.txt \\\n \
             && mkdir -p /deps \\\n \
             && python -m pip install --no-cache-dir --disable-pip-version-check --target=/deps -r requirements.txt\n"
                .to_owned(),
        ),
        PythonDeps::None => ("no dependencies", "RUN mkdir -p /deps\n".to_owned()),
    };
    let port_s = port.to_string();
    let bind = format!("0.0.0.0:{port}");
    let (server_text, cmd) = match &app.server {
        PythonServer::Gunicorn { target } => (
            format!("served by gunicorn ({target})"),
            exec_form(&["python", "-m", "gunicorn", "--bind", &bind, target]),
        ),
        PythonServer::Uvicorn { target } => (
            format!("served by uvicorn ({target})"),
            exec_form(&[
                "python", "-m", "uvicorn", "--host", "0.0.0.0", "--port", &port_s, target,
            ]),
        ),
        PythonServer::Script { file } => (
            format!("started with `python {file}`"),
            exec_form(&["python", file]),
        ),
    };
    format!(
        "# Generated by Clank for a Python app: {deps_text}, {server_text}.\n\
         # Base image: override with the PYTHON_IMAGE build arg.\n\
         ARG PYTHON_IMAGE={image}\n\n\
         FROM ${{PYTHON_IMAGE}} AS deps\n\
         WORKDIR /app\n\
         {install}\n\
         FROM ${{PYTHON_IMAGE}}\n\
         WORKDIR /app\n\
         ENV PYTHONPATH=/deps PYTHONUNBUFFERED=1 PORT={port}\n\
         COPY --from=deps /deps /deps\n\
         COPY . .\n\
         EXPOSE {port}\n\
         CMD {cmd}\n"
    )
}

fn go_app(app: &GoApp, port: u16, options: &Options) -> String {
    let version = app.version.as_deref().unwrap_or(DEFAULT_GO);
    let go_image = options.image("GO_IMAGE", &format!("golang:{version}"));
    let runtime_image = options.image("RUNTIME_IMAGE", DEFAULT_RUNTIME_IMAGE);
    let manifests = if app.has_go_sum {
        "go.mod go.sum"
    } else {
        "go.mod"
    };
    format!(
        "# Generated by Clank for a Go module, built as a static binary.\n\
         # Base images: override with the GO_IMAGE and RUNTIME_IMAGE build args.\n\
         ARG GO_IMAGE={go_image}\n\
         ARG RUNTIME_IMAGE={runtime_image}\n\n\
         FROM ${{GO_IMAGE}} AS build\n\
         WORKDIR /src\n\
         COPY {manifests} ./\n\
         RUN go mod download\n\
         COPY . .\n\
         RUN CGO_ENABLED=0 go build -trimpath -o /out/app .\n\n\
         FROM ${{RUNTIME_IMAGE}}\n\
         COPY --from=build /out/app /app\n\
         ENV PORT={port}\n\
         EXPOSE {port}\n\
         CMD [\"/app\"]\n"
    )
}

fn static_site(port: u16, options: &Options, spa_fallback: bool) -> String {
    let published = match &options.publish_dir {
        Some(dir) => format!("the files of {dir}/"),
        None => "the site's files (no dotfiles, VCS, documentation or build files)".to_owned(),
    };
    format!(
        "# Generated by Clank for a static site (index.html), served by busybox httpd:\n\
         # {published}.\n\
         # Base image: override with the STATIC_IMAGE build arg.\n\
         ARG STATIC_IMAGE={}\n\n\
         FROM ${{STATIC_IMAGE}}\n\
         WORKDIR /srv\n\
         COPY {SITE_IN_CONTEXT}/ /srv/\n\
         {}",
        options.image("STATIC_IMAGE", DEFAULT_STATIC_IMAGE),
        static_serve(port, spa_fallback),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_images_replace_defaults_and_the_prefix_applies_to_docker_hub_names() {
        let options = Options {
            base_images: BTreeMap::from([(
                "PYTHON_IMAGE".to_owned(),
                "registry.local/py:3".to_owned(),
            )]),
            image_prefix: "registry.local:5000/library/".to_owned(),
            ..Options::default()
        };
        assert_eq!(
            options.image("STATIC_IMAGE", DEFAULT_STATIC_IMAGE),
            "registry.local:5000/library/busybox:1.36"
        );
        assert_eq!(
            options.image("PYTHON_IMAGE", "python:3.12-slim"),
            "registry.local/py:3"
        );
        assert_eq!(
            options.image("RUNTIME_IMAGE", DEFAULT_RUNTIME_IMAGE),
            DEFAULT_RUNTIME_IMAGE,
            "an image naming its registry is not prefixed"
        );
        let text = render_with(&App::Static, 8080, &options);
        assert!(
            text.contains("ARG STATIC_IMAGE=registry.local:5000/library/busybox:1.36\n"),
            "{text}"
        );
    }

    #[test]
    fn static_sites_answer_404_html_or_fall_back_to_index_html() {
        let plain = Options::default();
        assert_eq!(support_files(&App::Static, &plain).len(), 1);
        assert!(render_with(&App::Static, 80, &plain).contains("\"httpd\", \"-f\""));
        let spa = Options {
            spa_fallback: Some(true),
            ..Options::default()
        };
        let files = support_files(&App::Static, &spa);
        assert_eq!(files[1].0, SPA_SCRIPT_IN_CONTEXT);
        assert!(render_with(&App::Static, 80, &spa).contains("\"nc\", \"-ll\""));
    }
}
