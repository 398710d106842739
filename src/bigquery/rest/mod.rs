//! The REST read path: BigQuery's REST calls (`client`: tables.get, jobs.query,
//! jobs.getQueryResults) and a query's result paged through on the network threads
//! (`pages`).

pub mod client;
pub mod pages;
