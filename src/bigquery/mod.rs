//! The BigQuery side: credentials (`auth`), the REST calls (`client`), the SQL we send
//! (`query`), paging through a result (`pages`) within a memory budget (`budget`), and turning rows into typed values (`decode`).

pub mod auth;
pub mod budget;
pub mod client;
pub mod decode;
pub mod errors;
pub mod pages;
pub mod query;
pub mod wire;
