//! `sqlx::migrate!` (in `src/store/pool.rs`) embeds the SQL files of `migrations/sqlite` and
//! `migrations/postgres` when the crate compiles, but cargo does not see them as inputs: without
//! this, a changed or added migration would leave a binary embedding the old set.

fn main() {
    for dir in ["../migrations/sqlite", "../migrations/postgres"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
