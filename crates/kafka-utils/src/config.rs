//! Client configuration from flags and env, passed through to librdkafka.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rdkafka::ClientConfig;
pub use service_kit::Secret;

/// librdkafka `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn as_rdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }
    fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// librdkafka `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_rdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A Kafka setting that cannot work, found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("KAFKA_BOOTSTRAP_SERVERS (--kafka-bootstrap-servers) is not set")]
    NoBootstrapServers,
    #[error("security protocol {0:?} needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")]
    IncompleteSasl(SecurityProtocol),
    #[error("SASL settings are given but KAFKA_SECURITY_PROTOCOL is {0:?}; use SASL_SSL (or SASL_PLAINTEXT)")]
    SaslWithoutSaslProtocol(SecurityProtocol),
    #[error("KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION must be given together")]
    HalfClientCertificate,
    #[error("KAFKA_MESSAGE_MAX_BYTES is {0}; it must be between {min} and {max}", min = MIN_MESSAGE_MAX_BYTES, max = MAX_MESSAGE_MAX_BYTES)]
    MessageMaxBytes(usize),
}

/// Smallest `message.max.bytes` kafka-utils accepts: a minimal DLQ envelope
/// (see [`crate::dlq`]) must always fit.
pub const MIN_MESSAGE_MAX_BYTES: usize = 16 * 1024;
/// librdkafka's upper bound of `message.max.bytes`.
pub const MAX_MESSAGE_MAX_BYTES: usize = 1_000_000_000;

/// Connection settings shared by every FLTS binary (`#[command(flatten)]`).
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port (required except
    /// in a stage's `--once` mode).
    #[arg(long = "kafka-bootstrap-servers", env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,

    /// Client id reported to the broker (shows in broker logs and quotas).
    #[arg(long = "kafka-client-id", env = "KAFKA_CLIENT_ID")]
    pub client_id: Option<String>,

    /// Security protocol: plaintext, ssl, sasl-plaintext or sasl-ssl.
    #[arg(long = "kafka-security-protocol", env = "KAFKA_SECURITY_PROTOCOL", value_enum, default_value = "plaintext")]
    pub security_protocol: SecurityProtocol,

    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long = "kafka-sasl-mechanism", env = "KAFKA_SASL_MECHANISM", value_enum)]
    pub sasl_mechanism: Option<SaslMechanism>,

    /// SASL username.
    #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// SASL password (never logged).
    #[arg(long = "kafka-sasl-password", env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub sasl_password: Option<Secret>,

    /// CA certificate (PEM) to verify the brokers.
    #[arg(long = "kafka-ssl-ca-location", env = "KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS.
    #[arg(long = "kafka-ssl-certificate-location", env = "KAFKA_SSL_CERTIFICATE_LOCATION")]
    pub ssl_certificate_location: Option<PathBuf>,

    /// Client private key (PEM) for mutual TLS.
    #[arg(long = "kafka-ssl-key-location", env = "KAFKA_SSL_KEY_LOCATION")]
    pub ssl_key_location: Option<PathBuf>,

    /// How long a produced message may wait for the broker's acknowledgement,
    /// retries included, before the send fails (librdkafka `message.timeout.ms`).
    /// Long enough to ride out a broker restart.
    #[arg(long = "kafka-delivery-timeout-ms", env = "KAFKA_DELIVERY_TIMEOUT_MS", default_value_t = 120_000)]
    pub delivery_timeout_ms: u64,

    /// Largest message a producer sends (librdkafka `message.max.bytes`: key,
    /// payload and headers). Keep it at or under the broker's limit; DLQ
    /// envelopes are sized to fit it.
    #[arg(long = "kafka-message-max-bytes", env = "KAFKA_MESSAGE_MAX_BYTES", default_value_t = 1_000_000)]
    pub message_max_bytes: usize,
}

impl KafkaArgs {
    /// Settings for a plaintext broker at `bootstrap` (tests, benches).
    pub fn plaintext(bootstrap: impl Into<String>) -> Self {
        KafkaArgs {
            bootstrap_servers: Some(bootstrap.into()),
            client_id: None,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            delivery_timeout_ms: 120_000,
            message_max_bytes: 1_000_000,
        }
    }

    /// The bootstrap servers, or the error that says they are missing.
    pub fn bootstrap(&self) -> Result<&str, ConfigError> {
        match self.bootstrap_servers.as_deref().map(str::trim) {
            Some(b) if !b.is_empty() => Ok(b),
            _ => Err(ConfigError::NoBootstrapServers),
        }
    }

    /// The delivery timeout as a [`Duration`].
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }

    /// Check cross-field rules; call at start-up so a bad setting fails fast.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bootstrap()?;
        let sasl_given = self.sasl_mechanism.is_some() || self.sasl_username.is_some() || self.sasl_password.is_some();
        if self.security_protocol.uses_sasl() {
            if self.sasl_mechanism.is_none() || self.sasl_username.is_none() || self.sasl_password.is_none() {
                return Err(ConfigError::IncompleteSasl(self.security_protocol));
            }
        } else if sasl_given {
            return Err(ConfigError::SaslWithoutSaslProtocol(self.security_protocol));
        }
        if self.ssl_certificate_location.is_some() != self.ssl_key_location.is_some() {
            return Err(ConfigError::HalfClientCertificate);
        }
        if !(MIN_MESSAGE_MAX_BYTES..=MAX_MESSAGE_MAX_BYTES).contains(&self.message_max_bytes) {
            return Err(ConfigError::MessageMaxBytes(self.message_max_bytes));
        }
        Ok(())
    }

    /// The librdkafka settings every client (producer, consumer, admin) shares.
    pub fn client_config(&self, default_client_id: &str) -> Result<ClientConfig, ConfigError> {
        self.validate()?;
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", self.bootstrap()?)
            .set("client.id", self.client_id.as_deref().unwrap_or(default_client_id))
            .set("security.protocol", self.security_protocol.as_rdkafka());
        if let Some(m) = self.sasl_mechanism {
            cfg.set("sasl.mechanism", m.as_rdkafka());
        }
        if let Some(u) = &self.sasl_username {
            cfg.set("sasl.username", u);
        }
        if let Some(p) = &self.sasl_password {
            cfg.set("sasl.password", p.expose());
        }
        for (key, path) in [
            ("ssl.ca.location", &self.ssl_ca_location),
            ("ssl.certificate.location", &self.ssl_certificate_location),
            ("ssl.key.location", &self.ssl_key_location),
        ] {
            if let Some(p) = path {
                cfg.set(key, p.display().to_string());
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug() {
        let mut args = KafkaArgs::plaintext("b:9092");
        args.security_protocol = SecurityProtocol::SaslSsl;
        args.sasl_mechanism = Some(SaslMechanism::ScramSha512);
        args.sasl_username = Some("svc".into());
        args.sasl_password = Some(Secret::new("hunter2"));
        let shown = format!("{args:?}");
        assert!(!shown.contains("hunter2"), "password leaked into Debug: {shown}");
        assert!(shown.contains("***"));
        let cfg = args.client_config("t").expect("complete SASL config");
        assert_eq!(cfg.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(cfg.get("security.protocol"), Some("sasl_ssl"));
    }

    #[test]
    fn missing_bootstrap_servers_is_a_clear_error() {
        let mut args = KafkaArgs::plaintext(" ");
        assert!(matches!(args.validate(), Err(ConfigError::NoBootstrapServers)));
        args.bootstrap_servers = None;
        let err = args.client_config("x").expect_err("no servers");
        assert!(err.to_string().contains("KAFKA_BOOTSTRAP_SERVERS"), "{err}");
    }

    #[test]
    fn incomplete_sasl_is_rejected() {
        let mut args = KafkaArgs::plaintext("b:9092");
        args.security_protocol = SecurityProtocol::SaslSsl;
        args.sasl_username = Some("svc".into());
        assert!(matches!(args.validate(), Err(ConfigError::IncompleteSasl(_))));
    }

    #[test]
    fn sasl_settings_without_sasl_protocol_are_rejected() {
        let mut args = KafkaArgs::plaintext("b:9092");
        args.sasl_username = Some("svc".into());
        assert!(matches!(args.validate(), Err(ConfigError::SaslWithoutSaslProtocol(_))));
    }

    #[test]
    fn a_message_size_limit_outside_librdkafkas_range_is_rejected() {
        let mut args = KafkaArgs::plaintext("b:9092");
        args.message_max_bytes = 100;
        assert!(matches!(args.validate(), Err(ConfigError::MessageMaxBytes(100))));
        args.message_max_bytes = MIN_MESSAGE_MAX_BYTES;
        assert!(args.validate().is_ok());
    }

    #[test]
    fn half_client_certificate_is_rejected() {
        let mut args = KafkaArgs::plaintext("b:9092");
        args.ssl_certificate_location = Some("/c.pem".into());
        assert!(matches!(args.validate(), Err(ConfigError::HalfClientCertificate)));
    }
}
