//! Snapshot tests of the Dockerfiles generated for each detected framework: a repository
//! layout is detected, rendered for port 8080 and compared with `tests/snapshots/<name>`.
//!
//! To accept a deliberate change, run with `UPDATE_SNAPSHOTS=1` and review the diff.

use std::path::Path;

use clank_docker::build::{detect, dockerfile};

fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).unwrap();
    }
    dir
}

fn check(name: &str, files: &[(&str, &str)], framework: &str) {
    let dir = repo(files);
    let app = detect::detect(dir.path()).unwrap();
    assert_eq!(app.framework(), framework);
    let got = dockerfile::render(&app, 8080);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert_eq!(got, want, "{name} changed; got:\n{got}");
}

#[test]
fn node_npm_with_build_and_start_scripts() {
    check(
        "node-npm.Dockerfile",
        &[
            (
                "package.json",
                r#"{"scripts":{"build":"tsc","start":"node dist/server.js"},"engines":{"node":"20.x"}}"#,
            ),
            ("package-lock.json", "{}"),
        ],
        "node",
    );
}

#[test]
fn node_yarn_with_a_shell_start_script() {
    check(
        "node-yarn.Dockerfile",
        &[
            (
                "package.json",
                r#"{"scripts":{"start":"NODE_OPTIONS=--enable-source-maps node server.js"}}"#,
            ),
            ("yarn.lock", ""),
        ],
        "node",
    );
}

#[test]
fn node_pnpm_without_scripts_runs_index_js() {
    check(
        "node-pnpm.Dockerfile",
        &[
            ("package.json", "{}"),
            ("pnpm-lock.yaml", ""),
            ("index.js", ""),
        ],
        "node",
    );
}

#[test]
fn single_page_app_built_with_vite() {
    check(
        "spa-vite.Dockerfile",
        &[
            (
                "package.json",
                r#"{"scripts":{"build":"vite build"},"devDependencies":{"vite":"5"}}"#,
            ),
            ("package-lock.json", "{}"),
        ],
        "spa",
    );
}

#[test]
fn python_requirements_with_gunicorn() {
    check(
        "python-gunicorn.Dockerfile",
        &[
            ("requirements.txt", "flask==3.0\ngunicorn==22.0\n"),
            ("app.py", "app = Flask(__name__)\n"),
            ("runtime.txt", "python-3.11.9\n"),
        ],
        "python",
    );
}

#[test]
fn python_pyproject_with_uvicorn() {
    check(
        "python-uvicorn.Dockerfile",
        &[
            (
                "pyproject.toml",
                "[project]\nname = \"api\"\ndependencies = [\"fastapi\", \"uvicorn\"]\n",
            ),
            ("main.py", "app = FastAPI()\n"),
        ],
        "python",
    );
}

#[test]
fn python_pipfile_script() {
    check(
        "python-pipfile.Dockerfile",
        &[
            ("Pipfile", "[packages]\nrequests = \"*\"\n"),
            ("app.py", "print('hi')\n"),
        ],
        "python",
    );
}

#[test]
fn go_module() {
    check(
        "go.Dockerfile",
        &[
            ("go.mod", "module example.com/api\n\ngo 1.23\n"),
            ("go.sum", ""),
            ("main.go", ""),
        ],
        "go",
    );
}

#[test]
fn static_site() {
    check(
        "static.Dockerfile",
        &[("index.html", "<h1>hello</h1>"), ("style.css", "")],
        "static",
    );
}
