//! The BigQuery side: credentials (`auth`), the REST calls (`client`), a table's schema
//! (`schema`), the SQL we send (`query`), and paging through a result (`pages`) within a
//! memory budget (`budget`); or reading a day through the Storage Read API (`storage`).
//! Both read paths retry as `retry` says, and turn their rows into COPY text (`copy_text`)
//! on the network threads.

pub mod auth;
pub mod budget;
pub mod client;
pub mod copy_text;
pub mod errors;
pub mod pages;
pub mod query;
pub mod retry;
pub mod schema;
pub mod storage;
pub mod wire;
