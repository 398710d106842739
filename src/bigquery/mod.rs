//! The BigQuery side: credentials (`auth`), the REST calls (`client`), the SQL we send
//! (`query`), paging through a result (`pages`), and turning rows into typed values (`decode`).

pub mod auth;
pub mod client;
pub mod decode;
pub mod errors;
pub mod pages;
pub mod query;
pub mod wire;
