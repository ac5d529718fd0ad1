//! The engine's images as archives ([`ImageStore`]): `docker save` streamed out on the
//! control plane, `docker load` streamed in on a remote server, so an image built or loaded
//! on one engine runs on another that has never seen it.

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ImportImageOptions, RemoveImageOptions, TagImageOptions};
use clank_core::image::ImageRef;
use clank_core::runtime::{ImageArchive, ImageStore, LocalImage};
use clank_core::{Error, Result, RuntimeFailure};
use futures_util::StreamExt;

use crate::error::{Subject, engine_error, status_of};

/// Archives stream for as long as their caller allows (it bounds them with its deadline);
/// the client's per-request timeout would cut a large image over a slow link.
const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// One engine's images.
#[derive(Debug, Clone)]
pub struct DockerImages {
    docker: Docker,
}

impl DockerImages {
    pub fn new(docker: Docker) -> Self {
        DockerImages { docker }
    }
}

#[async_trait::async_trait]
impl ImageStore for DockerImages {
    async fn find(&self, image: &ImageRef) -> Result<Option<LocalImage>> {
        let reference = image.to_string();
        match self.docker.inspect_image(&reference).await {
            Ok(found) => Ok(Some(LocalImage {
                id: found.id.unwrap_or_default(),
                size: found.size.map_or(0, |s| u64::try_from(s).unwrap_or(0)),
                repo_digest: found
                    .repo_digests
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|d| d.split_once('@'))
                    .find(|(repo, _)| repo.ends_with(image.repository()))
                    .map(|(_, digest)| digest.to_owned()),
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine_error(e, Subject::Image, &reference)),
        }
    }

    async fn export(&self, image: &ImageRef) -> Result<ImageArchive> {
        let reference = image.to_string();
        let docker = self.docker.clone().with_timeout(ARCHIVE_TIMEOUT);
        let stream = docker.export_image(&reference).map(move |chunk| {
            chunk
                .map(|b| b.to_vec())
                .map_err(|e| engine_error(e, Subject::Image, &reference))
        });
        Ok(Box::pin(stream))
    }

    async fn import(&self, archive: ImageArchive) -> Result<()> {
        let docker = self.docker.clone().with_timeout(ARCHIVE_TIMEOUT);
        // An error of the archive aborts the upload, so the engine reads a truncated archive
        // and loads nothing.
        let body = archive.map(|chunk| chunk.map(bytes::Bytes::from));
        let mut answer = docker.import_image_stream(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            body,
            None,
        );
        while let Some(line) = answer.next().await {
            let line = line.map_err(|e| engine_error(e, Subject::Image, "archive"))?;
            if let Some(err) = line.error_detail.and_then(|d| d.message) {
                return Err(Error::runtime(
                    RuntimeFailure::Other,
                    format!("the engine could not load the image archive: {err}"),
                ));
            }
        }
        Ok(())
    }

    async fn tag(&self, id: &str, image: &ImageRef) -> Result<bool> {
        // A digest reference names its image by content: it cannot be given to another.
        if image.is_pinned() {
            return Ok(false);
        }
        let repo = match image.registry() {
            Some(registry) => format!("{registry}/{}", image.repository()),
            None => image.repository().to_owned(),
        };
        let tag = image.tag().unwrap_or("latest");
        match self
            .docker
            .tag_image(
                id,
                Some(TagImageOptions {
                    repo: Some(repo),
                    tag: Some(tag.to_owned()),
                }),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(engine_error(e, Subject::Image, id)),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        match self
            .docker
            .remove_image(id, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine_error(e, Subject::Image, id)),
        }
    }
}
