//! Reading S3's ListParts answers: the parts of a multipart upload as S3 holds them.

use cabinet_core::ports::PartInfo;
use cabinet_core::{Error, Result};

/// One page of a ListParts answer.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ListPartsPage {
    pub(super) parts: Vec<PartInfo>,
    pub(super) truncated: bool,
    pub(super) next_marker: Option<String>,
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

impl ListPartsPage {
    /// Reads the fields Cabinet uses from S3's ListPartsResult document.
    pub(super) fn parse(xml: &str) -> Result<Self> {
        let bad = || Error::internal("S3 sent a ListParts answer Cabinet cannot read");
        let mut page = ListPartsPage {
            truncated: xml_text(xml, "IsTruncated") == Some("true"),
            next_marker: xml_text(xml, "NextPartNumberMarker").map(str::to_owned),
            ..Default::default()
        };
        let mut rest = xml;
        while let Some(start) = rest.find("<Part>") {
            let end = rest[start..].find("</Part>").ok_or_else(bad)? + start;
            let part = &rest[start..end];
            let etag =
                xml_text(part, "ETag").unwrap_or_default().replace("&quot;", "\"").replace("&#34;", "\"");
            page.parts.push(PartInfo {
                part_number: xml_text(part, "PartNumber").and_then(|n| n.parse().ok()).ok_or_else(bad)?,
                size: xml_text(part, "Size").and_then(|n| n.parse().ok()).ok_or_else(bad)?,
                etag: etag.trim_matches('"').to_owned(),
            });
            rest = &rest[end..];
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parts_answers_are_read() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key>
<UploadId>u</UploadId><NextPartNumberMarker>2</NextPartNumberMarker><IsTruncated>true</IsTruncated>
<Part><PartNumber>2</PartNumber><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>
<Part><PartNumber>1</PartNumber><Size>5</Size></Part></ListPartsResult>"#;
        let page = ListPartsPage::parse(xml).unwrap();
        assert!(page.truncated);
        assert_eq!(page.next_marker.as_deref(), Some("2"));
        assert_eq!(
            page.parts,
            vec![
                PartInfo { part_number: 2, size: 10485760, etag: "7778aef83f66abc1fa1e8477f296d394".into() },
                PartInfo { part_number: 1, size: 5, etag: String::new() },
            ]
        );
        assert!(ListPartsPage::parse("<Part><PartNumber>x</PartNumber></Part>").is_err());
    }
}
