//! In-database tests: run inside a real backend by `cargo pgrx test`.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn functions_are_not_executable_by_public() {
        let public_can_run = Spi::get_one::<bool>(
            "SELECT bool_or(has_function_privilege('public', p.oid, 'EXECUTE')) \
             FROM pg_proc p WHERE p.proname IN ('token_sync_day', 'token_backfill', 'token_verify_day')",
        );
        assert_eq!(public_can_run, Ok(Some(false)));
    }
}
