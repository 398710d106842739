//! The fetch pipeline's memory, bounded in bytes (`token_sync.max_bytes_in_flight`): each
//! request reserves room for its response before it is sent, each prepared page keeps the
//! room its bytes take until the main thread has written it, and requests ask for as many
//! rows as fit their share of the budget, judged by the widest rows seen so far.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Room is counted in KiB, so that a budget of gigabytes still fits the semaphore's count.
const UNIT: usize = 1024;

/// A REST response's peak while it is prepared, per byte of its body: the body itself and
/// its COPY rows, each row encoded as it is parsed (one decoded row at a time); where the
/// rows outgrow the body, the budget learns it (`observe`).
pub const PEAK_PER_BODY_BYTE: usize = 2;
/// The same for a ReadRows message: the message, its Arrow arrays (copied where the
/// message's buffers are not aligned as Arrow wants), and their COPY rows.
pub const PEAK_PER_ARROW_BYTE: usize = 3;

pub struct Budget {
    room: Arc<Semaphore>,
    total_units: u32,
    /// The room one request may take: the budget over every page that can be in flight.
    share: usize,
    page_rows: u32,
    /// What a response takes at its peak, per byte of its body.
    pub peak_per_body_byte: usize,
    /// The widest response seen so far, in body bytes per row; 0 before the first.
    body_bytes_per_row: AtomicUsize,
    /// The most a response has held per row seen so far: its body and its prepared page
    /// (whose text can outgrow its body: hex of bytes, timestamps, a STRUCT's names).
    peak_bytes_per_row: AtomicUsize,
    /// The largest response seen so far: its body and its prepared page.
    peak_response_bytes: AtomicUsize,
}

impl Budget {
    /// `limit` bytes shared by `pages` pages in flight at once, at most `page_rows` rows each,
    /// each response taking `peak_per_body_byte` times its body at its peak.
    pub fn new(limit: usize, pages: usize, page_rows: u32, peak_per_body_byte: usize) -> Self {
        let total_units = (limit / UNIT).clamp(1, u32::MAX as usize) as u32;
        Self {
            room: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            share: limit / pages.max(1),
            page_rows: page_rows.max(1),
            peak_per_body_byte: peak_per_body_byte.max(1),
            body_bytes_per_row: AtomicUsize::new(0),
            peak_bytes_per_row: AtomicUsize::new(0),
            peak_response_bytes: AtomicUsize::new(0),
        }
    }

    /// Learns the width of rows from a response of `body_bytes` holding `rows` rows, whose
    /// prepared page keeps `page_bytes`.
    pub fn observe(&self, body_bytes: usize, rows: usize, page_bytes: usize) {
        if rows > 0 {
            self.body_bytes_per_row
                .fetch_max(body_bytes.div_ceil(rows), Ordering::Relaxed);
            self.peak_bytes_per_row.fetch_max(
                body_bytes.saturating_add(page_bytes).div_ceil(rows),
                Ordering::Relaxed,
            );
        }
        let peak = (body_bytes * self.peak_per_body_byte).max(body_bytes + page_bytes);
        self.peak_response_bytes.fetch_max(peak, Ordering::Relaxed);
    }

    /// What a row takes at the peak of its response: the body times `peak_per_body_byte`,
    /// or what responses were seen to hold, whichever is more; 0 before the first.
    fn peak_per_row(&self) -> usize {
        let by_body = self.body_bytes_per_row.load(Ordering::Relaxed) * self.peak_per_body_byte;
        by_body.max(self.peak_bytes_per_row.load(Ordering::Relaxed))
    }

    /// How many rows the next request asks for: as many as fit one share, 1 to `page_rows`.
    pub fn rows_per_request(&self) -> u32 {
        match self.peak_per_row() {
            0 => self.page_rows,
            width => (self.share / width).clamp(1, self.page_rows as usize) as u32,
        }
    }

    fn units_for(&self, rows: u32) -> u32 {
        let bytes = (rows as usize).saturating_mul(self.peak_per_row());
        units(bytes).min(self.total_units)
    }

    /// Waits until there is room for a response of `rows` rows. Only for a request that no
    /// undelivered page waits behind: those pages' room is freed only as they are written.
    pub async fn reserve(&self, rows: u32) -> Reservation {
        let permit = self
            .room
            .clone()
            .acquire_many_owned(self.units_for(rows))
            .await
            .ok();
        self.reservation(permit)
    }

    /// Waits until there is room for a response as large as the largest seen so far (one
    /// share before the first): for a reader that cannot choose how many rows the next one
    /// holds, as a ReadRows stream cannot.
    pub async fn reserve_largest(&self) -> Reservation {
        let bytes = match self.peak_response_bytes.load(Ordering::Relaxed) {
            0 => self.share,
            peak => peak,
        };
        let permit = self
            .room
            .clone()
            .acquire_many_owned(units(bytes).min(self.total_units))
            .await
            .ok();
        self.reservation(permit)
    }

    /// Room for a response of `rows` rows if there is some now.
    pub fn try_reserve(&self, rows: u32) -> Option<Reservation> {
        let permit = self
            .room
            .clone()
            .try_acquire_many_owned(self.units_for(rows))
            .ok()?;
        Some(self.reservation(Some(permit)))
    }

    /// No room yet; `grow_to` takes what is free.
    pub fn unreserved(&self) -> Reservation {
        self.reservation(None)
    }

    fn reservation(&self, permit: Option<OwnedSemaphorePermit>) -> Reservation {
        Reservation {
            permit,
            room: self.room.clone(),
        }
    }
}

fn units(bytes: usize) -> u32 {
    bytes.div_ceil(UNIT).min(u32::MAX as usize) as u32
}

/// Room taken from the budget, given back when dropped.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    room: Arc<Semaphore>,
}

impl Reservation {
    fn units(&self) -> u32 {
        self.permit
            .as_ref()
            .map_or(0, |permit| permit.num_permits() as u32)
    }

    /// Grows to `bytes` if that much is free now. It never waits: the pages ahead of this
    /// one hold room that is freed only after this one is delivered. A response wider than
    /// reserved for is prepared anyway, and the rows it taught `observe` shrink the next.
    pub fn grow_to(&mut self, bytes: usize) {
        let missing = units(bytes).saturating_sub(self.units());
        if missing == 0 {
            return;
        }
        if let Ok(more) = self.room.clone().try_acquire_many_owned(missing) {
            match self.permit.as_mut() {
                Some(permit) => permit.merge(more),
                None => self.permit = Some(more),
            }
        }
    }

    /// Splits off the room a prepared page of `bytes` keeps until it is written (as much
    /// of it as this reservation holds).
    pub fn take(&mut self, bytes: usize) -> Reservation {
        let wanted = units(bytes).min(self.units()) as usize;
        let permit = match self.permit.as_mut() {
            Some(permit) if wanted > 0 => permit.split(wanted),
            _ => None,
        };
        Reservation {
            permit,
            room: self.room.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn requests_shrink_to_fit_their_share_of_the_budget() {
        let budget = Budget::new(8 * 1024 * 1024, 8, 10_000, PEAK_PER_BODY_BYTE);
        assert_eq!(budget.rows_per_request(), 10_000, "before any row is seen");
        budget.observe(1_000 * 400, 1_000, 1_000 * 300);
        assert_eq!(budget.rows_per_request(), 1_310);
        budget.observe(100 * 4_000, 100, 100 * 3_000);
        assert_eq!(
            budget.rows_per_request(),
            131,
            "the widest rows seen decide"
        );
        budget.observe(100, 100, 100);
        assert_eq!(budget.rows_per_request(), 131);
        budget.observe(100 * 4_000, 100, 100 * 12_000);
        assert_eq!(
            budget.rows_per_request(),
            65,
            "a page whose text outgrew its body counts as it was"
        );
    }

    #[test]
    fn room_is_bounded_and_given_back() {
        let budget = Budget::new(1024 * 1024, 4, 10_000, PEAK_PER_BODY_BYTE);
        budget.observe(100 * 1024, 100, 0);
        let first = budget.try_reserve(256).expect("half the budget is free");
        assert_eq!(first.units(), 512);
        let second = budget.try_reserve(256).expect("the other half is free");
        assert!(budget.try_reserve(1).is_none(), "the budget is spent");
        drop(second);
        let mut third = budget.try_reserve(256).expect("room given back");
        let page = third.take(100 * 1024);
        assert_eq!((page.units(), third.units()), (100, 412));
        drop(third);
        assert!(
            budget.try_reserve(200).is_some(),
            "the page keeps only its own room"
        );
        drop(first);
        let mut grown = budget.unreserved();
        grown.grow_to(2 * 1024 * 1024);
        assert_eq!(grown.units(), 0, "never more than the budget has free");
        grown.grow_to(800 * 1024);
        assert_eq!(grown.units(), 800);
        assert_eq!(
            budget.units_for(1_000_000),
            1024,
            "one request never waits for more than the whole budget"
        );
    }

    #[test]
    fn a_stream_waits_for_room_for_the_largest_message_seen() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a test runtime");
        let budget = Budget::new(1024 * 1024, 4, 10_000, PEAK_PER_ARROW_BYTE);
        let first = runtime.block_on(budget.reserve_largest());
        assert_eq!(first.units(), 256, "one share before any message");
        drop(first);
        budget.observe(100 * 1024, 10, 150 * 1024);
        let held = runtime.block_on(budget.reserve_largest());
        assert_eq!(held.units(), 300, "three times the largest body");
        budget.observe(50 * 1024, 10, 400 * 1024);
        let second = runtime.block_on(budget.reserve_largest());
        assert_eq!(
            second.units(),
            450,
            "or its body and page, where the page outgrew it"
        );
        let waiting = runtime.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), budget.reserve_largest()).await
        });
        assert!(waiting.is_err(), "no room for a third: it waits");
        drop(held);
        assert_eq!(runtime.block_on(budget.reserve_largest()).units(), 450);
    }
}
