//! Bridges between the synchronous repository and async HTTP bodies, bounded both ways.
//!
//! - [`ChannelWriter`]: a `std::io::Write` for blocking code (cat, tar, CAR export) whose
//!   output becomes a streaming response body; it blocks when [`BODY_QUEUE_CHUNKS`] chunks
//!   wait, so a slow client slows the producer instead of growing memory.
//! - [`ChannelReader`]: a `std::io::Read` for blocking code (the importer, CAR import) fed
//!   with the chunks of an upload by the async handler.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// Chunks queued between a producer and the HTTP connection.
pub const BODY_QUEUE_CHUNKS: usize = 8;
/// Bytes gathered before a chunk is handed to the connection.
pub const BODY_CHUNK_BYTES: usize = 256 * 1024;

type Chunk = Result<Bytes, std::io::Error>;

/// The write end of a streaming response body.
pub struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: BytesMut,
}

impl ChannelWriter {
    fn send(&mut self, chunk: Chunk) -> std::io::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// Ends the body with an error: the connection is cut, so the client sees a truncated
    /// answer instead of a short one that looks complete.
    pub fn fail(mut self, message: String) {
        let _ = self.flush_buf();
        let _ = self.send(Err(std::io::Error::other(message)));
    }

    fn flush_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.send(Ok(chunk))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.len() >= BODY_CHUNK_BYTES && self.buf.is_empty() {
            self.send(Ok(Bytes::copy_from_slice(data)))?;
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BODY_CHUNK_BYTES {
            self.flush_buf()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_buf()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.flush_buf();
    }
}

/// A response body produced by `produce` on the blocking pool. An `Err` from `produce` cuts
/// the body (after what was written), as kubo's `X-Stream-Error` trailer signals a failure
/// after the headers were sent.
pub fn blocking_body<F>(produce: F) -> Body
where
    F: FnOnce(&mut ChannelWriter) -> Result<(), String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Chunk>(BODY_QUEUE_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx,
            buf: BytesMut::with_capacity(BODY_CHUNK_BYTES),
        };
        match produce(&mut w) {
            Ok(()) => drop(w),
            Err(e) => {
                tracing::warn!(error = %e, "streaming answer failed");
                w.fail(e);
            }
        }
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }))
}

/// The read end of an upload: chunks sent by the async side, read by blocking code.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

/// Chunks of an upload queued for the blocking reader.
pub const UPLOAD_QUEUE_CHUNKS: usize = 16;

impl ChannelReader {
    /// A reader and the sender the async side feeds; dropping the sender ends the input.
    pub fn new() -> (mpsc::Sender<Bytes>, ChannelReader) {
        let (tx, rx) = mpsc::channel(UPLOAD_QUEUE_CHUNKS);
        (
            tx,
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
        )
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Runs `work` on the blocking pool over a [`ChannelReader`] fed with the upload part
/// `field`, and returns its result. A failed upload is the answer's error even when `work`
/// then failed on the cut input; `work` stopping early ends the feeding (its error follows).
pub async fn import_part<T, E, F>(
    field: &mut axum::extract::multipart::Field<'_>,
    work: F,
) -> Result<T, super::ApiError>
where
    F: FnOnce(ChannelReader) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    super::ApiError: From<E>,
{
    let (tx, reader) = ChannelReader::new();
    let task = tokio::task::spawn_blocking(move || work(reader));
    let mut upload_err = None;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if tx.send(chunk).await.is_err() {
                    break; // the work stopped; its error follows
                }
            }
            Ok(None) => break,
            Err(e) => {
                upload_err = Some(<super::ApiError as From<
                    axum::extract::multipart::MultipartError,
                >>::from(e));
                break;
            }
        }
    }
    drop(tx);
    let done = task
        .await
        .map_err(|e| super::ApiError::internal(format!("import task failed: {e}")))?;
    if let Some(e) = upload_err {
        return Err(e);
    }
    Ok(done?)
}
