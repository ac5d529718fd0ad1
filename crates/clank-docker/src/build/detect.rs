//! Framework detection for repositories without a Dockerfile: what kind of app is in a
//! directory, and what a Dockerfile needs to know to build and run it.
//!
//! Order: Node.js (`package.json`; an app with a `build` script, no way to start it and a
//! front-end toolchain is a single-page app served statically), Python (`requirements.txt`,
//! `pyproject.toml`, `Pipfile`, or a lone `app.py`/`main.py`), Go (`go.mod`), static site
//! (`index.html`). Only file names and small manifest files are read.

use std::path::Path;

/// A detected app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    Node(NodeApp),
    /// A front-end built with Node and served as static files.
    Spa(SpaApp),
    Python(PythonApp),
    Go(GoApp),
    Static,
}

impl App {
    /// The short framework name recorded on the build.
    pub fn framework(&self) -> &'static str {
        match self {
            App::Node(_) => "node",
            App::Spa(_) => "spa",
            App::Python(_) => "python",
            App::Go(_) => "go",
            App::Static => "static",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Npm,
    Yarn,
    Pnpm,
}

impl PackageManager {
    pub fn name(self) -> &'static str {
        match self {
            PackageManager::Npm => "npm",
            PackageManager::Yarn => "yarn",
            PackageManager::Pnpm => "pnpm",
        }
    }
}

/// What `npm install` needs: the package manager and its lockfile, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDeps {
    pub manager: PackageManager,
    pub lockfile: Option<&'static str>,
    /// Major version from `engines.node` (`>=18` → `18`), if given.
    pub node_major: Option<u32>,
    pub build_script: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeApp {
    pub deps: NodeDeps,
    pub start: NodeStart,
}

/// How a Node.js app starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStart {
    /// `scripts.start` is exactly `node <args>`: run node directly (signals reach the app).
    Node(Vec<String>),
    /// Another `scripts.start`: run it through the package manager.
    Script,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaApp {
    pub deps: NodeDeps,
    /// Where `build` writes the site (`dist`, `build`, `out`).
    pub output_dir: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonDeps {
    Requirements,
    Pyproject,
    Pipfile,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonServer {
    /// `gunicorn` in the dependencies: serve `module:app` (WSGI).
    Gunicorn { target: String },
    /// `uvicorn` in the dependencies: serve `module:app` (ASGI).
    Uvicorn { target: String },
    /// No server detected: run the script.
    Script { file: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonApp {
    pub deps: PythonDeps,
    pub server: PythonServer,
    /// `3.12` from `.python-version`, `runtime.txt` or `requires-python`, if given.
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoApp {
    /// `1.22` from the `go` line of go.mod.
    pub version: Option<String>,
    pub has_go_sum: bool,
}

/// Why detection found nothing (or found something it cannot build).
pub fn describe_nothing_found() -> &'static str {
    "no Dockerfile, and no app detected: expected package.json (Node.js), requirements.txt, \
     pyproject.toml, Pipfile or app.py/main.py (Python), go.mod (Go) or index.html (static \
     site) at the root of the build context; add a Dockerfile or set `dockerfile_path`"
}

/// Detect the app in `dir`. `Err` carries a reason a user can act on.
pub fn detect(dir: &Path) -> Result<App, String> {
    let has = |name: &str| dir.join(name).is_file();
    let read = |name: &str| read_small(&dir.join(name));
    if has("package.json") {
        return detect_node(dir, &read("package.json").unwrap_or_default());
    }
    if let Some(app) = detect_python(dir) {
        return Ok(app);
    }
    if has("go.mod") {
        let version = read("go.mod").and_then(|m| {
            m.lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("go "))
                .map(|v| v.trim().split('.').take(2).collect::<Vec<_>>().join("."))
                .filter(|v| is_version(v))
        });
        return Ok(App::Go(GoApp {
            version,
            has_go_sum: has("go.sum"),
        }));
    }
    if has("index.html") {
        return Ok(App::Static);
    }
    Err(describe_nothing_found().to_owned())
}

fn read_small(path: &Path) -> Option<String> {
    // Manifests are small; a huge or linked one is not read.
    super::context::read_repo_file(path, 1 << 20).ok().flatten()
}

fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn detect_node(dir: &Path, manifest: &str) -> Result<App, String> {
    let pkg: serde_json::Value = serde_json::from_str(manifest)
        .map_err(|e| format!("package.json is not valid JSON: {e}"))?;
    let script = |name: &str| pkg["scripts"][name].as_str().map(str::to_owned);
    let (manager, lockfile) = if dir.join("pnpm-lock.yaml").is_file() {
        (PackageManager::Pnpm, Some("pnpm-lock.yaml"))
    } else if dir.join("yarn.lock").is_file() {
        (PackageManager::Yarn, Some("yarn.lock"))
    } else if dir.join("package-lock.json").is_file() {
        (PackageManager::Npm, Some("package-lock.json"))
    } else if dir.join("npm-shrinkwrap.json").is_file() {
        (PackageManager::Npm, Some("npm-shrinkwrap.json"))
    } else {
        (PackageManager::Npm, None)
    };
    let node_major = pkg["engines"]["node"].as_str().and_then(|range| {
        let digits: String = range
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    let deps = NodeDeps {
        manager,
        lockfile,
        node_major,
        build_script: script("build").is_some(),
    };
    let start = match script("start") {
        Some(cmd) => Some(node_start(&cmd)),
        None => {
            let main = pkg["main"].as_str().map(str::to_owned);
            main.filter(|m| dir.join(m).is_file())
                .or_else(|| {
                    ["server.js", "index.js", "app.js", "main.js"]
                        .into_iter()
                        .find(|f| dir.join(f).is_file())
                        .map(str::to_owned)
                })
                .filter(|f| safe_arg(f))
                .map(|f| NodeStart::Node(vec![f]))
        }
    };
    match start {
        Some(start) => Ok(App::Node(NodeApp { deps, start })),
        None if deps.build_script => {
            let has_dep = |name: &str| {
                ["dependencies", "devDependencies"]
                    .iter()
                    .any(|k| pkg[*k].get(name).is_some())
            };
            let output_dir = if has_dep("react-scripts") {
                "build"
            } else if has_dep("next") {
                "out"
            } else {
                "dist"
            };
            Ok(App::Spa(SpaApp {
                deps,
                output_dir: output_dir.to_owned(),
            }))
        }
        None => Err(
            "package.json has no `start` script, no `main` file and no server.js/index.js, and \
             no `build` script for a static site: add a `start` script (e.g. `node server.js`)"
                .to_owned(),
        ),
    }
}

/// `node a.js --flag` → run node directly; anything with shell syntax goes through the
/// package manager, which runs it with a shell as users expect.
fn node_start(cmd: &str) -> NodeStart {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match words.split_first() {
        Some((&"node", rest)) if !rest.is_empty() && rest.iter().all(|w| safe_arg(w)) => {
            NodeStart::Node(rest.iter().map(|w| (*w).to_owned()).collect())
        }
        _ => NodeStart::Script,
    }
}

/// Plain words that need no quoting anywhere (file names, `--flags=value`).
fn safe_arg(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/=:@+,".contains(&b))
}

fn detect_python(dir: &Path) -> Option<App> {
    let has = |name: &str| dir.join(name).is_file();
    let read = |name: &str| read_small(&dir.join(name)).unwrap_or_default();
    let (deps, manifest) = if has("requirements.txt") {
        (PythonDeps::Requirements, read("requirements.txt"))
    } else if has("pyproject.toml") {
        (PythonDeps::Pyproject, read("pyproject.toml"))
    } else if has("Pipfile") {
        (PythonDeps::Pipfile, read("Pipfile"))
    } else if ["app.py", "main.py", "wsgi.py", "manage.py"]
        .iter()
        .any(|f| has(f))
    {
        (PythonDeps::None, String::new())
    } else {
        return None;
    };
    let names = dependency_names(&manifest);
    let module = ["app", "main", "wsgi", "asgi", "server"]
        .into_iter()
        .find(|m| has(&format!("{m}.py")));
    let callable = |m: &str| {
        let src = read(&format!("{m}.py"));
        if src.contains("application =") || src.contains("application=") {
            format!("{m}:application")
        } else {
            format!("{m}:app")
        }
    };
    let server = match module {
        Some(m) if names.iter().any(|n| n == "uvicorn") => PythonServer::Uvicorn {
            target: callable(m),
        },
        Some(m) if names.iter().any(|n| n == "gunicorn") => PythonServer::Gunicorn {
            target: callable(m),
        },
        Some(m) => PythonServer::Script {
            file: format!("{m}.py"),
        },
        None => PythonServer::Script {
            file: "app.py".to_owned(),
        },
    };
    let version = python_version(dir, &manifest);
    Some(App::Python(PythonApp {
        deps,
        server,
        version,
    }))
}

/// Lowercased words of a requirements file, pyproject.toml or Pipfile outside comments
/// (`uvicorn[standard]>=0.30` gives `uvicorn`): enough to see whether gunicorn or uvicorn is a
/// dependency, wherever the manifest lists it.
fn dependency_names(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        })
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase().replace('_', "-"))
        .collect()
}

fn python_version(dir: &Path, manifest: &str) -> Option<String> {
    let major_minor = |s: &str| {
        let v: String = s
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let v = v.split('.').take(2).collect::<Vec<_>>().join(".");
        (is_version(&v) && v.contains('.')).then_some(v)
    };
    if let Some(v) = read_small(&dir.join(".python-version")).and_then(|s| major_minor(&s)) {
        return Some(v);
    }
    if let Some(v) = read_small(&dir.join("runtime.txt")).and_then(|s| major_minor(&s)) {
        return Some(v);
    }
    manifest
        .lines()
        .find(|l| l.trim_start().starts_with("requires-python"))
        .and_then(major_minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        dir
    }

    fn detected(files: &[(&str, &str)]) -> App {
        detect(repo(files).path()).unwrap()
    }

    #[test]
    fn node_lockfile_kind_scripts_and_engines_are_read() {
        let app = detected(&[
            (
                "package.json",
                r#"{"scripts":{"build":"tsc","start":"node dist/server.js --port=$PORT"},"engines":{"node":">=18.2"}}"#,
            ),
            ("yarn.lock", ""),
        ]);
        assert_eq!(
            app,
            App::Node(NodeApp {
                deps: NodeDeps {
                    manager: PackageManager::Yarn,
                    lockfile: Some("yarn.lock"),
                    node_major: Some(18),
                    build_script: true,
                },
                // `$PORT` needs a shell: run through the package manager.
                start: NodeStart::Script,
            })
        );
        let app = detected(&[
            ("package.json", r#"{"scripts":{"start":"node server.js"}}"#),
            ("package-lock.json", "{}"),
            ("pnpm-lock.yaml", ""),
        ]);
        let App::Node(node) = app else { panic!() };
        assert_eq!(
            node.deps.manager,
            PackageManager::Pnpm,
            "pnpm wins over npm"
        );
        assert_eq!(node.start, NodeStart::Node(vec!["server.js".into()]));
    }

    #[test]
    fn node_without_start_script_runs_main_or_a_conventional_file() {
        let App::Node(node) = detected(&[("package.json", "{}"), ("index.js", "")]) else {
            panic!()
        };
        assert_eq!(node.start, NodeStart::Node(vec!["index.js".into()]));
        assert_eq!(node.deps.lockfile, None);
        assert!(detect(repo(&[("package.json", "{}")]).path()).is_err());
        assert!(
            detect(repo(&[("package.json", "{nope")]).path())
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn build_only_front_ends_are_single_page_apps() {
        let app = detected(&[(
            "package.json",
            r#"{"scripts":{"build":"react-scripts build"},"dependencies":{"react-scripts":"5"}}"#,
        )]);
        let App::Spa(spa) = app else { panic!() };
        assert_eq!(spa.output_dir, "build");
        let App::Spa(spa) = detected(&[("package.json", r#"{"scripts":{"build":"vite build"}}"#)])
        else {
            panic!()
        };
        assert_eq!(spa.output_dir, "dist");
    }

    #[test]
    fn python_server_and_entry_point_come_from_dependencies_and_files() {
        let app = detected(&[
            (
                "requirements.txt",
                "Flask==3.0\ngunicorn>=21 # prod server\n",
            ),
            ("app.py", "app = Flask(__name__)\n"),
            (".python-version", "3.11.7\n"),
        ]);
        assert_eq!(
            app,
            App::Python(PythonApp {
                deps: PythonDeps::Requirements,
                server: PythonServer::Gunicorn {
                    target: "app:app".into()
                },
                version: Some("3.11".into()),
            })
        );
        let app = detected(&[
            (
                "pyproject.toml",
                "[project]\nrequires-python = \">=3.12\"\ndependencies = [\n  \"fastapi\",\n  \"uvicorn[standard]\",\n]\n",
            ),
            ("main.py", "app = FastAPI()\n"),
        ]);
        let App::Python(py) = app else { panic!() };
        assert_eq!(py.deps, PythonDeps::Pyproject);
        assert_eq!(
            py.server,
            PythonServer::Uvicorn {
                target: "main:app".into()
            }
        );
        assert_eq!(py.version.as_deref(), Some("3.12"));
        let App::Python(py) = detected(&[
            ("Pipfile", "[packages]\nrequests = \"*\"\n"),
            ("main.py", ""),
        ]) else {
            panic!()
        };
        assert_eq!(py.deps, PythonDeps::Pipfile);
        assert_eq!(
            py.server,
            PythonServer::Script {
                file: "main.py".into()
            }
        );
        let App::Python(py) = detected(&[("app.py", "print(1)")]) else {
            panic!()
        };
        assert_eq!(py.deps, PythonDeps::None);
    }

    #[test]
    fn go_static_and_nothing() {
        assert_eq!(
            detected(&[("go.mod", "module x\n\ngo 1.22.3\n"), ("go.sum", "")]),
            App::Go(GoApp {
                version: Some("1.22".into()),
                has_go_sum: true
            })
        );
        assert_eq!(detected(&[("index.html", "<h1>hi</h1>")]), App::Static);
        let err = detect(repo(&[("README.md", "")]).path()).unwrap_err();
        assert!(err.contains("no app detected"), "{err}");
    }
}
