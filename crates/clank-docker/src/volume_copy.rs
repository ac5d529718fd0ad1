//! Copying a named volume's data into a new volume, through the engine alone: two containers
//! are created (never started) from a tiny local image, one mounting the source read-only at
//! `/data`, one mounting the new volume there; the engine's archive API streams `/data` out of
//! the first as a tar and into the second, keeping owners, modes and symlinks. Nothing is
//! pulled and nothing runs, so it works on a host that reaches no registry and needs no shell
//! in any image.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    RemoveContainerOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use clank_core::validate::validate_volume_name;
use clank_core::{Error, Result, RuntimeFailure};
use futures_util::{StreamExt, TryStreamExt};
use tracing::{info, warn};

use crate::error::{Subject, engine_error, status_of};
use crate::runtime::DockerRuntime;

/// The image the copy containers are created from: an imported filesystem holding only an
/// empty `/data`, made on first use. It is never run.
pub(crate) const COPY_IMAGE: &str = "clank-volume-copy:1";

/// Where both containers mount their volume.
const MOUNT: &str = "/data";

pub(crate) async fn copy_volume(
    rt: &DockerRuntime,
    from: &str,
    to: &str,
    labels: &BTreeMap<String, String>,
) -> Result<u64> {
    validate_volume_name("from", from)?;
    validate_volume_name("to", to)?;
    if !crate::resources::volume_belongs(rt, from, labels).await? {
        // Absent and another owner's read the same: never say which.
        return Err(Error::runtime(
            RuntimeFailure::NotFound,
            format!("volume `{from}` does not exist on this Docker Engine (nothing to copy)"),
        ));
    }
    match rt.client().inspect_volume(to).await {
        Ok(_) => {
            return Err(Error::runtime(
                RuntimeFailure::NameConflict,
                format!(
                    "volume `{to}` already exists on this Docker Engine; a copy never writes \
                     into data already there (remove it first, or copy under another name)"
                ),
            ));
        }
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => return Err(engine_error(e, Subject::Volume, to)),
    }
    ensure_copy_image(rt).await?;
    crate::resources::ensure_volume(rt, to, labels).await?;
    info!(from, to, "Copying volume data.");
    let mut containers = Vec::with_capacity(2);
    let copied = stream_between(rt, from, to, &mut containers).await;
    for id in containers {
        let options = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        if let Err(e) = rt.client().remove_container(&id, Some(options)).await
            && status_of(&e) != Some(404)
        {
            warn!(container = %id, error = %e, "Could not remove a volume-copy container.");
        }
    }
    if copied.is_err()
        && let Err(e) = crate::resources::remove_volume(rt, to).await
    {
        warn!(volume = %to, error = %e, "Could not remove the volume of a failed copy.");
    }
    copied
}

/// Create the two containers (their ids pushed to `containers`, for the caller to remove) and
/// pipe the source's archive into the target.
async fn stream_between(
    rt: &DockerRuntime,
    from: &str,
    to: &str,
    containers: &mut Vec<String>,
) -> Result<u64> {
    let source = create_holder(rt, from, true).await?;
    containers.push(source.clone());
    let target = create_holder(rt, to, false).await?;
    containers.push(target.clone());
    let moved = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&moved);
    let archive = rt
        .client()
        .download_from_container(
            &source,
            Some(DownloadFromContainerOptions {
                path: MOUNT.to_owned(),
            }),
        )
        .map_ok(move |chunk: Bytes| {
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            chunk
        })
        .map_err(std::io::Error::other);
    // The archive's entries are `data/…`: unpacked at `/`, they land in the target's mount.
    rt.client()
        .upload_to_container(
            &target,
            Some(UploadToContainerOptions {
                path: "/".to_owned(),
                no_overwrite_dir_non_dir: None,
                copy_uidgid: None,
            }),
            bollard::body_try_stream(archive),
        )
        .await
        .map_err(|e| {
            let mapped = engine_error(e, Subject::Volume, from);
            Error::runtime(
                mapped.runtime_failure().unwrap_or(RuntimeFailure::Other),
                format!("copying volume `{from}` into `{to}` failed: {mapped}"),
            )
        })?;
    Ok(moved.load(Ordering::Relaxed))
}

/// A created, never started container of [`COPY_IMAGE`] holding `volume` at [`MOUNT`], on no
/// network.
async fn create_holder(rt: &DockerRuntime, volume: &str, read_only: bool) -> Result<String> {
    let body = ContainerCreateBody {
        image: Some(COPY_IMAGE.to_owned()),
        // Required by the engine, never run: the image has no programs at all.
        cmd: Some(vec!["/clank-volume-copy".to_owned()]),
        labels: Some(HashMap::from([(
            format!("{}volume-copy", clank_core::runtime::LABEL_PREFIX),
            volume.to_owned(),
        )])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_owned()),
            mounts: Some(vec![Mount {
                typ: Some(MountType::VOLUME),
                source: Some(volume.to_owned()),
                target: Some(MOUNT.to_owned()),
                read_only: Some(read_only),
                ..Mount::default()
            }]),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let created = rt
        .client()
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| engine_error(e, Subject::Container, "volume copy"))?;
    Ok(created.id)
}

/// Import [`COPY_IMAGE`] unless the engine has it.
async fn ensure_copy_image(rt: &DockerRuntime) -> Result<()> {
    match rt.client().inspect_image(COPY_IMAGE).await {
        Ok(_) => return Ok(()),
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => return Err(engine_error(e, Subject::Image, COPY_IMAGE)),
    }
    let (repo, tag) = COPY_IMAGE.split_once(':').unwrap_or((COPY_IMAGE, "latest"));
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
        ..CreateImageOptions::default()
    };
    let mut progress = rt.client().create_image(
        Some(options),
        Some(bollard::body_full(Bytes::from(empty_data_dir()?))),
        None,
    );
    while let Some(step) = progress.next().await {
        step.map_err(|e| engine_error(e, Subject::Image, COPY_IMAGE))?;
    }
    Ok(())
}

/// A tar holding one empty directory, `data/`.
fn empty_data_dir() -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(0);
    tar.append_data(&mut header, "data/", std::io::empty())
        .and_then(|()| tar.into_inner())
        .map_err(|e| Error::Internal(format!("cannot build the volume-copy image: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_image_holds_only_an_empty_data_directory() {
        let bytes = empty_data_dir().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert_eq!(entries, [("data/".to_owned(), tar::EntryType::Directory)]);
    }
}
