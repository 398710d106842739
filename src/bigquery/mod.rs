//! The BigQuery side: one call's settings and clients (`context`), credentials (`auth`), a
//! table's schema (`schema`), the SQL we send
//! (`query`), and a day read by one of two paths, a query job whose result is paged through
//! (`rest`) or a read session of the Storage Read API (`storage`). Both retry as `retry`
//! says, turn their rows into COPY's rows (`copy_rows`) on the network threads within one
//! memory budget (`budget`), and hand the pages to the main thread through one channel
//! (`delivery`).

pub mod auth;
pub mod budget;
pub mod context;
pub mod copy_rows;
pub mod delivery;
pub mod errors;
pub mod partitions;
pub mod query;
pub mod rest;
pub mod retry;
pub mod schema;
pub mod storage;
pub mod wire;
