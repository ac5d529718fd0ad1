//! The dashboard's two files, compiled into the binary: served under a name carrying a hash
//! of their content, so they can be cached for a year and a new build is fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
struct Asset {
    /// `dashboard-<hash>.css`: what its URL ends with.
    file: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Self {
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        Asset {
            file: format!("{stem}-{}.{extension}", &hash[..16]),
            content_type,
            body,
        }
    }

    fn url(&self) -> String {
        format!("/ui/assets/{}", self.file)
    }
}

static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "dashboard",
        "css",
        "text/css; charset=utf-8",
        include_str!("assets/dashboard.css"),
    )
});

static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "dashboard",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboard.js"),
    )
});

/// The stylesheet's URL (changes with its content).
pub(crate) fn style_url() -> String {
    STYLE.url()
}

/// The script's URL (changes with its content).
pub(crate) fn script_url() -> String {
    SCRIPT.url()
}

/// `GET /ui/assets/{file}`: an embedded file under its current name, cached for a year; any
/// other name (an older build's) is 404.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = [&*STYLE, &*SCRIPT].into_iter().find(|a| a.file == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_url_carries_a_hash_of_its_content() {
        let a = Asset::new("x", "css", "text/css", "body { color: red }");
        let b = Asset::new("x", "css", "text/css", "body { color: blue }");
        assert!(a.url().starts_with("/ui/assets/x-") && a.url().ends_with(".css"));
        assert_ne!(a.url(), b.url());
        assert_eq!(
            a.url(),
            Asset::new("x", "css", "text/css", "body { color: red }").url()
        );
    }

    #[tokio::test]
    async fn an_asset_is_cached_for_a_year_and_an_unknown_name_is_404() {
        let file = style_url().trim_start_matches("/ui/assets/").to_owned();
        let r = serve(Path(file)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        let r = serve(Path("dashboard-0000000000000000.css".into())).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_script_sets_text_only_never_html() {
        // Event data is attacker-influenced (reasons, log lines): the script writes text.
        assert!(!SCRIPT.body.contains("innerHTML"));
        assert!(!SCRIPT.body.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.body.contains("eval("));
    }
}
