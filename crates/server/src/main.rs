use std::process::ExitCode;

fn main() -> ExitCode {
    // First thing: a TLS client (reqwest with rustls-no-provider) panics without a provider.
    trunkline_server::install_crypto_provider();
    trunkline_server::cli::main()
}
