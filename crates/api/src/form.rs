//! Multipart forms read within fixed bounds, for every surface that takes one: text fields, then
//! one streamed `file` field. Each text field holds at most [`FIELD_BYTES`], at most
//! [`MAX_FIELDS`] come before the file, and at most [`PREFIX_BYTES`] of the body (fields, their
//! headers, and what the parser reads ahead) pass before the file starts; the whole body is
//! bounded by the file's limit plus that. So a form holds a fixed amount of memory, whoever sends
//! it. Read one only after the request is authenticated (or its signed URL verified); each
//! surface renders a [`FormError`] in its own shape.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::multipart::{Field, Multipart};
use axum::extract::{FromRequest, Request};
use cabinet_core::{Code, Error};
use futures::Stream;

/// The most bytes one text field may hold.
pub const FIELD_BYTES: usize = 8 * 1024;
/// The most text fields a form may send before its file.
pub const MAX_FIELDS: usize = 32;
/// The most text fields a form without a file may send: [`PREFIX_BYTES`] bounds its body anyway.
pub const MAX_FIELDS_WITHOUT_FILE: usize = 1024;
/// The most body bytes that may pass before the file field starts: the text fields with their
/// headers, and up to two of the server's read chunks that the parser takes ahead.
pub const PREFIX_BYTES: u64 = 2 << 20;
/// The name of the field that holds the bytes.
pub const FILE_FIELD: &str = "file";

/// Why a form was refused.
#[derive(Debug)]
pub enum FormError {
    /// Not a well-formed multipart body (400).
    Malformed(String),
    /// Over one of the bounds above, or the whole body over its limit (413). `code` is `field_too_large`
    /// for one field, `form_too_large` for the form.
    TooLarge { code: Code, message: String },
}

impl FormError {
    fn too_large(message: impl Into<String>) -> Self {
        FormError::TooLarge { code: Code::FormTooLarge, message: message.into() }
    }
}

impl From<FormError> for Error {
    fn from(err: FormError) -> Self {
        match err {
            FormError::Malformed(message) => Error::bad_request(
                Code::InvalidMultipart,
                format!("the multipart body is malformed: {message}"),
            ),
            FormError::TooLarge { code, message } => Error::TooLarge { code, message },
        }
    }
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormError::Malformed(message) | FormError::TooLarge { message, .. } => f.write_str(message),
        }
    }
}

/// One part of a form, in the order sent.
// Made and taken apart once per field: boxing the file would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Part<'a> {
    /// A text field, read whole (at most [`FIELD_BYTES`]).
    Text(TextField),
    /// The `file` field, unread: its bytes stream from here.
    File(Field<'a>),
}

/// A text field's name and value.
pub struct TextField {
    pub name: String,
    value: Bytes,
}

impl TextField {
    /// The value as UTF-8.
    pub fn text(&self) -> Result<&str, FormError> {
        std::str::from_utf8(&self.value)
            .map_err(|_| FormError::Malformed(format!("the form field `{}` is not UTF-8", self.name)))
    }
}

/// A multipart body being read within the bounds above.
pub struct Form {
    multipart: Multipart,
    budget: Arc<Budget>,
    fields: usize,
    max_fields: usize,
}

impl Form {
    /// Starts reading a form of text fields only (a file field ends it): at most
    /// [`MAX_FIELDS_WITHOUT_FILE`] fields within [`PREFIX_BYTES`] of body.
    pub async fn read_text_only(request: Request) -> Result<Form, FormError> {
        let mut form = Self::read(request, 0).await?;
        form.max_fields = MAX_FIELDS_WITHOUT_FILE;
        Ok(form)
    }

    /// Starts reading `request`'s form, whose file may hold up to `file_limit` bytes. A declared
    /// `Content-Length` over the whole body's bound is refused before a byte is read.
    pub async fn read(request: Request, file_limit: u64) -> Result<Form, FormError> {
        let body_limit = file_limit.saturating_add(PREFIX_BYTES);
        if crate::v1::content_length(request.headers()).is_some_and(|length| length > body_limit) {
            return Err(FormError::too_large(format!(
                "the body is larger than the {body_limit} bytes a form with a file of at most \
                 {file_limit} bytes may take"
            )));
        }
        let budget = Arc::new(Budget {
            allowed: AtomicU64::new(PREFIX_BYTES),
            body_limit,
            seen: AtomicU64::new(0),
            exceeded: AtomicBool::new(false),
        });
        let guarded = budget.clone();
        let request = request
            .map(|body| Body::from_stream(Bounded { inner: body.into_data_stream(), budget: guarded }));
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|err| FormError::Malformed(err.body_text()))?;
        Ok(Form { multipart, budget, fields: 0, max_fields: MAX_FIELDS })
    }

    /// The next part, or `None` at the end of the form. Once the file is handed out, the body may
    /// run to its whole limit.
    pub async fn next(&mut self) -> Result<Option<Part<'_>>, FormError> {
        let Some(mut field) = self.multipart.next_field().await.map_err(|err| self.budget.error(err))? else {
            return Ok(None);
        };
        if field.name() == Some(FILE_FIELD) {
            self.budget.allowed.store(self.budget.body_limit, Ordering::Relaxed);
            return Ok(Some(Part::File(field)));
        }
        self.fields += 1;
        if self.fields > self.max_fields {
            return Err(FormError::too_large(match self.max_fields {
                MAX_FIELDS => {
                    format!("a form may send at most {MAX_FIELDS} fields before its `{FILE_FIELD}`")
                }
                most => format!("a form may send at most {most} fields"),
            }));
        }
        let name = field.name().unwrap_or("").to_owned();
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|err| self.budget.error(err))? {
            if value.len() + chunk.len() > FIELD_BYTES {
                return Err(FormError::TooLarge {
                    code: Code::FieldTooLarge,
                    message: format!("the form field `{name}` is larger than {FIELD_BYTES} bytes"),
                });
            }
            value.extend_from_slice(&chunk);
        }
        Ok(Some(Part::Text(TextField { name, value: value.into() })))
    }
}

/// How many body bytes may pass: [`PREFIX_BYTES`] until the file starts, the whole limit after.
struct Budget {
    allowed: AtomicU64,
    body_limit: u64,
    seen: AtomicU64,
    exceeded: AtomicBool,
}

impl Budget {
    /// A parser error, or the budget's refusal that caused it.
    fn error(&self, err: axum::extract::multipart::MultipartError) -> FormError {
        if self.exceeded.load(Ordering::Relaxed) {
            FormError::too_large(format!(
                "the form sends more than {PREFIX_BYTES} bytes before its `{FILE_FIELD}`, or more \
                 than {} bytes in all",
                self.body_limit
            ))
        } else {
            FormError::Malformed(err.body_text())
        }
    }
}

/// The request body, cut off with an error once it passes the budget.
struct Bounded {
    inner: BodyDataStream,
    budget: Arc<Budget>,
}

impl Stream for Bounded {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.budget.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let seen =
                    self.budget.seen.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                if seen > self.budget.allowed.load(Ordering::Relaxed) {
                    self.budget.exceeded.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(io::Error::other("the form is over its bound"))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(io::Error::other(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
