//! What has been read of a request's body, observed once for every layer that judges a request by
//! it: whether it was read to its end (a refusal before then closes the connection) and how many
//! bytes were read (a refusal after them costs the rate limit).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use http_body::{Frame, SizeHint};

/// How much of a request's body has been read, and whether to its end.
#[derive(Debug, Default)]
pub struct BodyRead {
    bytes: AtomicU64,
    ended: AtomicBool,
}

impl BodyRead {
    /// `request` with its body observed, and the observer: the one an outer layer already put on
    /// it, or a new one. `None` for a body known to be empty. The observed body keeps what was
    /// known of its length (the S3 surface reads a body's length from it where no header says).
    pub fn observe(request: Request) -> (Request, Option<Arc<BodyRead>>) {
        if let Some(read) = request.extensions().get::<Arc<BodyRead>>() {
            let read = read.clone();
            return (request, Some(read));
        }
        if request.body().is_end_stream() {
            return (request, None);
        }
        let read = Arc::new(BodyRead::default());
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(read.clone());
        let observed = Observed { inner: body, read: read.clone() };
        (Request::from_parts(parts, Body::new(observed)), Some(read))
    }

    /// The bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// Whether the body has been read to its end.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// A request body that counts what is read from it.
struct Observed {
    inner: Body,
    read: Arc<BodyRead>,
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.read.bytes.fetch_add(data.len() as u64, Ordering::AcqRel);
                }
                // A reader that knows the length may stop at its last byte without asking again.
                if self.inner.is_end_stream() {
                    self.read.ended.store(true, Ordering::Release);
                }
            }
            Poll::Ready(None) => self.read.ended.store(true, Ordering::Release),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn layers_share_one_observer_that_counts_bytes_and_sees_the_end() {
        let chunks = futures::stream::iter([
            Ok::<_, std::io::Error>(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
        ]);
        let request = Request::new(Body::from_stream(chunks));
        let (request, outer) = BodyRead::observe(request);
        let (request, inner) = BodyRead::observe(request);
        let (outer, inner) = (outer.unwrap(), inner.unwrap());
        assert!(Arc::ptr_eq(&outer, &inner), "the inner layer reuses the outer layer's observer");
        let mut body = request.into_body().into_data_stream();
        assert_eq!(body.next().await.unwrap().unwrap(), "abc");
        assert_eq!((outer.bytes(), outer.ended()), (3, false));
        assert_eq!(body.next().await.unwrap().unwrap(), "de");
        assert!(body.next().await.is_none());
        assert_eq!((outer.bytes(), outer.ended()), (5, true));

        let (_, empty) = BodyRead::observe(Request::new(Body::empty()));
        assert!(empty.is_none(), "an empty body is not observed");
    }

    #[tokio::test]
    async fn an_observed_body_keeps_its_known_length_and_ends_at_its_last_byte() {
        let (request, read) = BodyRead::observe(Request::new(Body::from("abcde")));
        let read = read.unwrap();
        let mut body = request.into_body();
        assert_eq!(body.size_hint().exact(), Some(5));
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "abcde");
        assert_eq!((read.bytes(), read.ended()), (5, true));
    }
}
