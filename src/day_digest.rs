//! What a load wrote, hour by hour: per hour of the day, its rows and the sum of each row's
//! 64-bit XXH3 of its COPY bytes, computed on the network threads as the rows pass. The
//! ledger keeps the sums of each load; a re-sync of a partition BigQuery wrote to since
//! computes them again and rewrites only the hours whose sum differs.
//!
//! A sum (not an XOR) so that a row sent twice counts twice; order-free, so that pages may
//! arrive in any order. It is a fast hash, not a cryptographic one: it finds what BigQuery
//! changed, never what someone crafted to collide. XXH3 is a fixed specification, so the
//! sums of one version compare with those of the next. The bytes are COPY's, so a day
//! loaded in the text format has other sums than in binary: every hour differs then.

use crate::day::HOURS;
use twox_hash::XxHash3_64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayDigest {
    rows: [u64; HOURS],
    sums: [u64; HOURS],
}

impl DayDigest {
    /// One row of `hour`, as the bytes COPY is given.
    pub fn add_row(&mut self, hour: usize, copy_bytes: &[u8]) {
        let hour = hour.min(HOURS - 1);
        self.rows[hour] += 1;
        self.sums[hour] = self.sums[hour].wrapping_add(XxHash3_64::oneshot(copy_bytes));
    }

    pub fn merge(&mut self, other: &DayDigest) {
        for hour in 0..HOURS {
            self.rows[hour] += other.rows[hour];
            self.sums[hour] = self.sums[hour].wrapping_add(other.sums[hour]);
        }
    }

    /// The sums as the ledger keeps them (`token_sync.run_digests.hour_digests`): bigint, the same
    /// 64 bits.
    pub fn to_ledger(&self) -> Vec<i64> {
        self.sums.iter().map(|&sum| sum as i64).collect()
    }

    /// The hours whose sum differs from the ledger's `last`; every hour if `last` is not a
    /// day's worth of sums.
    pub fn changed_hours(&self, last: &[i64]) -> Vec<usize> {
        if last.len() != HOURS {
            return (0..HOURS).collect();
        }
        self.sums
            .iter()
            .zip(last)
            .enumerate()
            .filter(|(_, (&now, &before))| now != before as u64)
            .map(|(hour, _)| hour)
            .collect()
    }

    /// The rows these `hours` hold.
    pub fn rows_in(&self, hours: &[usize]) -> u64 {
        hours.iter().map(|&hour| self.rows[hour]).sum()
    }
}

/// Consecutive hours as half-open ranges: [3, 4, 7] is 3..5 and 7..8.
pub fn hour_ranges(hours: &[usize]) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for &hour in hours {
        match ranges.last_mut() {
            Some((_, end)) if *end == hour => *end += 1,
            _ => ranges.push((hour, hour + 1)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(rows: &[(usize, &str)]) -> DayDigest {
        let mut digest = DayDigest::default();
        for (hour, bytes) in rows {
            digest.add_row(*hour, bytes.as_bytes());
        }
        digest
    }

    #[test]
    fn the_order_of_rows_and_pages_does_not_matter() {
        let whole = digest(&[(1, "a"), (1, "b"), (5, "c")]);
        let mut pages = digest(&[(5, "c"), (1, "b")]);
        pages.merge(&digest(&[(1, "a")]));
        assert_eq!(whole, pages);
        assert_eq!(whole.changed_hours(&pages.to_ledger()), Vec::<usize>::new());
    }

    #[test]
    fn a_changed_added_or_doubled_row_changes_its_hour_only() {
        let last = digest(&[(1, "a"), (1, "b"), (5, "c")]).to_ledger();
        assert_eq!(
            digest(&[(1, "a"), (1, "B"), (5, "c")]).changed_hours(&last),
            vec![1]
        );
        assert_eq!(
            digest(&[(1, "a"), (1, "b"), (5, "c"), (9, "d")]).changed_hours(&last),
            vec![9]
        );
        assert_eq!(
            digest(&[(1, "a"), (1, "b"), (5, "c"), (5, "c")]).changed_hours(&last),
            vec![5]
        );
        assert_eq!(digest(&[(1, "a"), (5, "c")]).changed_hours(&last), vec![1]);
    }

    #[test]
    fn sums_that_are_not_a_day_s_change_every_hour() {
        let now = digest(&[(1, "a")]);
        assert_eq!(now.changed_hours(&[]), (0..HOURS).collect::<Vec<_>>());
        assert_eq!(
            now.changed_hours(&now.to_ledger()[..23]),
            (0..HOURS).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_hash_is_xxh3_as_specified() {
        // XXH3-64 of the empty input with seed 0, from the specification's test vectors.
        assert_eq!(XxHash3_64::oneshot(b""), 0x2D06_8005_38D3_94C2);
        let mut one = DayDigest::default();
        one.add_row(0, b"");
        assert_eq!(one.to_ledger()[0], 0x2D06_8005_38D3_94C2_u64 as i64);
    }

    #[test]
    fn hours_become_ranges() {
        assert_eq!(hour_ranges(&[3, 4, 7]), vec![(3, 5), (7, 8)]);
        assert_eq!(hour_ranges(&[]), vec![]);
        assert_eq!(
            hour_ranges(&(0..HOURS).collect::<Vec<_>>()),
            vec![(0, HOURS)]
        );
    }

    #[test]
    fn rows_are_counted_by_hour() {
        let now = digest(&[(1, "a"), (1, "b"), (5, "c"), (30, "late")]);
        assert_eq!(now.rows_in(&[1]), 2);
        assert_eq!(now.rows_in(&[1, 5, 23]), 4);
    }
}
