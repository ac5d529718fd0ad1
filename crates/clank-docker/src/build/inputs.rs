//! Reusing the image of an earlier build whose inputs were identical: a push that changes
//! nothing the image is built from (an empty commit, a README outside the build context, a
//! re-pushed branch) goes live without a build.
//!
//! The inputs are what the engine's build reads: the prepared context (a deterministic tar,
//! the Dockerfile included), the build args, and the id of every base image the Dockerfile
//! starts from as this engine has it now (so a base image imported again under the same tag is
//! a new input). Their SHA-256 is the image's `clank.inputs` label. Only images of the same
//! service (`clank.service`) are ever reused: another service's, or another tenant's, image is
//! never a candidate. A base image the engine does not have (it would be pulled) makes the
//! inputs unknown, and the build runs.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::query_parameters::ListImagesOptions;
use clank_core::Result;
use sha2::{Digest, Sha256};

use crate::error::{Subject, engine_error};

/// The label naming an image's build inputs.
pub(super) const INPUTS_LABEL: &str = "clank.inputs";
/// The label naming the service an image was built for.
pub(super) const SERVICE_LABEL: &str = "clank.service";

/// The base images `dockerfile` starts from, with its build args' `values` substituted:
/// `scratch` and earlier stages (`FROM build`) are not images.
pub(super) fn base_images(dockerfile: &str, values: &BTreeMap<String, String>) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        let Some(rest) = line
            .get(..5)
            .filter(|kw| kw.eq_ignore_ascii_case("FROM "))
            .map(|_| &line[5..])
        else {
            continue;
        };
        let rest = super::substitute_args(rest, values);
        let mut words = rest.split_whitespace().filter(|w| !w.starts_with("--"));
        let Some(image) = words.next() else { continue };
        let lower = image.to_ascii_lowercase();
        if lower != "scratch" && !stages.contains(&lower) {
            images.push(image.to_owned());
        }
        if let (Some(kw), Some(name)) = (words.next(), words.next())
            && kw.eq_ignore_ascii_case("AS")
        {
            stages.push(name.to_ascii_lowercase());
        }
    }
    images
}

/// The SHA-256 of a build's inputs, or `None` when a base image is not on the engine.
pub(super) async fn key(
    docker: &Docker,
    context_tar: &[u8],
    build_args: &HashMap<String, String>,
    base_images: &[String],
) -> Option<String> {
    let mut hash = Sha256::new();
    hash.update(b"clank build inputs v1\0");
    hash.update((context_tar.len() as u64).to_le_bytes());
    hash.update(context_tar);
    let args: BTreeMap<&String, &String> = build_args.iter().collect();
    for (name, value) in args {
        hash.update(format!("arg {name}={value}\0").as_bytes());
    }
    for image in base_images {
        let id = docker.inspect_image(image).await.ok()?.id?;
        hash.update(format!("from {image}={id}\0").as_bytes());
    }
    Some(hex::encode(hash.finalize()))
}

/// The id of an image built earlier for `service` from inputs `key`, if the engine still has
/// one.
pub(super) async fn find(docker: &Docker, service: &str, key: &str) -> Result<Option<String>> {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![
            format!("{SERVICE_LABEL}={service}"),
            format!("{INPUTS_LABEL}={key}"),
        ],
    )]);
    let images = docker
        .list_images(Some(ListImagesOptions {
            filters: Some(filters),
            ..ListImagesOptions::default()
        }))
        .await
        .map_err(|e| engine_error(e, Subject::Image, key))?;
    Ok(images.into_iter().next().map(|image| image.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_images_are_the_from_images_with_args_expanded_skipping_stages_and_scratch() {
        let dockerfile = "ARG NODE_IMAGE=node:22-slim\n\
                          FROM ${NODE_IMAGE} AS build\n\
                          RUN make\n\
                          from --platform=linux/amd64 busybox:1.36 as runtime\n\
                          FROM build\n\
                          FROM scratch\n\
                          COPY --from=build /app /app\n";
        let values = BTreeMap::from([("NODE_IMAGE".to_owned(), "mirror/node:20".to_owned())]);
        assert_eq!(
            base_images(dockerfile, &values),
            ["mirror/node:20", "busybox:1.36"]
        );
    }
}
