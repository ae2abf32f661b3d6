//! `spanhouse export`: `GET /api/v1/export` of a server, its body streamed to stdout as it
//! arrives (constant memory, like the server's side).

use std::io::Write;

use anyhow::{Context as _, bail};
use clap::ValueEnum as _;
use futures_util::StreamExt as _;

use super::Endpoint;
use crate::config::ExportArgs;

/// The export's URL: the server's, `/api/v1/export`, and the arguments as parameters.
pub fn export_url(base: &str, args: &ExportArgs) -> anyhow::Result<reqwest::Url> {
    let base = base.trim_end_matches('/');
    let mut url = reqwest::Url::parse(&format!("{base}/api/v1/export"))
        .with_context(|| format!("--url {base:?} is not a URL"))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(format) = args.format.to_possible_value() {
            query.append_pair("format", format.get_name());
        }
        for (name, value) in [
            ("filter", &args.filter),
            ("start", &args.start),
            ("end", &args.end),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

/// Runs the export, writing the body to stdout.
pub async fn run(endpoint: &Endpoint, args: &ExportArgs) -> anyhow::Result<()> {
    // Blocking writes: the command runs nothing else, and a slow reader of stdout should
    // slow the download down.
    let mut stdout = std::io::stdout();
    match export(endpoint, args, &mut stdout).await {
        // A reader that stopped early (`| head`) is no failure of the export.
        Err(error) if is_broken_pipe(&error) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Sends the export request and copies its body to `out` chunk by chunk. A 4xx or 5xx answer
/// is an error carrying the server's message; a body cut short is an error too.
pub async fn export(
    endpoint: &Endpoint,
    args: &ExportArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let base = &endpoint.base_url;
    let url = export_url(base, args)?;
    let response = endpoint
        .client()?
        .get(url.clone())
        .bearer_auth(&endpoint.token)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!(
            "the server answered {status}: {}",
            error_message(&body).unwrap_or(body)
        );
    }
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.context("the export was cut short (the server or the connection failed)")?;
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}

/// The message of the API's error body `{"error": {"status", "message"}}`.
fn error_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value["error"]["message"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExportFormatArg;

    fn args() -> ExportArgs {
        ExportArgs {
            format: ExportFormatArg::Csv,
            filter: Some("user_id == \"u 1\" and total_cost > 0.5".into()),
            start: Some("2024-05-01T00:00:00Z".into()),
            end: None,
            url: None,
            token: None,
        }
    }

    #[test]
    fn the_url_carries_the_arguments_encoded() {
        let url = export_url("http://127.0.0.1:4318/", &args()).unwrap();
        assert_eq!(url.path(), "/api/v1/export");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("format".to_owned(), "csv".to_owned()),
                (
                    "filter".to_owned(),
                    "user_id == \"u 1\" and total_cost > 0.5".to_owned()
                ),
                ("start".to_owned(), "2024-05-01T00:00:00Z".to_owned()),
            ]
        );
        assert!(export_url("not a url", &args()).is_err());
    }

    #[test]
    fn the_api_error_message_is_shown() {
        let body = r#"{"error":{"status":400,"message":"filter: column 3: oops"}}"#;
        assert_eq!(error_message(body).unwrap(), "filter: column 3: oops");
        assert_eq!(error_message("plain"), None);
    }
}
