//! Image references, parsed by [`ImageRef`], with the caller's field named in errors.

use crate::error::InvalidInput;
use crate::image::ImageRef;

/// Validate and parse a container image reference (`ghcr.io/acme/api:1.2@sha256:…`); see
/// [`ImageRef`] for the grammar and rules. Errors carry `field`.
pub fn validate_image_ref(field: &str, reference: &str) -> Result<ImageRef, InvalidInput> {
    ImageRef::parse(reference).map_err(|mut e| {
        field.clone_into(&mut e.field);
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ref_errors_carry_the_callers_field() {
        let e = validate_image_ref("service.image", "Nginx").unwrap_err();
        assert_eq!(e.field, "service.image");
        assert_eq!(
            validate_image_ref("i", "nginx:1.25").unwrap().tag(),
            Some("1.25")
        );
    }
}
