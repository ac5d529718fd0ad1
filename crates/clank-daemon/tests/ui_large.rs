//! The dashboard's project page for a large environment against the real daemon in-process:
//! more than 100 services are a table rather than a canvas of cards, 100 rows a page with a link
//! to the next (every service is listed on one page or the other, a bad cursor is refused),
//! and the page is gzipped for a browser that accepts it (and only then).

mod common;

use std::io::Read as _;

use common::browser::Browser;
use common::{Daemon, ENV, WS};
use reqwest::{Method, StatusCode};
use serde_json::json;

const PROJECT: &str = "/ui/workspaces/acme/projects/shop";

async fn create(daemon: &Daemon, owner: &str, i: usize) {
    daemon
        .ok(
            owner,
            Method::POST,
            &format!("{ENV}/services"),
            Some(json!({
                "slug": format!("svc-{i:03}"),
                "source": {"type": "docker_image", "image": "nginx:1.27"},
            })),
        )
        .await;
}

#[tokio::test]
async fn more_than_a_hundred_services_are_a_paged_gzipped_table_and_fewer_a_canvas() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/projects"),
            Some(json!({"name": "Shop"})),
        )
        .await;
    let http = clank_testkit::web::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    let mut signed_in = Browser::new(&daemon);
    assert_eq!(
        signed_in.sign_in(&owner).await.status,
        StatusCode::SEE_OTHER
    );
    let cookie = signed_in.cookie_header();
    let get = |gzip: bool| {
        let mut r = http
            .get(format!("{base}{PROJECT}"))
            .header("cookie", cookie.clone());
        if gzip {
            r = r.header("accept-encoding", "gzip");
        }
        r.send()
    };

    for i in 0..100 {
        create(&daemon, &owner, i).await;
    }
    let page = get(false).await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"class="canvas""#), "100 services: a canvas");
    assert!(!page.contains("<table"), "{page}");

    create(&daemon, &owner, 100).await;
    let plain = get(false).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.text().await.unwrap();
    assert!(
        plain.contains("More than 100 services: listed here"),
        "{plain}"
    );
    assert!(!plain.contains(r#"class="canvas""#));
    let listed = |page: &str, i: usize| {
        page.contains(&format!(
            r#"href="/ui/workspaces/acme/projects/shop/environments/production/services/svc-{i:03}""#
        ))
    };
    assert!((0..100).all(|i| listed(&plain, i)), "the first 100 listed");
    assert!(!listed(&plain, 100), "the 101st is on the next page");
    let next = plain
        .split(r#"rel="next""#)
        .next()
        .and_then(|before| before.rsplit("href=\"").next())
        .and_then(|href| href.split('"').next())
        .expect("a link to the next page")
        .replace("&amp;", "&");
    let second = http
        .get(format!("{base}{next}"))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let second = second.text().await.unwrap();
    assert!(listed(&second, 100) && !listed(&second, 99), "{second}");
    assert!(second.contains("First page") && !second.contains(r#"rel="next""#));
    let forged = http
        .get(format!(
            "{base}{PROJECT}?env=production&after=bm90LWEtY3Vyc29y"
        ))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let zipped = get(true).await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "accept-encoding");
    let bytes = zipped.bytes().await.unwrap();
    assert!(
        bytes.len() * 4 < plain.len(),
        "{} of {}",
        bytes.len(),
        plain.len()
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    // The same page but for its tokens (each render has its own CSRF field values).
    assert_eq!(unzipped.len(), plain.len());
    daemon.stop().await;
}
