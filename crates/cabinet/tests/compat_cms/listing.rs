//! The list's seed rows beyond the basics: the date-range filter, tags that keep their case
//! while matching any case (in `available_tags` too), `page=last`, and an `ordering` list.

use cabinet_core::Clock;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{assert_field_error, cms, upload, FILES};
use crate::support::TestServer;

fn names(page: &Value) -> Vec<String> {
    page["results"].as_array().unwrap().iter().map(|f| f["file_name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_list_filters_by_a_created_at_range_of_dates_or_date_times() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    // One file a day, at noon.
    let now = server.clock.now();
    let start = now.date_naive().and_hms_opt(12, 0, 0).unwrap().and_utc() + Duration::days(1);
    server.clock.advance(start - now);
    let mut created = Vec::new();
    for name in ["day1.txt", "day2.txt", "day3.txt"] {
        created.push(
            upload(&server, t, name, name.as_bytes(), json!([])).await["created_at"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        server.clock.advance(Duration::days(1));
    }
    let day2 = (start + Duration::days(1)).date_naive().to_string();
    let list = |query: Vec<(&'static str, String)>| {
        let request = cms(&server, Method::GET, FILES, t).query(&query).query(&[("ordering", "created_at")]);
        server.send(request)
    };
    let (status, page) = list(vec![("created_at_after", day2.clone())]).await;
    assert_eq!((status, names(&page)), (StatusCode::OK, vec!["day2.txt".to_owned(), "day3.txt".to_owned()]));
    assert_eq!(page["count"], 2);
    // A date as the upper end runs to the end of that day.
    let (_, page) = list(vec![("created_at_before", day2.clone())]).await;
    assert_eq!(names(&page), ["day1.txt", "day2.txt"]);
    let (_, page) = list(vec![("created_at_after", day2.clone()), ("created_at_before", day2.clone())]).await;
    assert_eq!(names(&page), ["day2.txt"]);
    // Date-times are inclusive at both ends, in the lookup spelling too.
    let (_, page) = list(vec![("created_at__gte", created[1].clone())]).await;
    assert_eq!(names(&page), ["day2.txt", "day3.txt"]);
    let (_, page) = list(vec![("created_at__lte", created[1].clone())]).await;
    assert_eq!(names(&page), ["day1.txt", "day2.txt"]);
    let naive = (start + Duration::hours(1)).naive_utc().format("%Y-%m-%d %H:%M").to_string();
    let (_, page) = list(vec![("created_at_before", naive)]).await;
    assert_eq!(names(&page), ["day1.txt"]);

    for (param, bad) in [("created_at_after", "yesterday"), ("created_at__lte", "2025-13-01")] {
        let (status, body) = list(vec![(param, bad.to_owned())]).await;
        assert_field_error(status, &body, param);
    }
}

#[tokio::test]
async fn tags_keep_their_case_and_match_whatever_case_is_asked() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let first = upload(&server, t, "a.png", b"a", json!(["Product", "EVENT"])).await;
    assert_eq!(first["tags"], json!(["EVENT", "Product"]));
    let second = upload(&server, t, "b.png", b"b", json!("product")).await;
    assert_eq!(second["tags"], json!(["product"]));
    let list = |query: &str| server.send(cms(&server, Method::GET, &format!("{FILES}?{query}"), t));
    let (_, page) = list("tags=PRODUCT").await;
    assert_eq!(page["count"], 2);
    let (_, page) = list("tags=event,product").await;
    assert_eq!(names(&page), ["a.png"]);
    // One entry per tag, whatever its spellings.
    assert_eq!(page["available_tags"], json!(["EVENT", "Product"]));
    // PATCH keeps the case it is given, and one spelling per tag.
    let path = format!("{FILES}{}/", second["api_id"].as_str().unwrap());
    let (_, patched) = server
        .send(cms(&server, Method::PATCH, &path, t).json(&json!({"tags": ["Sale", "SALE", "sale"]})))
        .await;
    assert_eq!(patched["tags"], json!(["Sale"]));
}

#[tokio::test]
async fn page_last_page_size_and_an_ordering_list_follow_drf() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    for name in ["c.txt", "a.txt", "e.txt", "b.txt", "d.txt"] {
        server.clock.advance(Duration::seconds(1));
        upload(&server, t, name, name.as_bytes(), json!([])).await;
    }
    let list = |query: &str| server.send(cms(&server, Method::GET, &format!("{FILES}?{query}"), t));
    let (status, last) = list("page=last&page_size=2&ordering=file_name").await;
    assert_eq!((status, names(&last)), (StatusCode::OK, vec!["e.txt".to_owned()]));
    assert_eq!(last["next"], Value::Null);
    assert!(last["previous"].as_str().is_some_and(|p| p.contains("page=2")), "{last}");
    // A page size that is not a positive number is the default (50).
    let (_, all) = list("page_size=none").await;
    assert_eq!(all["results"].as_array().unwrap().len(), 5);
    // The first field DRF knows orders the list; unknown ones are dropped.
    let (_, page) = list("ordering=-file_name,created_at").await;
    assert_eq!(names(&page), ["e.txt", "d.txt", "c.txt", "b.txt", "a.txt"]);
    let (_, page) = list("ordering=colour,file_name").await;
    assert_eq!(names(&page), ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]);
}

#[tokio::test]
async fn the_list_orders_by_updated_at_either_way() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let mut ids = Vec::new();
    for name in ["first.txt", "second.txt", "third.txt"] {
        server.clock.advance(Duration::seconds(1));
        ids.push(
            upload(&server, t, name, name.as_bytes(), json!([])).await["api_id"].as_str().unwrap().to_owned(),
        );
    }
    // The oldest upload is the latest change.
    server.clock.advance(Duration::seconds(1));
    let path = format!("{FILES}{}/", ids[0]);
    let (status, _) =
        server.send(cms(&server, Method::PATCH, &path, t).json(&json!({"caption": "new"}))).await;
    assert_eq!(status, StatusCode::OK);
    let list = |query: &str| server.send(cms(&server, Method::GET, &format!("{FILES}?{query}"), t));
    let (_, page) = list("ordering=updated_at").await;
    assert_eq!(names(&page), ["second.txt", "third.txt", "first.txt"]);
    let (_, page) = list("ordering=-updated_at").await;
    assert_eq!(names(&page), ["first.txt", "third.txt", "second.txt"]);
    let (_, page) = list("ordering=-created_at").await;
    assert_eq!(names(&page), ["third.txt", "second.txt", "first.txt"]);
}
