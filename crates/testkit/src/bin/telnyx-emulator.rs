//! Run the Telnyx emulator by hand, with a demo account, to try trunkline without Telnyx.
//!
//! ```text
//! cargo run -p trunkline-testkit --bin telnyx-emulator -- --port 7403
//! ```
//! It prints the API keys it created and the environment for `trunkline`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use trunkline_testkit::telnyx::{EmulatorOptions, TelnyxEmulator};

#[derive(Debug, Parser)]
#[command(about = "In-memory Telnyx API v2 emulator for trying trunkline")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (stands in for api.telnyx.com); 0 picks a free port.
    #[arg(long, default_value_t = 7403)]
    port: u16,
    /// How many phone numbers to give the demo account.
    #[arg(long, default_value_t = 25)]
    numbers: usize,
    /// actix workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let emulator = TelnyxEmulator::start_with(EmulatorOptions {
        addr: SocketAddr::new(args.host, args.port),
        workers: args.workers,
        hang_for: Duration::from_secs(60),
    })?;
    let demo = emulator.add_account("trunkline demo");
    let no_numbers = emulator.add_api_key(&demo.id, false);
    let numbers = emulator.seed_numbers(&demo.id, args.numbers);
    let (foreign, connection, foreign_numbers) =
        emulator.add_account_on_foreign_connection("numbers on another connection", 3);

    // These are the emulator's own throw-away keys: printing them is the point.
    println!("Telnyx emulator running at {}", emulator.api_base());
    println!();
    println!("export TRUNKLINE_TELNYX_API_BASE={}", emulator.api_base());
    println!();
    println!("demo account {}", demo.id);
    println!("  API key                 {}", demo.api_key);
    println!("  key without numbers     {}", no_numbers.key);
    println!(
        "  {} numbers, first {} (id {})",
        numbers.len(),
        numbers
            .first()
            .map(|n| n.phone_number.clone())
            .unwrap_or_default(),
        numbers.first().map(|n| n.id.clone()).unwrap_or_default()
    );
    println!(
        "account with numbers on someone else's connection {}",
        foreign.id
    );
    println!("  API key                 {}", foreign.api_key);
    println!(
        "  connection {connection} (\"Acme PBX\"), {} numbers",
        foreign_numbers.len()
    );
    println!();
    println!("Ctrl-C to stop.");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tokio::signal::ctrl_c())?;
    drop(emulator);
    Ok(())
}
