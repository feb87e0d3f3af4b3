//! Limits on connections, before any request exists: a client that sends its headers too slowly
//! is cut off after the header-read timeout, and one client address cannot hold more than its
//! share of connections while another address is still served. A burst of connections waits in
//! the listen queue while the server is busy.

use crate::process;
use crate::support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use cabinet::connections::ConnectionLimits;
use support::raw;
use support::{Options, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIRST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const SECOND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn server_with(connections: ConnectionLimits) -> TestServer {
    TestServer::spawn_with(Options { connections: Some(connections), ..Options::default() }).await
}

/// `GET /healthz` on an open connection, keeping it open; the status.
async fn health(stream: &mut raw::Connection) -> std::io::Result<u16> {
    stream.write_all(raw::head("GET", "/healthz", None, &[]).as_bytes()).await?;
    Ok(raw::read_response(stream).await?.status)
}

/// Whether the server has closed `stream`: a read ends (or fails) within `within`.
async fn closed_within(stream: &mut raw::Connection, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[tokio::test]
async fn a_client_sending_its_headers_slowly_is_cut_off_after_the_header_timeout() {
    let timeout = Duration::from_secs(1);
    let server = server_with(ConnectionLimits {
        header_read_timeout: Some(timeout),
        max_per_address: None,
        max_total: None,
        send_timeout: None,
    })
    .await;
    let address = raw::address_of(&server.url);
    let mut stream = raw::connect_from(FIRST, address).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: cabinet.test\r\n").await.unwrap();
    // One header byte every 100 ms, never the end of the headers: a slowloris.
    let (mut reader, mut writer) = stream.into_inner().into_split();
    let dribble = tokio::spawn(async move {
        for byte in b"X-Slow: ".iter().cycle() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut rest)).await;
    let elapsed = started.elapsed();
    dribble.abort();
    assert!(ended.is_ok(), "the connection was still open after 10 s");
    assert!(elapsed >= timeout, "closed after {elapsed:?}, before the timeout");
    assert!(elapsed < timeout * 3, "closed only after {elapsed:?}");
    assert!(rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&rest));

    // A client that sends its request in time is served, and keeps its connection across requests.
    let mut stream = raw::connect_from(FIRST, address).await.unwrap();
    assert_eq!(health(&mut stream).await.unwrap(), 200);
    assert_eq!(health(&mut stream).await.unwrap(), 200);
    // Idle, it is closed after the same timeout.
    assert!(closed_within(&mut stream, timeout * 3).await, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_while_another_address_is_served() {
    let cap = 4;
    let server = server_with(ConnectionLimits {
        header_read_timeout: Some(Duration::from_secs(30)),
        max_per_address: Some(cap),
        max_total: None,
        send_timeout: None,
    })
    .await;
    let address: SocketAddr = raw::address_of(&server.url);
    let mut held = Vec::new();
    for _ in 0..cap {
        let mut stream = raw::connect_from(FIRST, address).await.unwrap();
        assert_eq!(health(&mut stream).await.unwrap(), 200);
        held.push(stream);
    }

    // One more from the same address is closed before it is read.
    let mut over = raw::connect_from(FIRST, address).await.unwrap();
    let refused = health(&mut over).await;
    assert!(refused.is_err(), "a connection over the cap was served: {refused:?}");

    // Another address is served meanwhile, up to its own cap.
    for _ in 0..cap {
        let mut other = raw::connect_from(SECOND, address).await.unwrap();
        assert_eq!(health(&mut other).await.unwrap(), 200);
        held.push(other);
    }

    // Closing one gives its place back.
    drop(held.remove(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = raw::connect_from(FIRST, address).await.unwrap();
        match health(&mut again).await {
            Ok(status) => {
                assert_eq!(status, 200);
                break;
            }
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => panic!("the freed place was not given back: {err}"),
        }
    }
}

#[tokio::test]
async fn the_binary_takes_both_limits_from_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let server = process::ServerProcess::start_with(
        dir.path(),
        &["--header-read-timeout", "1", "--max-connections-per-address", "1"],
    );
    let address = raw::address_of(&server.url);
    let mut first = raw::connect_from(FIRST, address).await.unwrap();
    assert_eq!(health(&mut first).await.unwrap(), 200);
    let mut second = raw::connect_from(FIRST, address).await.unwrap();
    assert!(health(&mut second).await.is_err(), "a second connection was served with a cap of 1");
    let mut other = raw::connect_from(SECOND, address).await.unwrap();
    assert_eq!(health(&mut other).await.unwrap(), 200);
    assert!(
        closed_within(&mut first, Duration::from_secs(3)).await,
        "the idle connection outlived a 1 s timeout"
    );
}

/// A refusal answered before the request's body was read says `Connection: close` (the server
/// will not read the rest of the body, so it cannot keep the connection): a client never sends
/// its next request on a connection about to close. An answer after the whole body was read keeps
/// the connection open.
#[tokio::test]
async fn a_refusal_before_the_body_was_read_says_the_connection_closes() {
    let server = TestServer::spawn().await;
    let address = raw::address_of(&server.url);
    let body = vec![b'x'; 256 * 1024];

    let mut stream = raw::connect_from(FIRST, address).await.unwrap();
    let auth = "Bearer cab_not_a_key";
    let head = raw::head("POST", "/v1/files", Some(body.len() as u64), &[("Authorization", auth)]);
    stream.write_all(head.as_bytes()).await.unwrap();
    // The body is not sent: the refusal comes before any of it is read.
    let refused = raw::read_response(&mut stream).await.unwrap();
    assert!(refused.status >= 400, "{}", refused.status);
    assert_eq!(refused.header("connection"), Some("close"), "{:?}", refused.headers);

    let mut stream = raw::connect_from(FIRST, address).await.unwrap();
    let auth = format!("Bearer {}", server.tenant.key);
    let head = raw::head(
        "POST",
        "/v1/folders",
        Some(2),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{}").await.unwrap();
    let read_whole = raw::read_response(&mut stream).await.unwrap();
    assert!(
        read_whole.status >= 400,
        "an empty folder is refused after its body was read: {}",
        read_whole.status
    );
    assert_eq!(read_whole.header("connection"), None, "{:?}", read_whole.headers);
    assert_eq!(health(&mut stream).await.unwrap(), 200, "the connection is still open");
}

/// A client that sends the whole body before it reads the answer (as simple clients do) gets the
/// refusal of a body the server stopped reading (here, 32 MiB to a URL signed for 1,000 bytes):
/// the server reads and drops the rest before it closes the connection. Closed with those bytes
/// unread, the connection was reset, and the client saw a broken pipe instead of its answer.
#[tokio::test]
async fn a_client_still_sending_a_refused_body_gets_the_refusal_not_a_reset() {
    let server = TestServer::spawn().await;
    let address = raw::address_of(&server.url);
    let body = vec![b'x'; 32 * 1024 * 1024];
    for _ in 0..3 {
        let (status, ticket) =
            server.start_upload(&server.tenant, serde_json::json!({"name": "small.bin", "size": 1000})).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{ticket}");
        let url = ticket["upload_url"].as_str().expect("an upload URL");
        let path = &url[url.find("/storage/").expect("a storage URL")..];
        let mut stream = raw::connect_from(FIRST, address).await.unwrap();
        let head = raw::head("PUT", path, Some(body.len() as u64), &[]);
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.expect("the whole body is taken, not reset");
        let refused = raw::read_response(&mut stream).await.expect("the refusal arrives");
        assert_eq!(refused.status, 413);
        assert_eq!(refused.header("connection"), Some("close"), "{:?}", refused.headers);
        assert_eq!(refused.json()["error"]["code"], "size_exceeded");
    }
}

/// Between requests a keep-alive connection waits with no buffers of its own (it leaves hyper
/// once idle for a moment, shorter than the pauses here), and is served again; nothing still under way is taken for idle: a request head or
/// body that pauses, a download its client is slow to read, requests sent back to back, one of
/// them cut by a pause.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_served_again_and_nothing_under_way_is_taken_for_idle() {
    let pause = Duration::from_millis(500);
    let server = server_with(ConnectionLimits {
        header_read_timeout: Some(Duration::from_secs(60)),
        max_per_address: None,
        max_total: None,
        send_timeout: None,
    })
    .await;
    let address = raw::address_of(&server.url);
    let auth = format!("Bearer {}", server.tenant.key);

    let mut stream = raw::connect_from(FIRST, address).await.unwrap();
    assert_eq!(health(&mut stream).await.unwrap(), 200);
    tokio::time::sleep(pause).await;
    assert_eq!(health(&mut stream).await.unwrap(), 200, "served again after a pause");

    // A head cut in two by a pause, on a connection that has answered before, and on a new one.
    for mut stream in [stream, raw::connect_from(FIRST, address).await.unwrap()] {
        stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(pause).await;
        stream.write_all(b"Host: cabinet.test\r\n\r\n").await.unwrap();
        assert_eq!(raw::read_response(&mut stream).await.unwrap().status, 200, "a head cut by a pause");
    }

    // A body cut in two by a pause.
    let mut stream = raw::connect_from(FIRST, address).await.unwrap();
    let body = br#"{"name": "sent in two parts"}"#;
    let head = raw::head(
        "POST",
        "/v1/folders",
        Some(body.len() as u64),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(pause).await;
    stream.write_all(&body[10..]).await.unwrap();
    let created = raw::read_response(&mut stream).await.unwrap();
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(created.json()["name"], "sent in two parts");

    // A download larger than the sockets' buffers, not read for a while.
    let bytes: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let file = server.upload(&server.tenant, "large.bin", &bytes).await;
    let path = format!("/v1/files/{}/content", file["file"]["id"].as_str().unwrap());
    stream.write_all(raw::head("GET", &path, None, &[("Authorization", &auth)]).as_bytes()).await.unwrap();
    tokio::time::sleep(pause).await;
    let download = raw::read_response(&mut stream).await.unwrap();
    assert_eq!(download.status, 200);
    assert!(download.body == bytes, "the download came back {} bytes, not the file", download.body.len());

    // Two requests in one write are both answered; so are two where the second's head is cut by
    // a pause after the first is answered.
    let health_head = raw::head("GET", "/healthz", None, &[]);
    stream.write_all(health_head.repeat(2).as_bytes()).await.unwrap();
    for _ in 0..2 {
        assert_eq!(raw::read_response(&mut stream).await.unwrap().status, 200, "requests in one write");
    }
    let (first_part, rest) = health_head.split_at(20);
    stream.write_all(format!("{health_head}{first_part}").as_bytes()).await.unwrap();
    assert_eq!(raw::read_response(&mut stream).await.unwrap().status, 200);
    tokio::time::sleep(pause).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    assert_eq!(raw::read_response(&mut stream).await.unwrap().status, 200, "the request cut by a pause");
    tokio::time::sleep(pause).await;
    assert_eq!(health(&mut stream).await.unwrap(), 200);
}

/// A burst of connections that arrives while the server accepts none (busy; here, stopped) waits
/// in the kernel's listen queue, and each is served once the server accepts again. With the 128 a
/// listener gets by default, the kernel dropped every handshake past the queue's end, and under
/// load answered with SYN cookies, whose connections were reset mid-request.
#[tokio::test]
async fn a_burst_of_a_thousand_connections_waits_while_the_server_is_busy_and_each_is_served() {
    use rustix::process::{kill_process, Pid, Signal};
    const BURST: usize = 1000;
    // Each connection is a file here, as in the server.
    allow_open_files(4 * BURST as u64);
    let dir = tempfile::tempdir().unwrap();
    let server = process::ServerProcess::start_with(dir.path(), &["--max-connections-per-address", "0"]);
    let address = raw::address_of(&server.url);
    let pid = Pid::from_raw(server.pid() as i32).unwrap();

    kill_process(pid, Signal::STOP).unwrap();
    let connecting =
        (0..BURST).map(|_| tokio::time::timeout(Duration::from_secs(3), raw::connect_from(FIRST, address)));
    let connected = futures::future::join_all(connecting).await;
    kill_process(pid, Signal::CONT).unwrap();
    let mut streams: Vec<raw::Connection> = connected.into_iter().filter_map(|c| c.ok()?.ok()).collect();
    let queue = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap_or_default();
    assert_eq!(
        streams.len(),
        BURST,
        "only {} of {BURST} connections were taken while the server accepted none (the kernel caps a \
         listen queue at net.core.somaxconn: {})",
        streams.len(),
        queue.trim()
    );
    let answers = futures::future::join_all(
        streams.iter_mut().map(|stream| tokio::time::timeout(Duration::from_secs(20), health(stream))),
    )
    .await;
    let unanswered: Vec<String> = answers
        .iter()
        .filter(|answer| !matches!(answer, Ok(Ok(200))))
        .map(|answer| format!("{answer:?}"))
        .collect();
    assert!(
        unanswered.is_empty(),
        "{} of {BURST} went unanswered; the first: {}",
        unanswered.len(),
        unanswered[0]
    );
}

/// The server raises its open-file limit to its hard limit: started with a soft limit of 256 (as
/// systemd starts a service with 1024), it holds 600 connections at once, each answered.
#[tokio::test]
async fn the_server_raises_its_open_file_limit_and_holds_more_connections_than_it_started_with() {
    const HELD: usize = 600;
    allow_open_files(4 * HELD as u64);
    let hard =
        rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.unwrap_or(u64::MAX).min(4096);
    assert!(hard >= 2 * HELD as u64, "the hard open-file limit here is {hard}; this test needs {}", 2 * HELD);
    let dir = tempfile::tempdir().unwrap();
    let server = process::ServerProcess::start_with_open_files(
        dir.path(),
        &["--max-connections-per-address", "0"],
        256,
        hard,
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files = limits.lines().find(|line| line.starts_with("Max open files")).unwrap();
    let soft_and_hard: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(soft_and_hard, [hard.to_string(), hard.to_string()], "{open_files}");
    assert!(server.logged("raised the open-file limit").await, "{}", server.log_tail());

    let address = raw::address_of(&server.url);
    let mut held = Vec::new();
    for n in 0..HELD {
        let mut stream = raw::connect_from(FIRST, address).await.unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(10), health(&mut stream)).await;
        assert!(matches!(answered, Ok(Ok(200))), "connection {n}: {answered:?}");
        held.push(stream);
    }
    for (n, stream) in held.iter_mut().enumerate() {
        let answered = tokio::time::timeout(Duration::from_secs(10), health(stream)).await;
        assert!(matches!(answered, Ok(Ok(200))), "connection {n}, asked again: {answered:?}");
    }
}

/// Raises this test process's open-file limit to at least `wanted` (within its hard limit).
fn allow_open_files(wanted: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|current| current < wanted) {
        let wanted = limit.maximum.map_or(wanted, |maximum| maximum.min(wanted));
        setrlimit(Resource::Nofile, Rlimit { current: Some(wanted), maximum: limit.maximum }).unwrap();
    }
}

/// `--max-connections` caps a listener's connections whatever their addresses: one over it is
/// closed as soon as it is accepted (and logged), and closing one makes room for another.
#[tokio::test]
async fn connections_over_the_total_cap_are_closed_whatever_their_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = process::ServerProcess::start_with(
        dir.path(),
        &["--max-connections", "3", "--max-connections-per-address", "0"],
    );
    let address = raw::address_of(&server.url);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = raw::connect_from(FIRST, address).await.unwrap();
        assert_eq!(health(&mut stream).await.unwrap(), 200);
        held.push(stream);
    }
    let mut over = raw::connect_from(SECOND, address).await.unwrap();
    assert!(health(&mut over).await.is_err(), "a fourth connection was served with a cap of 3");
    assert!(server.logged("closing new connections").await, "{}", server.log_tail());
    drop(held.pop());
    // The server sees the close once it reads it.
    let mut served = false;
    for _ in 0..50 {
        let mut stream = raw::connect_from(SECOND, address).await.unwrap();
        if health(&mut stream).await.ok() == Some(200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "no room was made by closing a connection");
    for stream in &mut held {
        assert_eq!(health(stream).await.unwrap(), 200, "a held connection, asked again");
    }
}

/// The cap is lowered to three quarters of the open files the server may have, so connections
/// cannot take the files its requests open: with 256, it holds 192 connections, and an upload goes
/// through.
#[tokio::test]
async fn the_cap_on_connections_leaves_a_quarter_of_the_open_files_to_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = process::ServerProcess::start_with_open_files(
        dir.path(),
        &["--max-connections-per-address", "0"],
        256,
        256,
    );
    assert!(server.logged("lowered the cap on connections").await, "{}", server.log_tail());
    let key = server.bootstrap_key.clone().unwrap();
    let address = raw::address_of(&server.url);
    let mut held = Vec::new();
    for n in 0..191 {
        let mut stream = raw::connect_from(FIRST, address).await.unwrap();
        assert_eq!(health(&mut stream).await.ok(), Some(200), "connection {n}");
        held.push(stream);
    }
    // The 192nd: the upload's own, kept open by the client.
    let client = process::http_client();
    let part = reqwest::multipart::Part::bytes(vec![7u8; 100_000]).file_name("while-held.bin");
    let uploaded = client
        .post(server.at("/v1/files"))
        .bearer_auth(&key)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201, "{}", uploaded.text().await.unwrap());
    let mut over = raw::connect_from(FIRST, address).await.unwrap();
    assert!(health(&mut over).await.is_err(), "a 193rd connection was served with 256 open files");
    drop(client);
}

/// A client that asks for a download and then takes none of it is cut off once the server's
/// writes have found its socket full for the send timeout (`--body-idle-timeout`, 1 s here), so it
/// cannot hold the connection, and what could not be sent, for as long as it likes. It gets what
/// the sockets' buffers held, then the end of the connection, not the file.
#[tokio::test]
async fn a_client_that_takes_none_of_an_answer_is_cut_off_after_the_send_timeout() {
    const SIZE: usize = 32 << 20;
    let dir = tempfile::tempdir().unwrap();
    let server = process::ServerProcess::start_with(dir.path(), &["--body-idle-timeout", "1"]);
    let key = server.bootstrap_key.clone().unwrap();
    let id = server.upload_file(&key, "never-read.bin", vec![42u8; SIZE]).await;
    let path = format!("/v1/files/{id}/content");

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(raw::address_of(&server.url)).await.unwrap();
    let auth = format!("Bearer {key}");
    stream.write_all(raw::head("GET", &path, None, &[("Authorization", &auth)]).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut received)).await;
    assert!(ended.is_ok(), "the connection was still open 20 s after the client began to read");
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&received[..64.min(received.len())])
    );
    assert!(received.len() < SIZE, "the client got all {} bytes after taking none for 4 s", received.len());
}
