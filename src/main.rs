//! The `cstore` binary: parses the command line and hands over to the library.

use clap::{Parser, Subcommand};

/// A concurrency-aware key-value store that speaks the Redis protocol.
#[derive(Parser)]
#[command(name = "cstore", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {}
}
