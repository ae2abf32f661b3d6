//! The commands that talk to a running server over its HTTP API rather than to the store:
//! `import` (OTLP files to its receiver). They use only what any client could.

pub mod import;

use anyhow::Context as _;

use crate::config::Config;

/// A server and the token to present to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server's base URL, without a trailing slash (`http://127.0.0.1:4318`).
    pub base_url: String,
    /// The bearer token.
    pub token: String,
}

impl Endpoint {
    /// `--url`, else this configuration's `--http-listen`; `--token`, else `SPANHOUSE_TOKEN`
    /// (clap reads the environment into the same argument).
    pub fn resolve(
        config: &Config,
        url: Option<&str>,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let base_url = match url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                // A server listening on every address is reached on this machine's loopback.
                let mut address = config.http_listen;
                if address.ip().is_unspecified() {
                    address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{address}")
            }
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            anyhow::bail!("--url must be an http:// or https:// URL, not {base_url:?}");
        }
        let token = token
            .filter(|token| !token.trim().is_empty())
            .context("a token is needed: --token TOKEN or SPANHOUSE_TOKEN")?
            .trim()
            .to_owned();
        Ok(Self { base_url, token })
    }

    /// An HTTP client for this server.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .context("cannot build an HTTP client")
    }
}
