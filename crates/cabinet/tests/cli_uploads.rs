//! Uploads that are safe to run again: a file whose name and SHA-256 are already in the target
//! folder is skipped and the summary says so; `--on-conflict skip|rename|replace|fail` decides
//! about a different file of the same name. The real binary against a real server on loopback.

mod cli_user;
mod process;

use cli_user::{names, path_str, server_and_user, sha256_hex};

#[test]
fn running_the_same_folder_upload_again_uploads_nothing_twice() {
    let (_dir, _server, user) = server_and_user(None);
    user.write("tree/a.txt", b"alpha");
    user.write("tree/sub/b.txt", b"bravo");
    let tree = user.home.path().join("files/tree");

    let first = user.json(&["upload", path_str(&tree), "--folder", "/X"]);
    assert_eq!(first["uploaded"].as_array().unwrap().len(), 2, "{first}");
    // A new file appears locally, as after an interrupted run that had finished some files.
    user.write("tree/sub/c.txt", b"charlie");
    let again = user.json(&["upload", path_str(&tree), "--folder", "/X"]);
    assert_eq!(again["uploaded"].as_array().unwrap().len(), 1, "only the new file: {again}");
    assert_eq!(again["uploaded"][0]["name"], "c.txt");
    let skipped = again["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{again}");
    assert!(skipped.iter().all(|s| s["identical"] == true && s["reason"] == "already there"), "{again}");
    assert_eq!(names(&user.json(&["ls", "/X/tree"])["files"]), vec!["a.txt"]);
    assert_eq!(names(&user.json(&["ls", "/X/tree/sub"])["files"]), vec!["b.txt", "c.txt"]);

    let human = user.run(&["upload", path_str(&tree), "--folder", "/X"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("uploaded 0, skipped 3 (3 already there), failed 0"),
        "the summary says what was skipped:\n{}",
        human.stdout
    );
}

#[test]
fn a_different_file_of_the_same_name_is_skipped_renamed_replaced_or_refused() {
    let (_dir, _server, user) = server_and_user(None);
    let first = user.write("one/report.txt", b"first version");
    let up = user.json(&["upload", path_str(&first), "--folder", "/Docs"]);
    let old_id = up["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();
    let second = user.write("two/report.txt", b"second version, longer");

    // skip (the default): nothing changes, and it says why.
    let skipped = user.json(&["upload", path_str(&second), "--folder", "/Docs"]);
    assert_eq!(skipped["uploaded"], serde_json::json!([]));
    assert_eq!(skipped["skipped"][0]["identical"], false, "{skipped}");
    assert_eq!(skipped["skipped"][0]["file"]["id"], old_id.as_str());

    // fail: exit 5, nothing uploaded.
    let run = user.run(&["upload", path_str(&second), "--folder", "/Docs", "--on-conflict", "fail"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("/Docs/report.txt already exists"), "{}", run.stderr);

    // rename: a free name beside it.
    let renamed = user.json(&["upload", path_str(&second), "--folder", "/Docs", "--on-conflict", "rename"]);
    assert_eq!(renamed["uploaded"][0]["file"]["name"], "report (1).txt", "{renamed}");
    assert_eq!(names(&user.json(&["ls", "/Docs"])["files"]), vec!["report (1).txt", "report.txt"]);
    // Identity is name and content: other bytes under the same name get the next free name.
    let third = user.write("three/report.txt", b"third");
    let renamed = user.json(&["upload", path_str(&third), "--folder", "/Docs", "--on-conflict", "rename"]);
    assert_eq!(renamed["uploaded"][0]["file"]["name"], "report (2).txt", "{renamed}");

    // replace: the new one takes the name, the old one goes to the trash.
    let replaced = user.json(&["upload", path_str(&second), "--folder", "/Docs", "--on-conflict", "replace"]);
    let new_id = replaced["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();
    assert_eq!(replaced["uploaded"][0]["replaced"], serde_json::json!([old_id]), "{replaced}");
    let got = user.json(&["get", "/Docs/report.txt", "-o", path_str(&user.home.path().join("r.txt"))]);
    assert_eq!(got["id"], new_id.as_str());
    assert_eq!(got["sha256"], sha256_hex(b"second version, longer").as_str());
    let trash = user.json(&["trash", "ls"]);
    assert_eq!(trash["data"][0]["id"], old_id.as_str(), "{trash}");

    // An identical file is skipped whatever the mode.
    for mode in ["rename", "replace", "fail"] {
        let again = user.json(&["upload", path_str(&second), "--folder", "/Docs", "--on-conflict", mode]);
        assert_eq!(again["uploaded"], serde_json::json!([]), "{mode}: {again}");
        assert_eq!(again["skipped"][0]["identical"], true, "{mode}: {again}");
    }
}
