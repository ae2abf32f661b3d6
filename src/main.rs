use clap::Parser as _;
use spanhouse::config::{Cli, Command, Config};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("spanhouse: error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main())
}

/// mimalloc: per-thread heaps without lock contention, and freed memory is reused across
/// threads and returned to the system. With glibc's malloc, either its per-thread arenas
/// fragmented (~150 MiB more resident memory under a flood) or, limited to two, its locks
/// were contended (a sixth of the writer's time in a profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn async_main() -> std::process::ExitCode {
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
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spanhouse: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::resolve(&cli.global)?;
    match cli.command {
        Command::Serve => serve(&config).await,
        Command::Project(command) => spanhouse::admin::project(&config, command).await,
        Command::Token(command) => spanhouse::admin::token(&config, command).await,
        Command::Clickhouse(command) => spanhouse::admin::clickhouse(&config, command).await,
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
