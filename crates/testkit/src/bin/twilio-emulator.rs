//! Run the Twilio emulator by hand, with a demo account, to try trunkline without Twilio.
//!
//! ```text
//! cargo run -p trunkline-testkit --bin twilio-emulator -- --api-port 7401 --trunking-port 7402
//! ```
//! It prints the credentials it created and the environment for `trunkline`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use trunkline_testkit::twilio::{EmulatorOptions, KeyPermissions, TwilioEmulator};

#[derive(Debug, Parser)]
#[command(about = "In-memory Twilio emulator (2010 API + Trunking v1) for trying trunkline")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port for the 2010 API (stands in for api.twilio.com); 0 picks a free port.
    #[arg(long, default_value_t = 7401)]
    api_port: u16,
    /// Port for Trunking v1 (stands in for trunking.twilio.com); 0 picks a free port.
    #[arg(long, default_value_t = 7402)]
    trunking_port: u16,
    /// How many phone numbers to give the demo account.
    #[arg(long, default_value_t = 25)]
    numbers: usize,
    /// actix workers per listener.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let emulator = TwilioEmulator::start_with(EmulatorOptions {
        api_addr: SocketAddr::new(args.host, args.api_port),
        trunking_addr: SocketAddr::new(args.host, args.trunking_port),
        workers: args.workers,
        hang_for: Duration::from_secs(60),
    })?;
    let demo = emulator.add_account("trunkline demo");
    let standard = emulator.add_api_key(&demo.sid, true);
    let restricted = emulator.add_api_key_with(
        &demo.sid,
        KeyPermissions {
            numbers: true,
            trunking: false,
            main: false,
        },
    );
    let numbers = emulator.seed_numbers(&demo.sid, args.numbers);
    let no_trunking = emulator.add_account_without_trunking("no trunking");
    let no_trunking_key = emulator.add_api_key(&no_trunking.sid, true);
    emulator.seed_numbers(&no_trunking.sid, 3);

    // These are the emulator's own throw-away credentials: printing them is the point.
    println!("Twilio emulator running");
    println!("  api      {}", emulator.api_base());
    println!("  trunking {}", emulator.trunking_base());
    println!();
    println!("export TRUNKLINE_TWILIO_API_BASE={}", emulator.api_base());
    println!(
        "export TRUNKLINE_TWILIO_TRUNKING_BASE={}",
        emulator.trunking_base()
    );
    println!();
    println!(
        "demo account      {}  auth token {}",
        demo.sid, demo.auth_token
    );
    println!(
        "  standard key    {}  secret {}",
        standard.sid, standard.secret
    );
    println!(
        "  restricted key  {}  secret {}  (no trunking)",
        restricted.sid, restricted.secret
    );
    println!(
        "  {} numbers, first {} ({})",
        numbers.len(),
        numbers
            .first()
            .map(|n| n.e164.to_string())
            .unwrap_or_default(),
        numbers
            .first()
            .map(|n| n.sid.to_string())
            .unwrap_or_default()
    );
    println!("account without trunking {}", no_trunking.sid);
    println!(
        "  standard key    {}  secret {}",
        no_trunking_key.sid, no_trunking_key.secret
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
