use clap::Parser as _;
use spanhouse::config::{Cli, Command, Config, StorageKind};
use tracing_subscriber::EnvFilter;

/// `nice` of the async runtime's threads when the server stores spans in the embedded store:
/// they receive, decode, normalize and compress requests, work all of them share, while every
/// write goes through the store's one writer thread, left at the default priority. On a machine
/// whose cores are all busy the writer then gets a core as soon as it has work. 5: the
/// runtime's threads keep a third of the writer's weight when both want a core.
const RUNTIME_NICE: i32 = 5;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SPANHOUSE_LOG")
                .or_else(|_| EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match Config::resolve(&cli.global) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("spanhouse: error: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(cli.command, Command::Serve) && config.storage == StorageKind::Sqlite {
        builder.on_thread_start(|| spanhouse::store::sqlite::lower_thread_priority(RUNTIME_NICE));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("spanhouse: error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spanhouse: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// mimalloc: per-thread heaps without lock contention, and freed memory is reused across
/// threads and returned to the system. With glibc's malloc, either its per-thread arenas
/// fragmented (~150 MiB more resident memory under a flood) or, limited to two, its locks
/// were contended (a sixth of the writer's time in a profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(&config).await,
        Command::Project(command) => spanhouse::admin::project(&config, command).await,
        Command::Token(command) => spanhouse::admin::token(&config, command).await,
        Command::Clickhouse(command) => spanhouse::admin::clickhouse(&config, command).await,
        Command::Import(args) => {
            let endpoint = spanhouse::client::Endpoint::resolve(
                &config,
                args.url.as_deref(),
                args.token.as_deref(),
            )?;
            spanhouse::client::import::run(endpoint, &args).await
        }
        Command::Export(args) => {
            let endpoint = spanhouse::client::Endpoint::resolve(
                &config,
                args.url.as_deref(),
                args.token.as_deref(),
            )?;
            spanhouse::client::export::run(&endpoint, &args).await
        }
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let server = spanhouse::server::start(config).await?;
    wait_for_stop_signal().await?;
    tracing::info!("stop signal received; finishing requests in flight");
    server.shutdown().await
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
