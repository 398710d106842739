//! The PostgreSQL side of a sync: the target table (`target`), COPY inside the backend
//! (`copy_from`) of the rows the BigQuery side encoded, and replacing a day with them
//! (`day_replace`).

pub mod copy_from;
pub mod day_replace;
pub mod target;
