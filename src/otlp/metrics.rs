//! The OTLP metrics signal: acknowledged and counted, never stored (SPEC §3). SDKs and LLM
//! libraries (OpenLIT, Logfire) export metrics by default; spanhouse answers them so that they
//! log no errors, and counts their data points per project.
//!
//! Only the structure is read: every data point of every metric, whatever its type. The values
//! are not looked at, so a JSON body is checked for OTLP's shape down to its data points and no
//! deeper.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message as _;
use serde_json::Value;

use super::json::{JsonError, Result, array, object};
use super::{DecodeError, Encoding};

/// The data points of a protobuf request, all metric types together.
pub fn data_points(request: &ExportMetricsServiceRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .map(|metric| match &metric.data {
            None => 0,
            Some(Data::Gauge(gauge)) => gauge.data_points.len(),
            Some(Data::Sum(sum)) => sum.data_points.len(),
            Some(Data::Histogram(histogram)) => histogram.data_points.len(),
            Some(Data::ExponentialHistogram(histogram)) => histogram.data_points.len(),
            Some(Data::Summary(summary)) => summary.data_points.len(),
        } as u64)
        .sum()
}

/// Decodes a metrics export body in either encoding; returns its number of data points.
pub fn decode_data_points(
    encoding: Encoding,
    body: &[u8],
) -> std::result::Result<u64, DecodeError> {
    match encoding {
        Encoding::Protobuf => Ok(data_points(&ExportMetricsServiceRequest::decode(body)?)),
        Encoding::Json => Ok(json_data_points(body)?),
    }
}

/// The response to a metrics export: always a full success (nothing is stored to reject).
pub fn encode_metrics_response(encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => ExportMetricsServiceResponse::default().encode_to_vec(),
        Encoding::Json => b"{}".to_vec(),
    }
}

/// The metric kinds of OTLP/JSON, each holding `dataPoints`.
const KINDS: [(&str, &str); 5] = [
    ("gauge", "gauge"),
    ("sum", "sum"),
    ("histogram", "histogram"),
    ("exponentialHistogram", "exponential_histogram"),
    ("summary", "summary"),
];

/// Counts the data points of an OTLP/JSON metrics body, checking its shape on the way.
fn json_data_points(body: &[u8]) -> Result<u64> {
    let value: Value = serde_json::from_slice(body).map_err(|error| JsonError {
        path: "$".into(),
        problem: error.to_string(),
    })?;
    let mut points = 0u64;
    let root = object(&value, "$")?;
    for (r, resource) in array(root, "$", "resourceMetrics", "resource_metrics")?
        .iter()
        .enumerate()
    {
        let path = format!("$.resourceMetrics[{r}]");
        let resource = object(resource, &path)?;
        for (s, scope) in array(resource, &path, "scopeMetrics", "scope_metrics")?
            .iter()
            .enumerate()
        {
            let path = format!("{path}.scopeMetrics[{s}]");
            let scope = object(scope, &path)?;
            for (m, metric) in array(scope, &path, "metrics", "metrics")?
                .iter()
                .enumerate()
            {
                let path = format!("{path}.metrics[{m}]");
                let metric = object(metric, &path)?;
                for (camel, snake) in KINDS {
                    let Some(data) = super::json::field(metric, camel, snake) else {
                        continue;
                    };
                    let path = format!("{path}.{camel}");
                    let data = object(data, &path)?;
                    points += array(data, &path, "dataPoints", "data_points")?.len() as u64;
                }
            }
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics,
    };
    use proptest::prelude::*;

    #[test]
    fn protobuf_points_of_every_kind_are_counted() {
        let metric = |data| Metric {
            name: "m".into(),
            data: Some(data),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        metric(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); 2],
                        })),
                        metric(Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint::default(); 3],
                            aggregation_temporality: 1,
                        })),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let body = request.encode_to_vec();
        assert_eq!(decode_data_points(Encoding::Protobuf, &body).unwrap(), 5);
    }

    #[test]
    fn json_points_are_counted_in_either_spelling() {
        let body = br#"{"resourceMetrics":[{"resource":{},"scopeMetrics":[{"metrics":[
            {"name":"a","sum":{"dataPoints":[{"asInt":"1"},{"asInt":"2"}],"isMonotonic":true}},
            {"name":"b","exponential_histogram":{"data_points":[{}]}},
            {"name":"c","summary":{"dataPoints":[]}}]}]}]}"#;
        assert_eq!(decode_data_points(Encoding::Json, body).unwrap(), 3);
        assert_eq!(decode_data_points(Encoding::Json, b"{}").unwrap(), 0);
    }

    #[test]
    fn json_of_the_wrong_shape_names_where() {
        let error = decode_data_points(
            Encoding::Json,
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":7}}]}]}]}"#,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("$.resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints"),
            "{error}"
        );
    }

    proptest! {
        #![proptest_config(crate::test_support::bounded_cases())]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_data_points(Encoding::Protobuf, &body);
            let _ = decode_data_points(Encoding::Json, &body);
        }
    }
}
