//! Rebuild when a migration changes: `embed_migrations!` reads the folder at compile time,
//! and cargo does not know about files a proc macro reads.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
