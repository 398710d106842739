//! The PostgreSQL side of a sync: the target table (`target`), the rows as COPY text
//! (`copy_text`, on the network threads), COPY inside the backend (`copy_from`), and
//! replacing a day with them (`day_replace`).

pub mod copy_from;
pub mod copy_text;
pub mod day_replace;
pub mod target;
