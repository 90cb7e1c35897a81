//! Run the LiveKit emulator by hand, to try trunkline without a LiveKit server.
//!
//! ```text
//! cargo run -p trunkline-testkit --bin livekit-emulator -- --port 7880
//! ```
//! It prints the API key pair and the environment for `trunkline`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use trunkline_testkit::livekit::{EmulatorOptions, LiveKitEmulator};

#[derive(Debug, Parser)]
#[command(about = "In-memory LiveKit emulator (SIP trunks, dispatch rules, agent dispatch)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port; 0 picks a free port.
    #[arg(long, default_value_t = 7880)]
    port: u16,
    /// API key to accept (generated when absent; give it with --api-secret).
    #[arg(long, requires = "api_secret")]
    api_key: Option<String>,
    /// Secret of --api-key.
    #[arg(long, requires = "api_key")]
    api_secret: Option<String>,
    /// actix workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let emulator = LiveKitEmulator::start_with(EmulatorOptions {
        addr: SocketAddr::new(args.host, args.port),
        workers: args.workers,
        hang_for: Duration::from_secs(60),
        api_key: args.api_key.zip(args.api_secret),
    })?;

    // These are the emulator's own throw-away credentials: printing them is the point.
    println!("LiveKit emulator running at {}", emulator.url());
    println!();
    println!("export TRUNKLINE_LIVEKIT_URL={}", emulator.url());
    println!("export TRUNKLINE_LIVEKIT_API_KEY={}", emulator.api_key());
    println!(
        "export TRUNKLINE_LIVEKIT_API_SECRET={}",
        emulator.api_secret()
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
