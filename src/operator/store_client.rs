//! The operator's side of a conversation with one store pod over RESP: AUTH, CONFIG GET,
//! CLIENT TRACEPARENT, CONFIG SET and INFO, each bounded by a timeout, on one connection.
//!
//! Commands are encoded and replies decoded by `server::resp_value`, the same code the server's
//! own tests use, so there is one RESP implementation in the crate. Failures are typed: their
//! [`StoreFailure`] is the `reason` label of the operator's metric and the word the status
//! shows for the pod.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::resp_value::{Value, ValueError, encode_command, parse_value};

/// How long the operator waits for a pod. A healthy store answers in microseconds and CONFIG
/// SET does not wait for the migration it starts, so these only bound a dead or wedged pod's
/// cost to a reconcile.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub reply: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(2), reply: Duration::from_secs(2) }
    }
}

/// Why talking to a store failed, as a metric label and a status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreFailure {
    /// No connection, a connection lost, or no reply in time: usually a pod starting or
    /// stopping, so retried soon.
    Unreachable,
    /// The store refused the password from the Secret.
    AuthFailed,
    /// The store answered a command with an error (such as a CONFIG SET it does not support).
    Refused,
    /// The store's reply is not what the command answers.
    BadReply,
}

impl StoreFailure {
    pub const ALL: [StoreFailure; 4] =
        [StoreFailure::Unreachable, StoreFailure::AuthFailed, StoreFailure::Refused, StoreFailure::BadReply];

    pub fn label(self) -> &'static str {
        match self {
            StoreFailure::Unreachable => "Unreachable",
            StoreFailure::AuthFailed => "AuthFailed",
            StoreFailure::Refused => "Refused",
            StoreFailure::BadReply => "BadReply",
        }
    }

    /// Whether waiting is all it takes: the pod may be starting, stopping or busy. The other
    /// failures repeat until someone changes the store or its Secret.
    pub fn is_transient(self) -> bool {
        self == StoreFailure::Unreachable
    }
}

/// A failed exchange with a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to {address}: {source}")]
    Connect { address: SocketAddr, source: io::Error },
    #[error("cannot connect to {address} within {timeout:?}")]
    ConnectTimeout { address: SocketAddr, timeout: Duration },
    #[error("connection lost during {command}: {source}")]
    Io { command: String, source: io::Error },
    #[error("no reply to {command} within {timeout:?}")]
    ReplyTimeout { command: String, timeout: Duration },
    #[error("the store closed the connection during {command}")]
    Closed { command: String },
    #[error("the store refused the password: {message}")]
    AuthRefused { message: String },
    #[error("the store refused {command}: {message}")]
    Refused { command: String, message: String },
    #[error("malformed reply to {command}: {source}")]
    Malformed { command: String, source: ValueError },
    #[error("unexpected reply to {command}: {reply}")]
    UnexpectedReply { command: String, reply: String },
}

impl StoreError {
    pub fn failure(&self) -> StoreFailure {
        match self {
            StoreError::Connect { .. }
            | StoreError::ConnectTimeout { .. }
            | StoreError::Io { .. }
            | StoreError::ReplyTimeout { .. }
            | StoreError::Closed { .. } => StoreFailure::Unreachable,
            StoreError::AuthRefused { .. } => StoreFailure::AuthFailed,
            StoreError::Refused { .. } => StoreFailure::Refused,
            StoreError::Malformed { .. } | StoreError::UnexpectedReply { .. } => StoreFailure::BadReply,
        }
    }
}

/// One connection to a store.
pub struct StoreClient {
    stream: TcpStream,
    received: BytesMut,
    reply_timeout: Duration,
}

impl StoreClient {
    /// Connects to the store at `address`, and authenticates when `password` is given.
    pub async fn connect(
        address: SocketAddr,
        password: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<StoreClient, StoreError> {
        let stream = tokio::time::timeout(timeouts.connect, TcpStream::connect(address))
            .await
            .map_err(|_| StoreError::ConnectTimeout { address, timeout: timeouts.connect })?
            .map_err(|source| StoreError::Connect { address, source })?;
        // Small requests, each awaited before the next: no reason to let Nagle delay them.
        let _ = stream.set_nodelay(true);
        let mut client = StoreClient { stream, received: BytesMut::with_capacity(4096), reply_timeout: timeouts.reply };
        if let Some(password) = password {
            client.auth(password).await?;
        }
        Ok(client)
    }

    async fn auth(&mut self, password: &str) -> Result<(), StoreError> {
        match self.exchange("AUTH", &["AUTH", password]).await? {
            Value::Simple(text) if text.as_ref() == b"OK" => Ok(()),
            Value::Error(message) => {
                Err(StoreError::AuthRefused { message: String::from_utf8_lossy(&message).into_owned() })
            }
            other => Err(unexpected("AUTH", &other)),
        }
    }

    /// `CONFIG GET name ...`: the (name, value) pairs the store reports, which leave out the
    /// parameters it does not know.
    pub async fn config_get(&mut self, names: &[&str]) -> Result<Vec<(String, String)>, StoreError> {
        let command = "CONFIG GET";
        let args: Vec<&str> = ["CONFIG", "GET"].into_iter().chain(names.iter().copied()).collect();
        let reply = self.command(command, &args).await?;
        let Value::Array(items) = &reply else { return Err(unexpected(command, &reply)) };
        let texts =
            items.iter().map(text_of).collect::<Option<Vec<String>>>().ok_or_else(|| unexpected(command, &reply))?;
        if texts.len() % 2 != 0 {
            return Err(unexpected(command, &reply));
        }
        Ok(texts.chunks_exact(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect())
    }

    /// `CONFIG SET name value ...`: all or nothing, as Redis 7 applies several parameters.
    pub async fn config_set(&mut self, pairs: &[(&str, String)]) -> Result<(), StoreError> {
        let command = "CONFIG SET";
        let mut args: Vec<&str> = vec!["CONFIG", "SET"];
        for (name, value) in pairs {
            args.push(name);
            args.push(value.as_str());
        }
        match self.command(command, &args).await? {
            Value::Simple(text) if text.as_ref() == b"OK" => Ok(()),
            other => Err(unexpected(command, &other)),
        }
    }

    /// `CLIENT TRACEPARENT traceparent`: the store traces the next command as a child of this
    /// W3C trace context. A store older than the command refuses it ([`StoreError::Refused`]).
    pub async fn trace_next(&mut self, traceparent: &str) -> Result<(), StoreError> {
        let command = "CLIENT TRACEPARENT";
        match self.command(command, &["CLIENT", "TRACEPARENT", traceparent]).await? {
            Value::Simple(text) if text.as_ref() == b"OK" => Ok(()),
            other => Err(unexpected(command, &other)),
        }
    }

    /// `INFO section`: the section's text.
    pub async fn info(&mut self, section: &str) -> Result<String, StoreError> {
        let command = "INFO";
        let reply = self.command(command, &[command, section]).await?;
        text_of(&reply).ok_or_else(|| unexpected(command, &reply))
    }

    /// Sends one command; an error reply becomes [`StoreError::Refused`].
    async fn command(&mut self, command: &str, args: &[&str]) -> Result<Value, StoreError> {
        match self.exchange(command, args).await? {
            Value::Error(message) => Err(StoreError::Refused {
                command: command.to_owned(),
                message: String::from_utf8_lossy(&message).into_owned(),
            }),
            reply => Ok(reply),
        }
    }

    /// Writes one command and reads its reply, within the reply timeout. `command` names it in
    /// errors (never the arguments: AUTH's is the password).
    async fn exchange(&mut self, command: &str, args: &[&str]) -> Result<Value, StoreError> {
        let timeout = self.reply_timeout;
        tokio::time::timeout(timeout, self.write_then_read(command, args))
            .await
            .map_err(|_| StoreError::ReplyTimeout { command: command.to_owned(), timeout })?
    }

    async fn write_then_read(&mut self, command: &str, args: &[&str]) -> Result<Value, StoreError> {
        let io_error = |source| StoreError::Io { command: command.to_owned(), source };
        let mut request = BytesMut::new();
        encode_command(args, &mut request);
        self.stream.write_all(&request).await.map_err(io_error)?;
        loop {
            match parse_value(&self.received) {
                Ok(Some((value, used))) => {
                    self.received.advance(used);
                    return Ok(value);
                }
                Ok(None) => {}
                Err(source) => return Err(StoreError::Malformed { command: command.to_owned(), source }),
            }
            if self.stream.read_buf(&mut self.received).await.map_err(io_error)? == 0 {
                return Err(StoreError::Closed { command: command.to_owned() });
            }
        }
    }
}

/// The text of a string reply of any RESP type.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Simple(bytes) | Value::Bulk(bytes) | Value::Verbatim { text: bytes, .. } => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        _ => None,
    }
}

fn unexpected(command: &str, reply: &Value) -> StoreError {
    // Enough to recognise the reply; a huge one would flood the status.
    let shown: String = format!("{reply:?}").chars().take(200).collect();
    StoreError::UnexpectedReply { command: command.to_owned(), reply: shown }
}
