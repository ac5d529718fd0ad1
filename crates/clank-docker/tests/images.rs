//! `DockerImages` between two real engines: this host's, and a second, private `dockerd`
//! (`clank_testkit::second_engine`) that has never seen the test app. An exported archive
//! streamed whole into the other engine's load gives the same image id there; one cut short
//! (it ends early, or errors) loads nothing at all.
//!
//! Outside CI these tests skip (loudly) when an engine is missing; with `CI` set they fail.

mod common;

use std::sync::Arc;

use clank_core::image::ImageRef;
use clank_core::runtime::{ImageArchive, ImageStore, Runtime};
use clank_core::{Error, RuntimeFailure};
use clank_docker::DockerRuntime;
use clank_testkit::second_engine::SecondEngine;
use futures_util::StreamExt;

/// The archive of the test app's image, whole (in order, as exported).
async fn exported(here: &Arc<dyn ImageStore>, image: &ImageRef) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut archive = here.export(image).await.unwrap();
    while let Some(chunk) = archive.next().await {
        out.push(chunk.unwrap());
    }
    out
}

async fn images_of(docker: &bollard::Docker) -> Vec<String> {
    docker
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

fn stream(chunks: Vec<clank_core::Result<Vec<u8>>>) -> ImageArchive {
    Box::pin(futures_util::stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_loads_whole_with_the_same_id_and_a_cut_one_loads_nothing() {
    let Some(host) = common::docker().await else {
        return;
    };
    let Some(engine) = SecondEngine::start().await else {
        return;
    };
    let there = DockerRuntime::connect_socket(&engine.socket().display().to_string())
        .await
        .unwrap();
    let (here, far) = (host.image_store().unwrap(), there.image_store().unwrap());
    let image: ImageRef = clank_testkit::testapp::IMAGE.parse().unwrap();
    let original = here.find(&image).await.unwrap().expect("the test app here");
    assert!(original.id.starts_with("sha256:"), "{original:?}");
    assert_eq!(far.find(&image).await.unwrap(), None, "a fresh engine");
    let chunks = exported(&here, &image).await;
    let size: usize = chunks.iter().map(Vec::len).sum();
    assert!(size > 0);

    // Cut at half: the stream just ends. Then one that errors half way.
    let bytes: Vec<u8> = chunks.concat();
    let half = bytes[..size / 2].to_vec();
    let ended = far.import(stream(vec![Ok(half.clone())])).await;
    assert!(ended.is_err(), "a truncated archive does not load");
    let failed = far
        .import(stream(vec![
            Ok(half),
            Err(Error::runtime(RuntimeFailure::Timeout, "cut")),
        ]))
        .await;
    assert!(failed.is_err());
    let client = engine.client().await;
    assert_eq!(
        images_of(&client).await,
        Vec::<String>::new(),
        "nothing partial"
    );

    // Whole: the same id on the other engine, under the same name.
    far.import(stream(chunks.into_iter().map(Ok).collect()))
        .await
        .unwrap();
    let loaded = far.find(&image).await.unwrap().expect("loaded");
    assert_eq!(loaded.id, original.id);
    // Named anew by id; a digest reference cannot be a name.
    let other: ImageRef = "clank-test/renamed:v9".parse().unwrap();
    assert!(far.tag(&original.id, &other).await.unwrap());
    assert_eq!(far.find(&other).await.unwrap().unwrap().id, original.id);
    assert!(
        !far.tag(&format!("sha256:{}", "0".repeat(64)), &other)
            .await
            .unwrap(),
        "no such image"
    );
}
