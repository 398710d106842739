//! The channel both read paths deliver through: a producer on the network threads (a
//! query's pages, or a read session's streams) hands pages of COPY rows to the main thread
//! through a small bounded channel, so that the next pages are on their way while the
//! current one is written. Every page not yet written holds its room in the fetch's budget.

use super::budget::Reservation;
use super::copy_rows::EncodedPage;
use crate::error::SyncResult;
use crate::runtime::{self, BackgroundTask};
use tokio::sync::mpsc;

/// Pages prepared ahead of the writer, beside those being fetched.
pub const PAGES_AHEAD: usize = 2;

#[derive(Debug)]
pub enum Delivery<T> {
    Started(JobSummary),
    Page(T),
    /// The source sent everything: this many rows by its own count. Only a read whose
    /// total is not known when it starts (`JobSummary::total_rows` is `None`) says so.
    Ended {
        rows_reported: u64,
    },
}

/// Which of BigQuery's APIs a day was read through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    /// A query job, its result paged through `jobs.getQueryResults`.
    Query,
    /// A Storage Read API session, its streams read at once.
    Storage,
}

impl ReadPath {
    pub fn name(self) -> &'static str {
        match self {
            ReadPath::Query => "query",
            ReadPath::Storage => "storage",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobSummary {
    /// The query job, or the read session.
    pub job_id: String,
    /// The result's row count, when the source says it before sending them.
    pub total_rows: Option<u64>,
    pub bytes_billed: Option<i64>,
    pub read_path: ReadPath,
    /// BigQuery's time as of which the rows were read, in Unix µs: a read session's
    /// snapshot, or the query job's creation. Everything committed before it is in them.
    pub snapshot_micros: Option<i64>,
}

/// A prepared page with the room it takes in the budget.
pub struct Held {
    pub page: EncodedPage,
    pub room: Reservation,
}

type Sender = mpsc::Sender<SyncResult<Delivery<Held>>>;

pub struct ResultStream {
    receiver: mpsc::Receiver<SyncResult<Delivery<Held>>>,
    /// The room of the page last handed out, kept until the next one is asked for.
    writing: Option<Reservation>,
    _fetch: BackgroundTask<()>,
}

/// Where a producer on the network threads delivers; each call says whether the receiver
/// still listens.
#[derive(Clone)]
pub struct PageSink {
    sender: Sender,
}

impl PageSink {
    pub async fn started(&self, summary: JobSummary) -> bool {
        self.sender
            .send(Ok(Delivery::Started(summary)))
            .await
            .is_ok()
    }

    /// A prepared page, keeping `room` of the budget until it has been written.
    pub async fn page(&self, page: EncodedPage, room: Reservation) -> bool {
        self.deliver(Held { page, room }).await
    }

    pub async fn deliver(&self, held: Held) -> bool {
        self.sender.send(Ok(Delivery::Page(held))).await.is_ok()
    }

    pub async fn ended(&self, rows_reported: u64) -> bool {
        self.sender
            .send(Ok(Delivery::Ended { rows_reported }))
            .await
            .is_ok()
    }
}

impl ResultStream {
    /// Runs `producer` on the network threads; what it delivers to its sink, and its error
    /// if it fails, is what `next` hands out.
    pub fn produce<F, Fut>(producer: F) -> SyncResult<Self>
    where
        F: FnOnce(PageSink) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = SyncResult<()>> + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel(PAGES_AHEAD);
        let sink = PageSink { sender };
        let fetch = runtime::spawn(async move {
            let errors = sink.sender.clone();
            if let Err(error) = producer(sink).await {
                // The receiver may be gone already; then nobody is waiting for the error.
                let _ = errors.send(Err(error)).await;
            }
        })?;
        Ok(Self {
            receiver,
            writing: None,
            _fetch: fetch,
        })
    }

    /// The next delivery, waiting interruptibly; `None` once the result is exhausted. The
    /// page handed out before this call must have been written by now.
    pub fn next(&mut self) -> SyncResult<Option<Delivery<EncodedPage>>> {
        self.writing = None;
        Ok(match runtime::wait(self.receiver.recv())?.transpose()? {
            Some(Delivery::Page(held)) => {
                self.writing = Some(held.room);
                Some(Delivery::Page(held.page))
            }
            Some(Delivery::Started(summary)) => Some(Delivery::Started(summary)),
            Some(Delivery::Ended { rows_reported }) => Some(Delivery::Ended { rows_reported }),
            None => None,
        })
    }
}
