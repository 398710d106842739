//! The PostgreSQL side of a sync: the target table (`target`), COPY inside the backend
//! (`copy_from`) of the rows the BigQuery side encoded, replacing a day with them
//! (`day_replace`), or only some of its hours, kept by hour in temporary files
//! (`hour_files`).

pub mod copy_from;
pub mod day_replace;
pub mod hour_files;
pub mod target;
