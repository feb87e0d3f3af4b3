//! Many idle keep-alive connections, and many concurrent uploads while they are held: the server's
//! peak memory, and the uploads' aggregate throughput against nginx's dav module under the same
//! load. Each idle connection makes one request (`GET /healthz`), then sits idle until the end,
//! when it must answer another. The idle connections come from `127.0.10.x`, 100 per address, and
//! the uploads from eight more (`127.0.9.1`–`8`), so no address holds more than Cabinet's default
//! cap of 256 connections, which stays on. Both servers are told to keep an idle connection for
//! longer than the figure runs (Cabinet closes one after `--header-read-timeout`, 10 s by
//! default; nginx after `keepalive_timeout`, 75 s by default). Each round starts both servers
//! fresh, so each peak (`VmHWM`) is that round's.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::{future, stream, StreamExt, TryStreamExt};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::client;
use crate::processes::{raise_open_files, Cabinet, Nginx};
use crate::stats::{Row, Samples, Target};
use crate::Bench;

const MIB: u64 = 1 << 20;
/// How long both servers keep an idle keep-alive connection here: longer than a round takes.
const KEEPALIVE_SECS: u64 = 120;
/// Idle connections per client address.
const IDLE_PER_ADDRESS: usize = 100;
/// Client addresses the uploads come from (1,000 uploads: 125 connections each).
const UPLOAD_ADDRESSES: u8 = 8;
/// Idle connections opened, or asked, at once.
const AT_ONCE: usize = 128;
/// What an idle connection asks: the same cheap path on both servers.
const PROBE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n";

/// What one server did under the load.
struct Outcome {
    mib_per_second: f64,
    /// Peak RSS once the idle connections were open.
    rss_idle: u64,
    /// Peak RSS at the end.
    rss_peak: u64,
    /// Idle connections that still answered at the end.
    still_open: usize,
}

pub async fn run(bench: &mut Bench) -> Result<()> {
    let (idle, uploads) = if bench.quick { (500, 50) } else { (10_000, 1_000) };
    // The harness holds every connection; each server its side of them and the uploads' files.
    // Cabinet holds at most three quarters of its open files in connections (`--max-connections`).
    let open_files = raise_open_files((idle + uploads) as u64 * 4 / 3 + 2048)?;
    eprintln!("connections: open-file limit {open_files} (the servers inherit it)");
    let bodies = Bodies::new();
    let senders = (1..=UPLOAD_ADDRESSES)
        .map(|n| client::http_from(Ipv4Addr::new(127, 0, 9, n)))
        .collect::<Result<Vec<_>>>()?;
    let load = Load { idle, uploads, bodies: &bodies, senders: &senders };
    let (mut ours, mut theirs, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
    let (mut rss, mut rss_idle, mut nginx_rss) = (Samples::default(), Samples::default(), Samples::default());
    let (mut ours_open, mut theirs_open) = (idle, idle);
    for round in 0..bench.rounds {
        let (a, b) = in_turns!(round, load.cabinet(bench, round).await?, load.nginx(bench, round).await?);
        eprintln!(
            "connections round {round}: Cabinet {:.0} MiB/s, peak RSS {:.1} MiB ({:.1} MiB with only the idle \
             connections), {} of {idle} idle connections answered at the end; nginx {:.0} MiB/s, RSS {:.1} MiB, \
             {} of {idle}; ratio {:.2}",
            a.mib_per_second,
            mib(a.rss_peak),
            mib(a.rss_idle),
            a.still_open,
            b.mib_per_second,
            mib(b.rss_peak),
            b.still_open,
            a.mib_per_second / b.mib_per_second
        );
        ours.push(a.mib_per_second);
        theirs.push(b.mib_per_second);
        ratio.push(a.mib_per_second / b.mib_per_second);
        rss.push(mib(a.rss_peak));
        rss_idle.push(mib(a.rss_idle));
        nginx_rss.push(mib(b.rss_peak));
        ours_open = ours_open.min(a.still_open);
        theirs_open = theirs_open.min(b.still_open);
    }
    bench.rows.push(Row {
        figure: format!(
            "peak RSS of the server holding {} idle keep-alive connections during {} concurrent 1 MiB uploads (MiB)",
            thousands(idle),
            thousands(uploads)
        ),
        cabinet: format!("{:.1} MiB ({:.1} MiB with only the idle connections)", rss.median(), rss_idle.median()),
        baseline: format!("nginx, master and workers summed: {:.1} MiB", nginx_rss.median()),
        judged: rss,
        judged_digits: 1,
        target: Target::Below(256.0),
        unit: " MiB",
    });
    bench.rows.push(Row {
        figure: format!(
            "{} concurrent 1 MiB signed PUTs, sha256 verified, while {} idle keep-alive connections are held \
             (aggregate MiB/s; ratio to nginx)",
            thousands(uploads),
            thousands(idle)
        ),
        cabinet: format!(
            "{:.0} MiB/s; idle connections answering at the end: {} of {}",
            ours.median(),
            thousands(ours_open),
            thousands(idle)
        ),
        baseline: format!(
            "nginx dav PUT under the same load {:.0} MiB/s; {} of {} answering",
            theirs.median(),
            thousands(theirs_open),
            thousands(idle)
        ),
        judged: ratio,
        judged_digits: 2,
        target: Target::AtLeast(0.8),
        unit: "×",
    });
    Ok(())
}

/// The load both servers are put under.
struct Load<'a> {
    idle: usize,
    uploads: usize,
    bodies: &'a Bodies,
    /// One client per upload address.
    senders: &'a [reqwest::Client],
}

impl Load<'_> {
    async fn cabinet(&self, bench: &Bench, round: usize) -> Result<Outcome> {
        let data = bench.path(&format!("cabinet-connections-{round}"));
        let keepalive = KEEPALIVE_SECS.to_string();
        // One key sends every upload at once.
        let cap = self.uploads.max(32).to_string();
        let cabinet = Cabinet::start(
            &bench.cabinet_bin,
            &data,
            &[
                "--header-read-timeout",
                &keepalive,
                "--max-uploads-per-key",
                &cap,
                "--max-uploads-per-workspace",
                &cap,
            ],
        )?;
        let key = cabinet.key.clone().context("a fresh Cabinet has a bootstrap key")?;
        let mut idle = open_idle(address_of(&cabinet.url)?, self.idle).await?;
        let rss_idle = cabinet.peak_rss()?;
        // Reserved before the clock starts, as the upload figure does.
        let (http, api, bodies) = (&bench.http, cabinet.url.as_str(), self.bodies);
        let urls: Vec<String> = stream::iter(0..self.uploads)
            .map(|n| {
                let key = &key;
                async move {
                    let sha256 = bodies.sha256(n);
                    client::reserve(http, api, key, &format!("u{n}.bin"), MIB, Some(&sha256)).await
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        let started = Instant::now();
        let answers = future::try_join_all(urls.iter().enumerate().map(|(n, url)| {
            let request = self.sender(n).put(url);
            async move {
                client::expect(self.bodies.attach(request, n), 200)
                    .await
                    .with_context(|| format!("upload {n}"))
            }
        }))
        .await
        .map_err(|err| {
            err.context(format!("the server's warnings and errors:\n{}", cabinet.log_trouble(40)))
        })?;
        let took = started.elapsed();
        for (n, answer) in answers.iter().enumerate() {
            client::succeeded(answer, MIB, Some(&self.bodies.sha256(n)))?;
        }
        let rss_peak = cabinet.peak_rss()?;
        let still_open = still_answering(&mut idle, "Cabinet").await;
        drop(idle);
        drop(cabinet);
        std::fs::remove_dir_all(&data)?;
        Ok(Outcome { mib_per_second: self.mib_per_second(took), rss_idle, rss_peak, still_open })
    }

    async fn nginx(&self, bench: &Bench, round: usize) -> Result<Outcome> {
        let dir = bench.path(&format!("nginx-connections-{round}"));
        let nginx = Nginx::start_holding(&dir, self.idle + self.uploads, KEEPALIVE_SECS)?;
        std::fs::write(nginx.root.join("healthz"), br#"{"status":"ok"}"#)?;
        let mut idle = open_idle(address_of(&nginx.url)?, self.idle).await?;
        let rss_idle = nginx.peak_rss()?;
        let started = Instant::now();
        future::try_join_all((0..self.uploads).map(|n| {
            let request = self.sender(n).put(format!("{}/up/u{n}.bin", nginx.url));
            async move {
                let status = self.bodies.attach(request, n).send().await?.status();
                if status != 201 {
                    bail!("nginx dav PUT {n} answered {status}");
                }
                Ok(())
            }
        }))
        .await?;
        let took = started.elapsed();
        let rss_peak = nginx.peak_rss()?;
        let still_open = still_answering(&mut idle, "nginx").await;
        // nginx only stores; check what it stored (untimed): every size, and a few whole files.
        for n in 0..self.uploads {
            let path = nginx.root.join(format!("up/u{n}.bin"));
            if std::fs::metadata(&path)?.len() != MIB {
                bail!("nginx stored {} with the wrong size", path.display());
            }
            if n.is_multiple_of(97) && crate::transfer::sha256_of(&path)? != self.bodies.sha256(n) {
                bail!("nginx stored {} with other bytes than were sent", path.display());
            }
        }
        drop(idle);
        drop(nginx);
        std::fs::remove_dir_all(&dir)?;
        Ok(Outcome { mib_per_second: self.mib_per_second(took), rss_idle, rss_peak, still_open })
    }

    fn sender(&self, upload: usize) -> &reqwest::Client {
        &self.senders[upload % self.senders.len()]
    }

    fn mib_per_second(&self, took: Duration) -> f64 {
        self.uploads as f64 / took.as_secs_f64()
    }
}

/// 1 MiB upload bodies, each different, without holding one per upload: the same random
/// (1 MiB − 8) bytes shared by all, then the upload's number as 8 bytes. Each sha256 starts from
/// the shared bytes' hash state.
struct Bodies {
    shared: Bytes,
    hashed: Sha256,
}

impl Bodies {
    fn new() -> Self {
        let mut shared = vec![0u8; MIB as usize - 8];
        rand::thread_rng().fill_bytes(&mut shared);
        let hashed = Sha256::new().chain_update(&shared);
        Bodies { shared: shared.into(), hashed }
    }

    fn tail(n: usize) -> Bytes {
        Bytes::copy_from_slice(&(n as u64).to_be_bytes())
    }

    fn sha256(&self, n: usize) -> String {
        hex::encode(self.hashed.clone().chain_update(Self::tail(n)).finalize())
    }

    /// Upload `n`'s body on `request`, its length declared (a streamed body is chunked otherwise).
    fn attach(&self, request: reqwest::RequestBuilder, n: usize) -> reqwest::RequestBuilder {
        let parts = [Ok::<_, std::io::Error>(self.shared.clone()), Ok(Self::tail(n))];
        request
            .header(reqwest::header::CONTENT_LENGTH, MIB)
            .body(reqwest::Body::wrap_stream(stream::iter(parts)))
    }
}

fn address_of(url: &str) -> Result<SocketAddr> {
    url.trim_start_matches("http://").parse().with_context(|| format!("no address in {url}"))
}

/// Opens `count` connections to `server`, `IDLE_PER_ADDRESS` from each of `127.0.10.1`, `.2`, …;
/// each makes one request and is then left idle.
async fn open_idle(server: SocketAddr, count: usize) -> Result<Vec<TcpStream>> {
    if count.div_ceil(IDLE_PER_ADDRESS) > 250 * 50 {
        bail!("{count} idle connections need more client addresses than 127.0.10-59.x");
    }
    let started = Instant::now();
    let streams: Vec<TcpStream> = stream::iter(0..count)
        .map(|n| async move {
            let address = n / IDLE_PER_ADDRESS;
            let source = Ipv4Addr::new(127, 0, 10 + (address / 250) as u8, 1 + (address % 250) as u8);
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source.into(), 0))?;
            let mut stream =
                socket.connect(server).await.with_context(|| format!("connecting from {source}"))?;
            probe(&mut stream)
                .await
                .with_context(|| format!("idle connection {n}, from {source}, first request"))?;
            anyhow::Ok(stream)
        })
        .buffer_unordered(AT_ONCE)
        .try_collect()
        .await?;
    eprintln!(
        "connections: {count} idle connections to {server} open in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(streams)
}

/// Asks every idle connection once more; returns how many answered, and says why the first that
/// did not failed.
async fn still_answering(streams: &mut [TcpStream], server: &str) -> usize {
    let results: Vec<Result<()>> =
        stream::iter(streams.iter_mut()).map(probe).buffer_unordered(AT_ONCE).collect().await;
    let failed: Vec<&anyhow::Error> = results.iter().filter_map(|result| result.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        eprintln!(
            "connections: {} of {} idle connections to {server} did not answer; the first: {first:#}",
            failed.len(),
            results.len()
        );
    }
    results.len() - failed.len()
}

/// `GET /healthz` on a kept-alive connection: the answer must be a 200, read to its end so the
/// connection can be asked again.
async fn probe(stream: &mut TcpStream) -> Result<()> {
    stream.write_all(PROBE).await?;
    let mut buffer = [0u8; 1024];
    let mut filled = 0;
    loop {
        let read = stream.read(&mut buffer[filled..]).await?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        filled += read;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = response.parse(&buffer[..filled])? {
            if response.code != Some(200) {
                bail!("GET /healthz answered {:?}", response.code);
            }
            let length: usize = response
                .headers
                .iter()
                .find(|header| header.name.eq_ignore_ascii_case("content-length"))
                .and_then(|header| std::str::from_utf8(header.value).ok()?.trim().parse().ok())
                .ok_or_else(|| anyhow!("GET /healthz answered without a Content-Length"))?;
            if filled >= head + length {
                return Ok(());
            }
        }
        if filled == buffer.len() {
            bail!("GET /healthz answered more than {} bytes", buffer.len());
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// `10000` as `10,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
