//! The PostgreSQL side of a sync: the target table (`target`) and writing a day into it
//! (`day_replace`).

pub mod day_replace;
pub mod target;
