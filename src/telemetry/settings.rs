//! Where traces go and which are kept: the standard OpenTelemetry environment variables, each
//! also a command-line flag, resolved into one validated [`ExportSettings`].

use std::time::Duration;

use clap::ValueEnum;

/// Spans waiting for export beyond which new ones are dropped (and counted), so a slow or
/// absent collector costs bounded memory.
const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP over gRPC, usually port 4317.
    #[value(name = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies, usually port 4318.
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// The samplers of OTEL_TRACES_SAMPLER that cstore implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SamplerName {
    AlwaysOn,
    AlwaysOff,
    #[value(name = "traceidratio")]
    TraceIdRatio,
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    #[value(name = "parentbased_traceidratio")]
    ParentbasedTraceIdRatio,
}

/// OpenTelemetry export flags shared by `serve` and `operator`. Each reads the standard
/// variable of the OpenTelemetry specification; OTEL_SERVICE_NAME and
/// OTEL_RESOURCE_ATTRIBUTES are read too (they describe the process, not the export).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct OtlpArgs {
    /// OTLP endpoint of an OpenTelemetry collector (http://HOST:4317 for gRPC, http://HOST:4318
    /// for HTTP, where /v1/traces is appended) [default: none, nothing is exported]
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// OTLP endpoint for traces only, used exactly as given; wins over --otlp-endpoint [default: none]
    #[arg(long = "otlp-traces-endpoint", env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_name = "URL")]
    pub traces_endpoint: Option<String>,

    /// OTLP transport [default: grpc]
    #[arg(long = "otlp-protocol", env = "OTEL_EXPORTER_OTLP_PROTOCOL", value_name = "PROTOCOL")]
    pub protocol: Option<OtlpProtocol>,

    /// OTLP transport for traces only; wins over --otlp-protocol [default: none]
    #[arg(long = "otlp-traces-protocol", env = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", value_name = "PROTOCOL")]
    pub traces_protocol: Option<OtlpProtocol>,

    /// Milliseconds one export may take before its spans count as dropped [default: 10000]
    #[arg(long = "otlp-timeout-ms", env = "OTEL_EXPORTER_OTLP_TIMEOUT", value_name = "MILLISECONDS")]
    pub timeout_ms: Option<u64>,

    /// Spans waiting for export beyond which new spans are dropped and counted [default: 2048]
    #[arg(long = "otlp-max-queue-size", env = "OTEL_BSP_MAX_QUEUE_SIZE", value_name = "SPANS")]
    pub max_queue_size: Option<usize>,

    /// Which traces to keep. For the store it sets the fraction of commands traced (always_on
    /// 1, always_off 0, the ratio samplers their argument), which --trace-sample-ratio
    /// overrides [default: none, so the store traces its traceSampleRatio of commands and the
    /// operator every reconcile]
    #[arg(long = "traces-sampler", env = "OTEL_TRACES_SAMPLER", value_name = "SAMPLER")]
    pub sampler: Option<SamplerName>,

    /// The ratio, from 0 to 1, of traceidratio and parentbased_traceidratio [default: 1]
    #[arg(long = "traces-sampler-arg", env = "OTEL_TRACES_SAMPLER_ARG", value_name = "RATIO")]
    pub sampler_arg: Option<String>,
}

/// A configuration the export cannot work with.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("invalid OTLP endpoint {0:?}: give a URL starting with http:// (TLS to the collector is not supported)")]
    Endpoint(String),
    #[error("invalid OTEL_TRACES_SAMPLER_ARG {0:?}: a ratio from 0 to 1 is expected")]
    SamplerArg(String),
    #[error("invalid OTEL_BSP_MAX_QUEUE_SIZE 0: at least one span must fit")]
    QueueSize,
}

/// The sampling decision for root spans.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Fraction of root spans kept, 0 to 1.
    pub ratio: f64,
    /// Whether a span with a parent follows its parent's decision.
    pub parent_based: bool,
}

/// Everything needed to export spans.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSettings {
    /// The full URL spans are sent to.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub timeout: Duration,
    pub max_queue_size: usize,
}

impl OtlpArgs {
    /// The export, or None when no endpoint is configured (then nothing is exported and the
    /// OpenTelemetry layer is not installed at all).
    pub fn export(&self) -> Result<Option<ExportSettings>, SettingsError> {
        let protocol = self.traces_protocol.or(self.protocol).unwrap_or(OtlpProtocol::Grpc);
        let endpoint = match (&self.traces_endpoint, &self.endpoint) {
            (Some(traces), _) => traces.clone(),
            // The generic variable names the collector; over HTTP each signal has its own path.
            (None, Some(base)) if protocol == OtlpProtocol::HttpProtobuf => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, Some(base)) => base.clone(),
            (None, None) => return Ok(None),
        };
        let has_host = endpoint.strip_prefix("http://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        if !has_host || endpoint.chars().any(char::is_whitespace) {
            return Err(SettingsError::Endpoint(endpoint));
        }
        let max_queue_size = self.max_queue_size.unwrap_or(DEFAULT_MAX_QUEUE_SIZE);
        if max_queue_size == 0 {
            return Err(SettingsError::QueueSize);
        }
        Ok(Some(ExportSettings {
            endpoint,
            protocol,
            timeout: Duration::from_millis(self.timeout_ms.unwrap_or(10_000)),
            max_queue_size,
        }))
    }

    /// The configured sampler; `default` when OTEL_TRACES_SAMPLER is not set.
    pub fn sampling(&self, default: Sampling) -> Result<Sampling, SettingsError> {
        let Some(name) = self.sampler else { return Ok(default) };
        let ratio = || match &self.sampler_arg {
            None => Ok(1.0),
            Some(text) => match text.trim().parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
                _ => Err(SettingsError::SamplerArg(text.clone())),
            },
        };
        let (ratio, parent_based) = match name {
            SamplerName::AlwaysOn => (1.0, false),
            SamplerName::AlwaysOff => (0.0, false),
            SamplerName::TraceIdRatio => (ratio()?, false),
            SamplerName::ParentbasedAlwaysOn => (1.0, true),
            SamplerName::ParentbasedAlwaysOff => (0.0, true),
            SamplerName::ParentbasedTraceIdRatio => (ratio()?, true),
        };
        Ok(Sampling { ratio, parent_based })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        otlp: OtlpArgs,
    }

    fn parse(args: &[&str]) -> OtlpArgs {
        Cli::try_parse_from(std::iter::once("cstore").chain(args.iter().copied())).unwrap().otlp
    }

    const DEFAULT: Sampling = Sampling { ratio: 1.0, parent_based: true };

    #[test]
    fn no_endpoint_means_no_export() {
        assert_eq!(parse(&[]).export(), Ok(None));
    }

    #[test]
    fn endpoints_follow_the_specification() {
        let export = |args: &[&str]| parse(args).export().unwrap().unwrap();
        let grpc = export(&["--otlp-endpoint", "http://collector:4317"]);
        assert_eq!((grpc.endpoint.as_str(), grpc.protocol), ("http://collector:4317", OtlpProtocol::Grpc));
        let http = export(&["--otlp-endpoint", "http://collector:4318/", "--otlp-protocol", "http/protobuf"]);
        assert_eq!(http.endpoint, "http://collector:4318/v1/traces");
        let traces_only = export(&[
            "--otlp-endpoint",
            "http://a:4318",
            "--otlp-traces-endpoint",
            "http://b:4318/custom",
            "--otlp-traces-protocol",
            "http/protobuf",
        ]);
        assert_eq!(
            (traces_only.endpoint.as_str(), traces_only.protocol),
            ("http://b:4318/custom", OtlpProtocol::HttpProtobuf)
        );
        assert_eq!(grpc.max_queue_size, DEFAULT_MAX_QUEUE_SIZE);
        assert_eq!(grpc.timeout, Duration::from_secs(10));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        for endpoint in ["https://collector:4317", "collector:4317", "http://", "http:///path", "http://a b"] {
            assert_eq!(
                parse(&["--otlp-endpoint", endpoint]).export(),
                Err(SettingsError::Endpoint(endpoint.to_owned())),
                "{endpoint}"
            );
        }
        assert_eq!(
            parse(&["--otlp-endpoint", "http://c:1", "--otlp-max-queue-size", "0"]).export(),
            Err(SettingsError::QueueSize)
        );
        for arg in ["1.5", "-0.1", "half", "NaN"] {
            let args = parse(&["--traces-sampler", "traceidratio", &format!("--traces-sampler-arg={arg}")]);
            assert_eq!(args.sampling(DEFAULT), Err(SettingsError::SamplerArg(arg.to_owned())), "{arg}");
        }
        assert!(Cli::try_parse_from(["cstore", "--otlp-protocol", "http/json"]).is_err());
        assert!(Cli::try_parse_from(["cstore", "--traces-sampler", "jaeger_remote"]).is_err());
    }

    #[test]
    fn samplers_map_to_a_ratio() {
        let sampling = |args: &[&str]| parse(args).sampling(DEFAULT).unwrap();
        assert_eq!(sampling(&[]), DEFAULT);
        assert_eq!(sampling(&["--traces-sampler", "always_off"]), Sampling { ratio: 0.0, parent_based: false });
        assert_eq!(sampling(&["--traces-sampler", "always_on"]), Sampling { ratio: 1.0, parent_based: false });
        assert_eq!(
            sampling(&["--traces-sampler", "parentbased_traceidratio", "--traces-sampler-arg", "0.25"]),
            Sampling { ratio: 0.25, parent_based: true }
        );
        assert_eq!(sampling(&["--traces-sampler", "traceidratio"]), Sampling { ratio: 1.0, parent_based: false });
        assert_eq!(
            sampling(&["--traces-sampler", "parentbased_always_off"]),
            Sampling { ratio: 0.0, parent_based: true }
        );
    }
}
