//! The commands that talk to a running server over its HTTP API, as any client would, rather
//! than to the store: `import` (OTLP files to its receiver) and `export` (`GET /api/v1/export`
//! to stdout). No store is opened.

pub mod export;
pub mod import;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
            None => default_url(config.http_listen),
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

    /// An HTTP client for this server (no overall timeout: an export streams for as long as
    /// it takes; requests that should end soon set their own).
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("cannot build an HTTP client")
    }
}

/// The server's address as a URL: the configured `--http-listen`, reached on loopback when it
/// listens on every interface.
pub fn default_url(http_listen: SocketAddr) -> String {
    let ip = match http_listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, http_listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_on_every_interface_is_reached_on_loopback() {
        assert_eq!(
            default_url("0.0.0.0:4318".parse().unwrap()),
            "http://127.0.0.1:4318"
        );
        assert_eq!(
            default_url("[::]:9000".parse().unwrap()),
            "http://[::1]:9000"
        );
        assert_eq!(
            default_url("10.0.0.5:4318".parse().unwrap()),
            "http://10.0.0.5:4318"
        );
    }
}
