//! Finding an upload id in a URL or key, for the dialects whose clients name an upload by the URL
//! they were given.

use cabinet_core::UploadId;

/// The first upload id (`upl_` and 26 lowercase ULID characters) in a URL or key.
pub fn upload_id_in(text: &str) -> Option<UploadId> {
    let mut rest = text;
    while let Some(at) = rest.find(UploadId::PREFIX) {
        let candidate = &rest[at..];
        let end = (UploadId::PREFIX.len() + 26).min(candidate.len());
        if let Ok(id) = UploadId::parse(&candidate[..end]) {
            return Some(id);
        }
        rest = &candidate[UploadId::PREFIX.len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_id_is_found_in_any_url_that_carries_one() {
        let id = UploadId::generate();
        let url = format!("http://h/storage/v1/uploads/ws_x/{id}?expires=1&sig=upl_zz");
        assert_eq!(upload_id_in(&url), Some(id.clone()));
        assert_eq!(upload_id_in(&format!("incoming/ws_x/{id}")), Some(id));
        assert_eq!(upload_id_in("http://h/nothing/upl_short"), None);
    }
}
