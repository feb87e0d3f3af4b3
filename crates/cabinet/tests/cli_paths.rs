//! Files and folders named by path in every client command (`get`, `rm`, `mv`, `url`, `tag`,
//! `fav`, `restore`, `ls`), ids still accepted; `mkdir [-p]`; `trash ls|restore|empty`; `find`
//! saying where each hit lives. The real binary against a real server on loopback.

use crate::cli_user;

use cli_user::{names, path_str, server_and_user, sha256_hex};
use serde_json::Value;

#[test]
fn every_command_takes_a_path_where_it_took_an_id() {
    let (_dir, _server, user) = server_and_user(None);
    let hello = user.write("hello.txt", b"hello, paths");
    let up = user.json(&["upload", path_str(&hello), "--folder", "/Photos/2024"]);
    let id = up["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();

    // get by path, and to stdout.
    let out = user.home.path().join("got.txt");
    let got = user.json(&["get", "/Photos/2024/hello.txt", "-o", path_str(&out)]);
    assert_eq!(got["id"], id.as_str());
    assert_eq!(std::fs::read(&out).unwrap(), b"hello, paths");
    let got = user.json(&["get", "/photos/2024/HELLO.TXT", "-o", path_str(&user.home.path().join("x"))]);
    assert_eq!(got["id"], id.as_str(), "paths compare case-insensitively");

    // url, tag, fav by path.
    let signed = user.json(&["url", "/Photos/2024/hello.txt", "--expires", "10m"]);
    assert!(signed["url"].as_str().unwrap().starts_with("http"), "{signed}");
    let tagged = user.json(&["tag", "/Photos/2024/hello.txt", "+greeting"]);
    assert_eq!(tagged["tags"], serde_json::json!(["greeting"]));
    let fav = user.json(&["fav", "/Photos/2024/hello.txt", "--on"]);
    assert_eq!(fav["is_favorite"], true);
    let fav = user.json(&["fav", "/Photos/2024/", "--on"]);
    assert_eq!(fav["is_favorite"], true, "a trailing / names the folder");

    // ls of a file's path shows that file, with its path.
    let one = user.json(&["ls", "/Photos/2024/hello.txt"]);
    assert_eq!(one["files"][0]["id"], id.as_str(), "{one}");
    assert_eq!(one["files"][0]["path"], "/Photos/2024/hello.txt");

    // mkdir, then the README's own `mv file_… /Archive` on a fresh tree.
    let run = user.run(&["mv", &id, "/Archive"]);
    assert_eq!(run.code, 3, "no /Archive yet: {}", run.stderr);
    assert!(run.stderr.contains("cabinet mkdir -p /Archive"), "the error says how: {}", run.stderr);
    let made = user.json(&["mkdir", "/Archive"]);
    assert_eq!(made[0]["path"], "/Archive");
    let moved = user.json(&["mv", "/Photos/2024/hello.txt", "/Archive", "--name", "old.txt"]);
    assert_eq!(moved["id"], id.as_str());
    let human = user.run(&["mv", "/Archive/old.txt", "/Archive"]);
    assert!(human.stdout.contains("/Archive/old.txt"), "mv says where it is now: {}", human.stdout);
    assert_eq!(names(&user.json(&["ls", "/Archive"])["files"]), vec!["old.txt"]);

    // rm by path, restore by the path it had.
    let removed = user.json(&["rm", "/Archive/old.txt"]);
    assert_eq!(removed[0]["id"], id.as_str());
    assert_eq!(user.run(&["get", "/Archive/old.txt"]).code, 3, "gone from its path");
    let restored = user.json(&["restore", "/Archive/old.txt"]);
    assert_eq!(restored[0]["file"]["id"], id.as_str(), "{restored}");
    assert_eq!(user.json(&["ls", "/Archive/old.txt"])["files"][0]["id"], id.as_str());

    // Two files of one name: a path naming both is refused with their ids.
    let again = user.write("again/old.txt", b"another");
    user.json(&["upload", path_str(&again), "--folder", "/Archive", "--on-conflict", "rename"]);
    let dup = user.write("dup/old.txt", b"yet another");
    let second = user.json(&["upload", path_str(&dup), "--folder", "/Archive/Sub"]);
    let second_id = second["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();
    user.json(&["mv", &second_id, "/Archive"]);
    let run = user.run(&["get", "/Archive/old.txt"]);
    assert_eq!(run.code, 5, "ambiguous: {}", run.stderr);
    assert!(run.stderr.contains(&id) && run.stderr.contains(&second_id), "{}", run.stderr);

    // Not a path, not an id: a usage error.
    assert_eq!(user.run(&["get", "hello.txt"]).code, 2);
}

#[test]
fn mkdir_needs_its_parent_unless_told_to_make_it() {
    let (_dir, _server, user) = server_and_user(None);
    let run = user.run(&["mkdir", "/A/B"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("mkdir -p"), "the error names the flag: {}", run.stderr);
    let made = user.json(&["mkdir", "-p", "/A/B/C"]);
    assert_eq!(made[0]["path"], "/A/B/C");
    let again = user.json(&["mkdir", "-p", "/a/b/c"]);
    assert_eq!(again[0]["id"], made[0]["id"], "-p reuses what is there");
    let run = user.run(&["mkdir", "/A/B"]);
    assert_eq!(run.code, 5, "already there: {}", run.stderr);
    assert_eq!(names(&user.json(&["ls", "/A"])["folders"]), vec!["B"]);
}

#[test]
fn the_trash_lists_where_things_were_restores_by_path_and_empties() {
    let (_dir, _server, user) = server_and_user(None);
    let a = user.write("a.txt", b"aaa");
    let b = user.write("b.txt", b"bbbb");
    user.json(&["upload", path_str(&a), path_str(&b), "--folder", "/Docs"]);
    user.json(&["mkdir", "-p", "/Docs/Old/Deep"]);

    let run = user.run(&["rm", "/Docs/Old"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("rm -r") && !run.stderr.contains("recursive=true"), "{}", run.stderr);
    user.json(&["rm", "-r", "/Docs/Old"]);
    user.json(&["rm", "/Docs/a.txt", "/Docs/b.txt"]);

    let trash = user.json(&["trash", "ls"]);
    let mut paths: Vec<&str> =
        trash["data"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, vec!["/Docs/Old/", "/Docs/a.txt", "/Docs/b.txt"], "{trash}");
    let human = user.run(&["trash", "ls"]);
    assert!(human.stdout.contains("/Docs/a.txt") && human.stdout.contains("WAS AT"), "{}", human.stdout);

    let restored = user.json(&["trash", "restore", "/Docs/Old"]);
    assert_eq!(restored[0]["folder"]["name"], "Old", "{restored}");
    assert_eq!(names(&user.json(&["ls", "/Docs/Old"])["folders"]), vec!["Deep"]);

    let run = user.run(&["trash", "empty"]);
    assert_eq!(run.code, 2, "emptying asks for --yes: {}", run.stderr);
    let purged = user.json(&["trash", "empty", "--yes"]);
    assert_eq!(purged["purged"], 2, "{purged}");
    assert_eq!(user.json(&["trash", "ls"])["data"], serde_json::json!([]));
    assert_eq!(user.run(&["restore", "/Docs/a.txt"]).code, 3, "purged for good");
}

#[test]
fn find_says_where_each_hit_lives() {
    let (_dir, _server, user) = server_and_user(None);
    let report = user.write("report.pdf", b"%PDF-1.4 not really");
    user.json(&["upload", path_str(&report), "--folder", "/Work/2026"]);
    user.json(&["mkdir", "-p", "/Reports"]);
    let found = user.json(&["find", "report"]);
    let mut paths: Vec<&str> =
        found["data"].as_array().unwrap().iter().map(|h| h["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, vec!["/Reports/", "/Work/2026/report.pdf"], "{found}");
    let human = user.run(&["find", "report"]);
    assert!(
        human.stdout.contains("PATH") && human.stdout.contains("/Work/2026/report.pdf"),
        "{}",
        human.stdout
    );
    let hit: &Value =
        &found["data"].as_array().unwrap().iter().find(|h| h["type"] == "file").unwrap().clone();
    assert_eq!(hit["sha256"], sha256_hex(b"%PDF-1.4 not really").as_str());
}
