//! Idle keep-alive connections that hold no buffers. hyper keeps a connection's 8 KiB read buffer
//! and 8 KiB write buffer for the connection's whole life, idle or not, which made 10,000 idle
//! keep-alive connections cost ~140 MiB. Like nginx, which frees a keep-alive connection's
//! buffers while it waits, a connection here is served by hyper only while it has something to
//! do: once every answer has been sent and the socket has had nothing more to read for a short
//! while ([`LINGER`]), its hyper session ends as if the client had closed, and the bare socket
//! waits for the next request's bytes, which start a new session.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use hyper::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Duration, Instant, Sleep};

/// How long an idle connection keeps its hyper session before it parks. A client sending its
/// requests one after another (a browser loading a page, an SDK, a load test) keeps one session
/// for all of them, where a session for each request cost a seventh of a small request's server
/// CPU (`GET /v1/files/{id}`); an idle connection still parks within twice this.
pub const LINGER: Duration = Duration::from_millis(50);

/// What a connection's requests are doing, shared by its IO and its service.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests received whose answers have not been sent to their end.
    open: AtomicUsize,
    /// Answers sent to their end (or abandoned).
    answered: AtomicU64,
}

/// One request from the moment hyper hands it over until its answer's body has been sent (or
/// the request is abandoned): while any is open, its connection is not idle.
#[derive(Debug)]
pub struct OpenRequest(Arc<Activity>);

impl OpenRequest {
    fn new(activity: Arc<Activity>) -> Self {
        activity.open.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.answered.fetch_add(1, Ordering::AcqRel);
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket whose hyper session ends once it is idle: a read that finds nothing then answers end of
/// stream, which hyper takes for the client closing an idle connection.
pub struct Parking<S> {
    stream: S,
    activity: Arc<Activity>,
    /// Bytes the connection's last hyper session read and did not parse (the start of a request
    /// sent right behind another), handed to hyper first.
    unparsed: Bytes,
    /// hyper's last write found the socket full: bytes of an answer may wait in its buffer.
    write_blocked: bool,
    /// `answered` when bytes were last read: while no answer has ended since, those bytes may be
    /// the start of a request hyper holds, whose head must arrive within hyper's header timeout.
    /// `None` before the first read.
    read_at: Option<u64>,
    /// Reads that found bytes, so far.
    reads: u64,
    linger: Linger,
    parked: bool,
    /// How long hyper's writes may find the socket full, the client taking none of the answer,
    /// before the connection fails (`None`: no limit).
    send_timeout: Option<Duration>,
    /// When a write blocked since the last one that sent anything fails; armed by the first.
    send_deadline: Option<Pin<Box<Sleep>>>,
}

/// When an idle connection has lingered long enough to park: a timer armed when it is first found
/// idle, and the reads seen by then. A connection that has read nothing since, once the timer
/// fires, parks; one that has is given another `LINGER`. Armed once a `LINGER` at most, not once
/// a request: a fired timer wakes a busy connection once, harmlessly.
#[derive(Debug, Default)]
struct Linger {
    timer: Option<Pin<Box<Sleep>>>,
    armed_at_reads: Option<u64>,
}

impl Linger {
    /// Whether a connection idle now, having made `reads` reads, has been idle for all of the
    /// last `LINGER` (or, when not, that `cx` is woken when it may have been).
    fn over(&mut self, reads: u64, cx: &mut Context<'_>) -> bool {
        loop {
            let Some(armed_at_reads) = self.armed_at_reads else {
                let deadline = Instant::now() + LINGER;
                match &mut self.timer {
                    Some(timer) => timer.as_mut().reset(deadline),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                self.armed_at_reads = Some(reads);
                continue;
            };
            let timer = self.timer.as_mut().expect("an armed linger has its timer");
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            self.armed_at_reads = None;
            if armed_at_reads == reads {
                return true;
            }
        }
    }
}

impl<S> Parking<S> {
    pub fn new(stream: S, unparsed: Bytes, activity: Arc<Activity>) -> Self {
        Self {
            stream,
            activity,
            unparsed,
            write_blocked: false,
            read_at: None,
            reads: 0,
            linger: Linger::default(),
            parked: false,
            send_timeout: None,
            send_deadline: None,
        }
    }

    /// Fails the connection once its client has taken none of an answer for `limit`: a client
    /// that asks for a download and reads nothing would otherwise hold its connection, and the
    /// chunk that could not be sent, for as long as it liked.
    pub fn with_send_timeout(mut self, limit: Option<Duration>) -> Self {
        self.send_timeout = limit;
        self
    }

    /// Whether the session ended because the connection was idle (so the socket may serve
    /// another), not because the client closed it or failed.
    pub fn parked(&self) -> bool {
        self.parked
    }

    /// The socket, and what is left of `unparsed`.
    pub fn into_inner(self) -> (S, Bytes) {
        (self.stream, self.unparsed)
    }

    /// Whether every request read has been answered to its end, and no answer waits to be sent.
    /// A request sent right behind another may still be in hyper's buffer, in part: its session
    /// then ends with those bytes unparsed, and they start the next (`unparsed`).
    fn idle(&self) -> bool
    where
        S: Socket,
    {
        let answered = self.activity.answered.load(Ordering::Acquire);
        S::PARKS
            && !self.write_blocked
            && self.activity.open.load(Ordering::Acquire) == 0
            && self.read_at.is_none_or(|read_at| answered > read_at)
    }

    fn note_read(&mut self) {
        self.read_at = Some(self.activity.answered.load(Ordering::Acquire));
        self.reads += 1;
    }
}

impl<S: Socket> AsyncRead for Parking<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.parked {
            return Poll::Ready(Ok(()));
        }
        if !self.unparsed.is_empty() {
            let n = self.unparsed.len().min(buf.remaining());
            buf.put_slice(&self.unparsed.split_to(n));
            self.note_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.note_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.idle() => {
                let reads = self.reads;
                if !self.linger.over(reads, cx) {
                    return Poll::Pending;
                }
                self.parked = true;
                Poll::Ready(Ok(()))
            }
            waiting_or_failed => waiting_or_failed,
        }
    }
}

impl<S: AsyncWrite + Unpin> Parking<S> {
    /// Notes whether a write or flush found the socket full, leaving an answer in hyper's buffer.
    /// Once such an answer is sent, hyper is asked to read again: the connection may be idle now,
    /// and hyper would otherwise wait on the socket with its buffers. Writes that have found it
    /// full for the whole send timeout, none sending anything, fail.
    fn noted<T>(&mut self, outcome: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let was_blocked = std::mem::replace(&mut self.write_blocked, outcome.is_pending());
        if outcome.is_ready() {
            if was_blocked {
                cx.waker().wake_by_ref();
            }
            return outcome;
        }
        let Some(limit) = self.send_timeout else { return outcome };
        if !was_blocked {
            let deadline = Instant::now() + limit;
            match &mut self.send_deadline {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.send_deadline = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let timer = self.send_deadline.as_mut().expect("a blocked write has armed its deadline");
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took none of the answer within the send timeout",
            )));
        }
        outcome
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Parking<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.noted(written, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.noted(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.stream).poll_flush(cx);
        self.noted(flushed, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A connection's socket.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether an idle connection leaves its hyper session and waits on the socket. Not under
    /// TLS: the TLS session reads ahead of what it hands out (the first request can arrive with the
    /// handshake), so the socket can be quiet while bytes wait above it; a TLS connection stays in
    /// one hyper session, buffers and all.
    const PARKS: bool;

    /// Ready once the socket has bytes to read (or has closed).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Socket for TcpStream {
    const PARKS: bool = true;

    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }
}

impl Socket for tokio_rustls::server::TlsStream<TcpStream> {
    const PARKS: bool = false;

    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.get_ref().0.readable()
    }
}

/// A hyper service that counts its connection's open requests (see [`OpenRequest`]).
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Counted<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Unpin,
{
    type Response = Response<CountedBody<B>>;
    type Error = S::Error;
    type Future = CountedAnswer<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let open = OpenRequest::new(self.activity.clone());
        CountedAnswer { answer: self.inner.call(request), open: Some(open) }
    }
}

/// The answer to a counted request, on its way.
pub struct CountedAnswer<F> {
    answer: F,
    open: Option<OpenRequest>,
}

impl<F, B, E> Future for CountedAnswer<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = Result<Response<CountedBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = ready!(Pin::new(&mut self.answer).poll(cx))?;
        let open = self.open.take();
        Poll::Ready(Ok(answer.map(|body| CountedBody { body, _open: open })))
    }
}

/// An answer's body, whose request stays open until hyper has sent it to its end and dropped it.
pub struct CountedBody<B> {
    body: B,
    _open: Option<OpenRequest>,
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn connected() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    /// What a read of `parking` gives: the bytes read, none once it has parked.
    async fn read(parking: &mut Parking<TcpStream>) -> Vec<u8> {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), parking.read(&mut buf))
            .await
            .expect("an idle connection parks, or its bytes are read, within seconds")
            .unwrap();
        buf[..n].to_vec()
    }

    fn answer_one(activity: &Arc<Activity>) {
        drop(OpenRequest::new(activity.clone()));
    }

    #[tokio::test]
    async fn an_idle_connection_parks_after_lingering_and_one_asked_again_meanwhile_does_not() {
        let (server, mut client) = connected().await;
        let activity = Arc::new(Activity::default());
        let mut parking = Parking::new(server, Bytes::new(), activity.clone());

        // Requests one after another, each sent a fifth of the linger after the last answer:
        // the session is kept across more than two lingers.
        for request in 0..12u8 {
            let sender = tokio::spawn(async move {
                tokio::time::sleep(LINGER / 5).await;
                client.write_all(&[request]).await.unwrap();
                client
            });
            assert_eq!(read(&mut parking).await, [request], "request {request} read, not parked");
            assert!(!parking.parked());
            client = sender.await.unwrap();
            answer_one(&activity);
        }

        // Nothing more: the connection parks, and not before a whole linger has passed.
        let idle_from = Instant::now();
        assert_eq!(read(&mut parking).await, Vec::<u8>::new());
        assert!(parking.parked());
        assert!(idle_from.elapsed() >= LINGER, "parked after {:?}", idle_from.elapsed());
    }

    #[tokio::test]
    async fn a_request_read_and_not_yet_answered_is_never_taken_for_idle() {
        let (server, mut client) = connected().await;
        let activity = Arc::new(Activity::default());
        let mut parking = Parking::new(server, Bytes::new(), activity.clone());
        client.write_all(b"GET / HT").await.unwrap();
        assert_eq!(read(&mut parking).await, b"GET / HT");
        let waiting = tokio::time::timeout(LINGER * 3, read(&mut parking)).await;
        assert!(waiting.is_err(), "a head begun must wait for the rest, not park: {waiting:?}");
        assert!(!parking.parked());
    }
}
