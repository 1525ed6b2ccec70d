//! One client connection: read whatever bytes have arrived, execute every complete request
//! among them, write all the replies at once (so pipelined requests cost one write), repeat.
//! The socket is only ever touched here; everything between bytes in and bytes out is
//! synchronous.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::command;
use super::frame::{Limits, ProtocolError, RequestDecoder};
use super::reply::ReplyWriter;
use super::session::{Registration, Session};
use super::shutdown::Shutdown;
use super::state::ServerState;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Replies are written out once this much has accumulated, even mid-pipeline, so a long
/// pipeline of large values never buffers without bound.
const FLUSH_THRESHOLD: usize = 256 * 1024;

/// Arguments of one request kept on the stack; GET takes 2, SET 3 to 7, MSET of three pairs 7.
const REQUEST_ARGS_INLINE: usize = 8;
type RequestArgs<'a> = SmallVec<[&'a [u8]; REQUEST_ARGS_INLINE]>;

/// Why a connection ended, for the log.
#[derive(Debug)]
enum Ending {
    ClientClosed,
    Quit,
    ProtocolError,
    IdleTimeout,
    Shutdown,
}

struct Connection {
    stream: TcpStream,
    /// Remembers how far a partly received request was checked, so a large request arriving
    /// over many reads is not rescanned from its start each time.
    decoder: RequestDecoder,
    input: BytesMut,
    output: BytesMut,
}

impl Connection {
    async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        Ok(())
    }

    /// Reads more bytes; 0 means the client closed its side.
    async fn read_more(&mut self) -> io::Result<usize> {
        self.input.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.input).await
    }
}

/// Serves one client until it leaves, breaks the protocol, idles out, or the server shuts
/// down. Every request read before shutdown is answered.
pub(crate) async fn serve(state: Arc<ServerState>, stream: TcpStream, registration: Registration, shutdown: Shutdown) {
    let id = registration.info.id;
    let authenticated = !state.settings.auth_required();
    let mut session = Session::new(Arc::clone(&registration.info), authenticated);
    let mut connection = Connection {
        stream,
        decoder: RequestDecoder::new(),
        input: BytesMut::with_capacity(READ_CHUNK),
        output: BytesMut::with_capacity(READ_CHUNK),
    };
    state.metrics.client_connected();
    let ending = run(&state, &mut connection, &mut session, shutdown).await;
    state.metrics.client_disconnected();
    match ending {
        Ok(ending) => tracing::debug!(client = id, ?ending, "connection closed"),
        Err(error) => tracing::debug!(client = id, %error, "connection failed"),
    }
    drop(registration);
}

async fn run(
    state: &ServerState,
    connection: &mut Connection,
    session: &mut Session,
    mut shutdown: Shutdown,
) -> io::Result<Ending> {
    let limits = state.limits();
    // One wait for the shutdown broadcast for the connection's whole life: a fresh `recv()`
    // per read would join and leave the channel's waiter list (two mutex round trips) on
    // every request, which was 8% of an unpipelined GET's instructions.
    let shutdown_signal = shutdown.recv();
    tokio::pin!(shutdown_signal);
    loop {
        if let Some(ending) = execute_buffered(state, connection, session, &limits).await? {
            return Ok(ending);
        }
        let read = tokio::select! {
            // Shutdown first: a client that keeps sending must not keep the server up.
            biased;
            () = &mut shutdown_signal => return finish_for_shutdown(state, connection, session, &limits).await,
            read = read_with_timeout(connection, state.settings.client_idle_timeout()) => read,
        };
        match read {
            Some(Ok(0)) => return Ok(Ending::ClientClosed),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error),
            None => return Ok(Ending::IdleTimeout),
        }
    }
}

/// Executes every complete request already buffered and writes the replies (in one write
/// unless they grow large). Returns how the connection ends, if a request ended it.
async fn execute_buffered(
    state: &ServerState,
    connection: &mut Connection,
    session: &mut Session,
    limits: &Limits,
) -> io::Result<Option<Ending>> {
    let mut clock = Instant::now();
    loop {
        // The decoder fails rather than buffer more than `max_request_len` of one request,
        // so memory per connection stays bounded by that plus one read.
        match connection.decoder.decode_front(&mut connection.input, limits) {
            Ok(Some(len)) => {
                // The arguments are borrowed from the read buffer, on the stack for up to
                // REQUEST_ARGS_INLINE of them: a request costs no allocation.
                let args: RequestArgs<'_> = connection.decoder.args(&connection.input[..len]).collect();
                let mut writer = ReplyWriter::new(&mut connection.output, session.protocol());
                clock = command::execute(state, session, &args, &mut writer, clock);
                drop(args);
                connection.input.advance(len);
                if session.closing {
                    flush_acked(state, connection, session).await?;
                    return Ok(Some(Ending::Quit));
                }
                if connection.output.len() >= FLUSH_THRESHOLD {
                    flush_acked(state, connection, session).await?;
                    // Waiting for the client to read is not the next request's time.
                    clock = Instant::now();
                }
            }
            Ok(None) => break,
            Err(error) => return refuse(connection, session, &error).await.map(Some),
        }
    }
    flush_acked(state, connection, session).await?;
    Ok(None)
}

/// Sends the replies once the AOF holds the writes they acknowledge (written, and under
/// `appendfsync always` fsynced): a reply never promises more than the log keeps.
async fn flush_acked(state: &ServerState, connection: &mut Connection, session: &Session) -> io::Result<()> {
    if !connection.output.is_empty() {
        state.aof.wait_acked(session.aof_wait).await;
    }
    connection.flush().await
}

/// How many rounds of already-received requests are answered after shutdown begins: enough
/// for any pipeline in flight, bounded so a client that keeps sending cannot delay shutdown.
const SHUTDOWN_READ_ROUNDS: usize = 64;
/// How long a closing connection waits for the client to close its side, so that replies
/// already sent are not destroyed by a reset (closing a socket with unread input sends one).
const SHUTDOWN_LINGER: Duration = Duration::from_secs(2);

/// Answers the requests that had reached the socket when shutdown began (they are in
/// flight: the client sent them before the server stopped), then closes gracefully: our
/// side first, then waits briefly for the client's end so no reply is lost to a reset.
async fn finish_for_shutdown(
    state: &ServerState,
    connection: &mut Connection,
    session: &mut Session,
    limits: &Limits,
) -> io::Result<Ending> {
    for _ in 0..SHUTDOWN_READ_ROUNDS {
        connection.input.reserve(READ_CHUNK);
        match connection.stream.try_read_buf(&mut connection.input) {
            Ok(0) => break,
            Ok(_) => {
                if let Some(ending) = execute_buffered(state, connection, session, limits).await? {
                    return Ok(ending);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => return Err(error),
        }
    }
    connection.stream.shutdown().await?;
    let mut discard = [0u8; 4096];
    let _ = tokio::time::timeout(SHUTDOWN_LINGER, async {
        while matches!(connection.stream.read(&mut discard).await, Ok(n) if n > 0) {}
    })
    .await;
    Ok(Ending::Shutdown)
}

/// Reads more bytes, or gives up after `idle` (None when idle timeouts are off).
async fn read_with_timeout(connection: &mut Connection, idle: Option<Duration>) -> Option<io::Result<usize>> {
    match idle {
        Some(idle) => tokio::time::timeout(idle, connection.read_more()).await.ok(),
        None => Some(connection.read_more().await),
    }
}

/// Answers a protocol error the way Redis does, then closes the connection.
async fn refuse(connection: &mut Connection, session: &Session, error: &ProtocolError) -> io::Result<Ending> {
    let mut writer = ReplyWriter::new(&mut connection.output, session.protocol());
    writer.error(&format!("ERR {error}"));
    connection.flush().await?;
    Ok(Ending::ProtocolError)
}

impl ServerState {
    /// The request limits in force for new requests.
    pub(crate) fn limits(&self) -> Limits {
        // Limits beyond the address space cannot be reached anyway: saturate.
        let size = |limit: u64| usize::try_from(limit).unwrap_or(usize::MAX);
        Limits {
            max_bulk_len: size(self.config.max_bulk_len),
            max_args: size(self.config.max_args),
            max_inline_len: size(self.config.max_inline_len),
            max_request_len: size(self.config.max_request_len),
        }
    }
}
