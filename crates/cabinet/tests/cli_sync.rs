//! `cabinet sync LOCAL REMOTE` and `cabinet sync REMOTE LOCAL`: a one-way mirror by SHA-256 with
//! `--dry-run` and `--delete`, and a summary. The real binary against a real server on loopback.

use crate::cli_user;

use cli_user::{names, path_str, server_and_user, sha256_hex};
use serde_json::{json, Value};

fn sorted(value: &Value) -> Vec<String> {
    let mut items: Vec<String> =
        value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    items.sort();
    items
}

#[test]
fn a_local_folder_mirrors_to_the_workspace_and_back() {
    let (_dir, _server, user) = server_and_user(None);
    user.write("tree/a.txt", b"alpha");
    user.write("tree/sub/b.txt", b"bravo");
    user.write("tree/sub/deep/c.txt", b"charlie");
    let tree = user.home.path().join("files/tree");
    let local = path_str(&tree);

    // --dry-run says what it would do and does nothing.
    let planned = user.json(&["sync", local, "/Mirror", "--dry-run"]);
    assert_eq!(sorted(&planned["copied"]), vec!["a.txt", "sub/b.txt", "sub/deep/c.txt"], "{planned}");
    assert_eq!(planned["dry_run"], true);
    assert_eq!(user.run(&["ls", "/Mirror"]).code, 3, "nothing was created");

    let synced = user.json(&["sync", local, "/Mirror"]);
    assert_eq!(sorted(&synced["copied"]), vec!["a.txt", "sub/b.txt", "sub/deep/c.txt"], "{synced}");
    assert_eq!(names(&user.json(&["ls", "/Mirror/sub/deep"])["files"]), vec!["c.txt"]);
    let again = user.json(&["sync", local, "/Mirror"]);
    assert_eq!((again["copied"].clone(), again["unchanged"].clone()), (json!([]), json!(3)), "{again}");

    // Changes on both sides: a.txt edited, c.txt removed and new.txt added locally; extra.txt and
    // a folder Old only on the server.
    user.write("tree/a.txt", b"alpha, edited");
    std::fs::remove_file(tree.join("sub/deep/c.txt")).unwrap();
    user.write("tree/new.txt", b"new");
    let extra = user.write("extra.txt", b"only on the server");
    user.json(&["upload", path_str(&extra), "--folder", "/Mirror/sub"]);
    user.json(&["mkdir", "-p", "/Mirror/Old/Older"]);

    let synced = user.json(&["sync", local, "/Mirror"]);
    assert_eq!(sorted(&synced["copied"]), vec!["new.txt"], "{synced}");
    assert_eq!(sorted(&synced["updated"]), vec!["a.txt"], "{synced}");
    assert_eq!(synced["deleted"], json!([]), "nothing deleted without --delete");
    let got = user.json(&["get", "/Mirror/a.txt", "-o", path_str(&user.home.path().join("a.out"))]);
    assert_eq!(got["sha256"], sha256_hex(b"alpha, edited").as_str());
    assert_eq!(
        names(&user.json(&["ls", "/Mirror"])["files"]),
        vec!["a.txt", "new.txt"],
        "replaced, not added"
    );

    let planned = user.json(&["sync", local, "/Mirror", "--delete", "--dry-run"]);
    assert_eq!(sorted(&planned["deleted"]), vec!["Old/", "sub/deep/c.txt", "sub/extra.txt"], "{planned}");
    assert_eq!(names(&user.json(&["ls", "/Mirror/sub"])["files"]), vec!["b.txt", "extra.txt"]);
    let human = user.run(&["sync", local, "/Mirror", "--delete"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("copied 0, updated 0, deleted 3, unchanged 3, failed 0"),
        "the summary:\n{}",
        human.stdout
    );
    assert_eq!(names(&user.json(&["ls", "/Mirror/sub"])["files"]), vec!["b.txt"]);
    assert_eq!(names(&user.json(&["ls", "/Mirror"])["folders"]), vec!["sub"]);
    assert!(user.json(&["trash", "ls"])["data"].as_array().unwrap().len() >= 3, "deleted to the trash");

    // And back: the workspace folder to a new local folder.
    let back = user.home.path().join("back");
    let down = user.json(&["sync", "/Mirror", path_str(&back)]);
    assert_eq!(sorted(&down["copied"]), vec!["a.txt", "new.txt", "sub/b.txt"], "{down}");
    assert_eq!(std::fs::read(back.join("a.txt")).unwrap(), b"alpha, edited");
    assert!(back.join("sub/deep").is_dir(), "empty folders come along");
    std::fs::write(back.join("sub/b.txt"), b"changed here").unwrap();
    std::fs::write(back.join("local-only.txt"), b"mine").unwrap();
    let down = user.json(&["sync", "/Mirror", path_str(&back), "--delete"]);
    assert_eq!(sorted(&down["updated"]), vec!["sub/b.txt"], "{down}");
    assert_eq!(sorted(&down["deleted"]), vec!["local-only.txt"], "{down}");
    assert_eq!(std::fs::read(back.join("sub/b.txt")).unwrap(), b"bravo");
    assert!(!back.join("local-only.txt").exists());
    let none: Vec<_> =
        std::fs::read_dir(&back).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert!(
        none.iter().all(|n| !n.to_string_lossy().contains("cabinet-partial")),
        "no partial files left: {none:?}"
    );

    // Two local folders: which one is the workspace's must be said.
    let run = user.run(&["sync", local, path_str(&back)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(":/"), "{}", run.stderr);
}
