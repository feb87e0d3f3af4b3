//! HTTP/1.1 spoken by hand over TCP, for what an ordinary client will not do: connect from
//! another loopback address, send headers slowly, or declare a large body and send it only while
//! the server is still reading.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// A response read off a connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A connection: read through a buffer, so that bytes read past one response (two answers in one
/// segment) wait there for the next [`read_response`]; written straight through.
pub type Connection = BufReader<TcpStream>;

/// Connects to `server` from the loopback address `source` (on Linux all of 127.0.0.0/8 is the
/// local host, so 127.0.0.2 is another client address).
pub async fn connect_from(source: IpAddr, server: SocketAddr) -> io::Result<Connection> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    Ok(BufReader::new(socket.connect(server).await?))
}

/// The server's socket address, from its base URL.
pub fn address_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").trim_end_matches('/').parse().expect("an http://ip:port URL")
}

/// A request head: the request line, `Host`, `Content-Length` when given, and `headers`.
pub fn head(method: &str, path: &str, content_length: Option<u64>, headers: &[(&str, &str)]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: cabinet.test\r\n");
    if let Some(length) = content_length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Reads one response: its head, then a `Content-Length` body (or up to the end of the
/// connection without one). Nothing past the response is taken from `reader`.
pub async fn read_response(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<RawResponse> {
    let mut head = Vec::new();
    loop {
        let line_start = head.len();
        if reader.read_until(b'\n', &mut head).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a response",
            ));
        }
        // The empty line ends the head.
        if head[line_start..] == *b"\r\n" {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("not an HTTP response: {head:?}"))
        })?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<u64>().ok());
    let mut body = Vec::new();
    match length {
        // A body cut short by the end of the connection is returned as it came.
        Some(length) => {
            reader.take(length).read_to_end(&mut body).await?;
        }
        // The server may reset a connection whose body it did not read, once it answered.
        None => {
            let _ = reader.read_to_end(&mut body).await;
        }
    }
    Ok(RawResponse { status, headers, body })
}

/// How long [`send_while_unanswered`] waits for an answer to the head alone before it sends the
/// body, as a client that sent `Expect: 100-continue` would.
const PATIENCE: Duration = Duration::from_millis(100);

/// Sends `head`, then (unless the server answered within [`PATIENCE`]) `body` chunk by chunk for
/// as long as the server has not answered; returns the response and how many body bytes the
/// sockets took. A server that answers without reading the body gets at most what the sockets
/// hold; one that reads it gets all of it.
pub async fn send_while_unanswered(
    stream: Connection,
    head: String,
    body: impl Iterator<Item = Bytes> + Send + 'static,
) -> io::Result<(RawResponse, u64)> {
    let (reader, mut writer) = stream.into_inner().into_split();
    let mut reader = BufReader::new(reader);
    let (answered, mut answer) = watch::channel(false);
    let sent = Arc::new(AtomicU64::new(0));
    let sending = tokio::spawn({
        let sent = sent.clone();
        async move {
            writer.write_all(head.as_bytes()).await?;
            if tokio::time::timeout(PATIENCE, answer.wait_for(|answered| *answered)).await.is_ok() {
                return Ok(());
            }
            for chunk in body {
                if *answer.borrow() {
                    break;
                }
                writer.write_all(&chunk).await?;
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            // The connection stays open for writing: the server sees a body that has not ended.
            let _ = answer.wait_for(|answered| *answered).await;
            drop(writer);
            Ok::<_, io::Error>(())
        }
    });
    let response = read_response(&mut reader).await;
    let _ = answered.send(true);
    sending.abort();
    Ok((response?, sent.load(Ordering::Relaxed)))
}

/// `total` bytes of a body, in 64 KiB chunks made as they are sent: `prefix`, then `filler`
/// repeated, then `suffix`.
pub fn body_of(
    prefix: &[u8],
    filler: &[u8],
    suffix: &[u8],
    total: u64,
) -> impl Iterator<Item = Bytes> + Send {
    const CHUNK: usize = 64 * 1024;
    let middle = total.saturating_sub((prefix.len() + suffix.len()) as u64);
    let block = Bytes::from(filler.repeat(CHUNK.div_ceil(filler.len())));
    let (prefix, suffix) = (Bytes::copy_from_slice(prefix), Bytes::copy_from_slice(suffix));
    let mut left = middle;
    let middle_chunks = std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let take = left.min(block.len() as u64) as usize;
        left -= take as u64;
        Some(block.slice(..take))
    });
    std::iter::once(prefix)
        .chain(middle_chunks)
        .chain(std::iter::once(suffix))
        .filter(|chunk| !chunk.is_empty())
}

/// A JSON body of `total` bytes that is costly to parse: an array of zeros under one key.
pub fn json_zeros(total: u64) -> impl Iterator<Item = Bytes> + Send {
    // `{"x":[` + "0," × n + `0]}`: pad with spaces after the `{` so the length comes out exact.
    let fixed = 6 + 3;
    let zeros = (total.saturating_sub(fixed)) / 2;
    let pad = total.saturating_sub(fixed + zeros * 2) as usize;
    let prefix = format!("{{{}\"x\":[", " ".repeat(pad));
    body_of(prefix.as_bytes(), b"0,", b"0]}", total)
}

/// The multipart boundary of [`tags_form`].
pub const BOUNDARY: &str = "cabinet-test-boundary";

/// A multipart body of `total` bytes made of `tags` fields, thousands of them per megabyte.
pub fn tags_form(total: u64) -> impl Iterator<Item = Bytes> + Send {
    let field = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\nt\r\n");
    body_of(b"", field.as_bytes(), format!("--{BOUNDARY}--\r\n").as_bytes(), total)
}
