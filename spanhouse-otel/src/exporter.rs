//! An OTLP span exporter pointed at spanhouse: endpoint and transport from arguments or the
//! standard `OTEL_EXPORTER_OTLP_*` variables, the token as `authorization: Bearer`, the project
//! as `x-project-id`.
//!
//! Precedence, for each setting: the builder's argument, then the environment
//! (`OTEL_EXPORTER_OTLP_TRACES_*` before `OTEL_EXPORTER_OTLP_*`; `SPANHOUSE_TOKEN`,
//! `SPANHOUSE_PROJECT`), then the default (http/protobuf to `http://localhost:4318/v1/traces`).
//! Headers in `OTEL_EXPORTER_OTLP_HEADERS` are sent too, and win over the builder's on the
//! same name (opentelemetry-otlp merges them last).

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{
    Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};

/// Chooses the transport: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then this.
pub const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const ENV_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// The spanhouse token, when the builder is given none.
pub const ENV_TOKEN: &str = "SPANHOUSE_TOKEN";
/// The project (id or name) the token belongs to, when the builder is given none.
pub const ENV_PROJECT: &str = "SPANHOUSE_PROJECT";

const AUTHORIZATION: &str = "authorization";
const PROJECT_HEADER: &str = "x-project-id";
const TRACES_PATH: &str = "/v1/traces";

/// How spans travel to spanhouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`), port 4318 by default.
    HttpProtobuf,
    /// OTLP/gRPC (`grpc`), port 4317 by default. Build the exporter inside a Tokio runtime,
    /// which must keep running while spans are exported.
    Grpc,
}

impl Transport {
    /// Reads an `OTEL_EXPORTER_OTLP_PROTOCOL` value.
    pub fn parse(text: &str) -> Result<Self, ExporterError> {
        match text.trim() {
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "grpc" => Ok(Self::Grpc),
            other => Err(ExporterError::UnsupportedProtocol(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("unsupported OTLP protocol {0:?}: spanhouse-otel exports http/protobuf or grpc")]
    UnsupportedProtocol(String),
    #[error("the gRPC exporter needs a Tokio runtime: build it inside one (or use http/protobuf)")]
    NoTokioRuntime,
    #[error("the {header} header cannot hold the value given")]
    InvalidHeader { header: &'static str },
    #[error(transparent)]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Builds an [`opentelemetry_otlp::SpanExporter`] that sends to spanhouse.
///
/// ```no_run
/// use spanhouse_otel::{ExporterBuilder, Transport};
///
/// let exporter = ExporterBuilder::new()
///     .endpoint("http://127.0.0.1:4318")
///     .token("sh_...")
///     .transport(Transport::HttpProtobuf)
///     .build()?;
/// # Ok::<(), spanhouse_otel::ExporterError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ExporterBuilder {
    endpoint: Option<String>,
    token: Option<String>,
    project: Option<String>,
    transport: Option<Transport>,
    timeout: Option<Duration>,
}

/// The settings an exporter is built with, once arguments and environment are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedExporter {
    pub transport: Transport,
    /// `None`: opentelemetry-otlp reads `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` or its default.
    pub endpoint: Option<String>,
    /// Header name and value, lowercase names.
    pub headers: Vec<(&'static str, String)>,
}

impl ExporterBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where spanhouse listens. For http/protobuf the base URL (`http://127.0.0.1:4318`;
    /// `/v1/traces` is appended when the URL has no path); for gRPC the server's URL
    /// (`http://127.0.0.1:4317`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The token (an `ingest` token is enough), sent as `authorization: Bearer TOKEN`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The project (id or name), sent as `x-project-id`; spanhouse checks it names the
    /// token's project.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How long one export may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Applies the precedence rules, reading the environment through `env`.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedExporter, ExporterError> {
        let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let transport = match self.transport {
            Some(transport) => transport,
            None => match set(ENV_TRACES_PROTOCOL).or_else(|| set(ENV_PROTOCOL)) {
                Some(text) => Transport::parse(&text)?,
                None => Transport::HttpProtobuf,
            },
        };
        let endpoint = self.endpoint.as_deref().map(|endpoint| match transport {
            Transport::HttpProtobuf => http_traces_url(endpoint),
            Transport::Grpc => endpoint.to_owned(),
        });
        let mut headers = Vec::new();
        if let Some(token) = self.token.clone().or_else(|| set(ENV_TOKEN)) {
            headers.push((AUTHORIZATION, format!("Bearer {}", token.trim())));
        }
        if let Some(project) = self.project.clone().or_else(|| set(ENV_PROJECT)) {
            headers.push((PROJECT_HEADER, project.trim().to_owned()));
        }
        Ok(ResolvedExporter {
            transport,
            endpoint,
            headers,
        })
    }

    /// Builds the exporter, reading the process environment. For gRPC, call it inside a Tokio
    /// runtime.
    pub fn build(self) -> Result<SpanExporter, ExporterError> {
        let resolved = self.resolve(|name| std::env::var(name).ok())?;
        let exporter = match resolved.transport {
            Transport::HttpProtobuf => {
                let headers: HashMap<String, String> = resolved
                    .headers
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), value.clone()))
                    .collect();
                let mut builder = SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_headers(headers);
                if let Some(endpoint) = resolved.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(timeout) = self.timeout {
                    builder = builder.with_timeout(timeout);
                }
                builder.build()?
            }
            Transport::Grpc => {
                // tonic spawns its connection task at once, and panics without a runtime.
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(ExporterError::NoTokioRuntime);
                }
                let mut headers = http::HeaderMap::new();
                for (name, value) in &resolved.headers {
                    let value = http::HeaderValue::from_str(value)
                        .map_err(|_| ExporterError::InvalidHeader { header: name })?;
                    headers.insert(*name, value);
                }
                let mut builder = SpanExporter::builder()
                    .with_tonic()
                    .with_metadata(MetadataMap::from_headers(headers));
                if let Some(endpoint) = resolved.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(timeout) = self.timeout {
                    builder = builder.with_timeout(timeout);
                }
                builder.build()?
            }
        };
        Ok(exporter)
    }
}

/// `http://host:4318` → `http://host:4318/v1/traces`; a URL with a path is kept as it is.
fn http_traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}{TRACES_PATH}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn defaults_leave_the_endpoint_to_opentelemetry_otlp() {
        let resolved = ExporterBuilder::new().resolve(env(&[])).unwrap();
        assert_eq!(resolved.transport, Transport::HttpProtobuf);
        assert_eq!(resolved.endpoint, None);
        assert!(resolved.headers.is_empty());
    }

    #[test]
    fn http_endpoints_get_the_traces_path_unless_they_have_one() {
        let resolve = |endpoint: &str| {
            ExporterBuilder::new()
                .endpoint(endpoint)
                .resolve(env(&[]))
                .unwrap()
                .endpoint
                .unwrap()
        };
        assert_eq!(
            resolve("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            resolve("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            resolve("https://example.test/api/public/otel/v1/traces"),
            "https://example.test/api/public/otel/v1/traces"
        );
    }

    #[test]
    fn grpc_endpoints_are_kept() {
        let resolved = ExporterBuilder::new()
            .endpoint("http://127.0.0.1:4317")
            .transport(Transport::Grpc)
            .resolve(env(&[]))
            .unwrap();
        assert_eq!(resolved.endpoint.as_deref(), Some("http://127.0.0.1:4317"));
    }

    #[test]
    fn the_protocol_comes_from_arguments_then_the_traces_variable_then_the_general_one() {
        let both = env(&[
            (ENV_TRACES_PROTOCOL, "grpc"),
            (ENV_PROTOCOL, "http/protobuf"),
        ]);
        let resolved = ExporterBuilder::new().resolve(&both).unwrap();
        assert_eq!(resolved.transport, Transport::Grpc);
        let argument = ExporterBuilder::new().transport(Transport::HttpProtobuf);
        assert_eq!(
            argument.resolve(&both).unwrap().transport,
            Transport::HttpProtobuf
        );
        let general = ExporterBuilder::new()
            .resolve(env(&[(ENV_PROTOCOL, "grpc")]))
            .unwrap();
        assert_eq!(general.transport, Transport::Grpc);
    }

    #[test]
    fn grpc_outside_a_tokio_runtime_is_an_error_not_a_panic() {
        let error = ExporterBuilder::new()
            .transport(Transport::Grpc)
            .build()
            .unwrap_err();
        assert!(matches!(error, ExporterError::NoTokioRuntime), "{error}");
    }

    #[test]
    fn http_json_is_refused_with_a_reason() {
        let error = ExporterBuilder::new()
            .resolve(env(&[(ENV_PROTOCOL, "http/json")]))
            .unwrap_err();
        assert!(error.to_string().contains("http/json"), "{error}");
    }

    #[test]
    fn token_and_project_headers_from_arguments_or_the_environment() {
        let variables = env(&[(ENV_TOKEN, "sh_env"), (ENV_PROJECT, "default")]);
        let from_env = ExporterBuilder::new().resolve(&variables).unwrap();
        assert_eq!(
            from_env.headers,
            vec![
                ("authorization", "Bearer sh_env".to_owned()),
                ("x-project-id", "default".to_owned())
            ]
        );
        let from_arguments = ExporterBuilder::new()
            .token("sh_arg")
            .project("p1")
            .resolve(&variables)
            .unwrap();
        assert_eq!(
            from_arguments.headers,
            vec![
                ("authorization", "Bearer sh_arg".to_owned()),
                ("x-project-id", "p1".to_owned())
            ]
        );
    }
}
