//! One client connection: read whatever bytes have arrived, execute every complete request
//! among them, write the replies (so pipelined requests cost one write), repeat. The socket is
//! only ever touched here; everything between bytes in and bytes out is synchronous.
//!
//! Memory and time per client are bounded the way Redis bounds them, plus backpressure:
//! - the output is written as it grows: once 256 KiB of replies wait, the connection stops
//!   executing the client's requests until the socket has taken them, and a command with a
//!   long reply (MGET) stops midway and resumes after the write; large values are sent by
//!   reference, never copied ([`Output`]);
//! - `client-output-buffer-limit` (normal class): a client whose unread replies reach the
//!   hard limit, or stay above the soft limit for longer than its seconds, is closed;
//! - a client whose socket takes no byte for `client-write-timeout` (or `timeout`, Redis's
//!   idle timeout, which counts writes as activity) is closed, and once the server drains
//!   for shutdown a stuck write waits [`SHUTDOWN_LINGER`] at most;
//! - before AUTH, requests are limited as Redis limits them ([`Limits::unauthenticated`]);
//! - read and write buffers left large by one big request or reply are shrunk once they have
//!   been mostly unused for a while, as Redis's clientsCron does;
//! - `maxmemory-clients` (client eviction): once all clients together hold that much, the
//!   clients holding the most are disconnected ([`Clients::evict_over`]). The check runs when a
//!   connection's buffers grow (after each read, and while a reply waits for a slow reader)
//!   and every [`EVICTION_RETRY`] (100 ms) besides: the clients' memory exceeds the limit by at
//!   most what one read (16 KiB, or the rest of a large request) or one command's reply adds
//!   before the check that sees it, or for 100 ms after CONFIG SET lowers the limit, and a
//!   chosen client closes as soon as its task next runs, without finishing its pipeline.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::command;
use super::frame::{Limits, ProtocolError, RequestDecoder};
use super::output::Output;
use super::reply::ReplyWriter;
use super::session::{BufferUsage, ClientInfo, Registration, Session};
#[cfg(doc)]
use super::session::{Clients, EVICTION_RETRY};
use super::state::ServerState;

/// Bytes asked of the socket per read, and what an idle connection's buffers shrink back to.
const READ_CHUNK: usize = 16 * 1024;
/// Replies are written out once this much has accumulated, even mid-pipeline or mid-reply, and
/// the client's next request waits until the socket has taken them: a client that does not
/// read stops being served instead of growing its output.
const FLUSH_THRESHOLD: usize = 256 * 1024;
/// How often a connection considers shrinking its buffers, and how long they must have been
/// mostly unused first (Redis's clientsCron looks at each client about once a second and
/// shrinks a query buffer whose peak since the last look is under half its size).
const TRIM_INTERVAL: Duration = Duration::from_secs(2);
/// A read buffer is shrunk only above this capacity (Redis's `PROTO_MBULK_BIG_ARG`).
const INPUT_TRIM_MIN: usize = 32 * 1024;

/// What a connection costs besides its buffers, counted in its `tot-mem` as Redis counts its
/// client structure: the connection's own structures, plus an estimate for the task that
/// runs it (its future keeps the state of every await point) and its socket's registration.
pub(crate) const CONNECTION_FIXED_MEMORY: usize =
    size_of::<Connection>() + size_of::<Session>() + size_of::<ClientInfo>() + CONNECTION_TASK_MEMORY;
const CONNECTION_TASK_MEMORY: usize = 4 * 1024;

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
    /// Its socket took no byte of its replies for `client-write-timeout`.
    WriteTimeout,
    /// Its replies reached `client-output-buffer-limit`.
    OutputLimit,
    /// Client eviction chose it: all clients together reached `maxmemory-clients`.
    Evicted,
    Shutdown,
}

struct Connection {
    stream: TcpStream,
    /// Remembers how far a partly received request was checked, so a large request arriving
    /// over many reads is not rescanned from its start each time.
    decoder: RequestDecoder,
    input: BytesMut,
    output: Output,
    /// Since when the output has been at or above the soft limit.
    over_soft_limit_since: Option<Instant>,
    info: Arc<ClientInfo>,
    /// The sizes last published to `info`, so unchanged sizes cost no shared write.
    published: BufferUsage,
    /// When the buffers were last considered for shrinking, and the most input buffered since.
    last_trim: Instant,
    input_peak: usize,
}

impl Connection {
    /// Reads more bytes; 0 means the client closed its side.
    async fn read_more(&mut self) -> io::Result<usize> {
        self.input.reserve(READ_CHUNK);
        let read = self.stream.read_buf(&mut self.input).await;
        self.input_peak = self.input_peak.max(self.input.len());
        read
    }

    /// Makes the buffer sizes visible to CLIENT LIST, INFO and `maxmemory`.
    fn publish(&mut self, argv_mem: usize) {
        publish(&self.info, &mut self.published, &self.input, &self.output, argv_mem);
    }

    /// Whether a buffer is large enough to be worth shrinking once it has been idle.
    fn trimmable(&self) -> bool {
        self.input.capacity() > INPUT_TRIM_MIN || self.output.memory() > READ_CHUNK
    }

    /// Shrinks buffers that were mostly unused since the last look, as clientsCron does: the
    /// read buffer when its peak used less than half of it, the reply buffer when it is empty.
    fn trim(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_trim) < TRIM_INTERVAL {
            return;
        }
        self.last_trim = now;
        if self.input.capacity() > INPUT_TRIM_MIN && self.input_peak < self.input.capacity() / 2 {
            // Same bytes at the same offsets, so the decoder's progress stays valid.
            let mut smaller = BytesMut::with_capacity(self.input.len().max(READ_CHUNK));
            smaller.extend_from_slice(&self.input);
            self.input = smaller;
        }
        self.input_peak = self.input.len();
        self.output.trim(READ_CHUNK);
        self.info.reset_recent_max();
        self.publish(0);
    }
}

fn publish(info: &ClientInfo, published: &mut BufferUsage, input: &BytesMut, output: &Output, argv_mem: usize) {
    let usage = BufferUsage {
        qbuf: input.len(),
        qbuf_free: input.capacity() - input.len(),
        argv_mem,
        omem: output.pending(),
        output_memory: output.memory(),
    };
    if usage != *published {
        info.publish(usage);
        *published = usage;
    }
}

/// Serves one client until it leaves, breaks the protocol, idles out, or the server shuts
/// down. Every request read before shutdown is answered.
pub(crate) async fn serve(state: Arc<ServerState>, stream: TcpStream, registration: Registration) {
    let id = registration.info.id;
    let authenticated = !state.settings.auth_required();
    let mut session = Session::new(Arc::clone(&registration.info), authenticated);
    let mut connection = Connection {
        stream,
        decoder: RequestDecoder::new(),
        input: BytesMut::with_capacity(READ_CHUNK),
        output: Output::default(),
        over_soft_limit_since: None,
        info: Arc::clone(&registration.info),
        published: BufferUsage::default(),
        last_trim: Instant::now(),
        input_peak: 0,
    };
    state.metrics.client_connected();
    let ending = run(&state, &mut connection, &mut session).await;
    // A dropped connection discards its transaction and its watched keys.
    state.databases.unwatch(&mut session.watcher);
    state.metrics.client_disconnected();
    match ending {
        Ok(Ending::OutputLimit) => {
            // Redis logs this at warning level: it is a client misbehaving or a limit too low.
            let client = registration.info.describe(Instant::now());
            tracing::warn!(client = id, %client, "client closed for overcoming of output buffer limits");
        }
        Ok(Ending::WriteTimeout) => tracing::info!(client = id, "client closed: it left its replies unread"),
        Ok(Ending::Evicted) => {
            let client = registration.info.describe(Instant::now());
            tracing::info!(client = id, %client, "client evicted: all clients together reached maxmemory-clients");
        }
        Ok(ending) => tracing::debug!(client = id, ?ending, "connection closed"),
        Err(error) => tracing::debug!(client = id, %error, "connection failed"),
    }
    drop(registration);
}

async fn run(state: &ServerState, connection: &mut Connection, session: &mut Session) -> io::Result<Ending> {
    let info = Arc::clone(&connection.info);
    // The connection's own signals (`Flags`), each wait made once for its whole life: a
    // server-wide channel polled on every read was a lock all connections contended for
    // (3.4% of an unpipelined SET's instructions), a fresh wait per read two more.
    let shutdown_signal = info.shutdown();
    tokio::pin!(shutdown_signal);
    let eviction = info.eviction();
    tokio::pin!(eviction);
    loop {
        if let Some(ending) = execute_buffered(state, connection, session).await? {
            return Ok(ending);
        }
        connection.trim(Instant::now());
        connection.publish(0);
        if evicted_after_growth(state, &info) {
            return Ok(Ending::Evicted);
        }
        // Redis's idle timeout: from the last read or write, which was just now.
        let idle_deadline = state.settings.client_idle_timeout().map(|idle| tokio::time::Instant::now() + idle);
        loop {
            let trim_wait = connection.trimmable().then_some(TRIM_INTERVAL);
            let read = tokio::select! {
                // Shutdown first: a client that keeps sending must not keep the server up.
                biased;
                () = &mut shutdown_signal => return finish_for_shutdown(state, connection, session).await,
                read = connection.read_more() => read,
                () = &mut eviction => return Ok(Ending::Evicted),
                () = sleep_until(idle_deadline) => return Ok(Ending::IdleTimeout),
                () = sleep_for(trim_wait) => {
                    connection.trim(Instant::now());
                    continue;
                }
            };
            match read {
                Ok(0) => return Ok(Ending::ClientClosed),
                Ok(_) => break,
                Err(error) => return Err(error),
            }
        }
        connection.publish(0);
        if evicted_after_growth(state, &info) {
            return Ok(Ending::Evicted);
        }
    }
}

/// Runs client eviction after a client's buffers grew (if all clients together are over
/// `maxmemory-clients`), and tells whether this client was chosen.
fn evicted_after_growth(state: &ServerState, info: &ClientInfo) -> bool {
    state.evict_clients();
    info.is_evicted()
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Waits for `wait`, or forever without one.
fn sleep_for(wait: Option<Duration>) -> impl Future<Output = ()> {
    sleep_until(wait.map(|wait| tokio::time::Instant::now() + wait))
}

/// The request limits for the client's next request: tighter before AUTH.
fn request_limits(state: &ServerState, session: &Session) -> Limits {
    Limits { unauthenticated: !session.is_authenticated(&state.settings), ..state.limits() }
}

/// Executes every complete request already buffered and writes the replies (in one write
/// unless they grow large). Returns how the connection ends, if a request ended it.
async fn execute_buffered(
    state: &ServerState,
    connection: &mut Connection,
    session: &mut Session,
) -> io::Result<Option<Ending>> {
    let mut clock = Instant::now();
    loop {
        let after = match execute_ready(state, connection, session, &mut clock) {
            Ok(Pause::Empty) => break,
            Ok(Pause::Evicted) => return Ok(Some(Ending::Evicted)),
            Ok(Pause::After(after)) => after,
            Ok(Pause::Resume(len)) => {
                if let Some(ending) = resume(state, connection, session, len).await? {
                    return Ok(Some(ending));
                }
                clock = Instant::now();
                match finish_request(connection, session, len) {
                    Some(after) => after,
                    None => continue,
                }
            }
            Err(error) => return refuse(state, connection, session, &error).await.map(Some),
        };
        match after {
            AfterRequest::OutputLimit => return Ok(Some(Ending::OutputLimit)),
            AfterRequest::Closing => {
                return Ok(Some(connection.writing(session.aof_wait).drain(state, 0).await?.unwrap_or(Ending::Quit)));
            }
            AfterRequest::Flush => {
                if let Some(ending) = connection.writing(session.aof_wait).drain(state, 0).await? {
                    return Ok(Some(ending));
                }
                // Waiting for the client to read is not the next request's time.
                clock = Instant::now();
            }
        }
    }
    connection.writing(session.aof_wait).drain(state, 0).await
}

/// Why [`execute_ready`] stopped.
enum Pause {
    /// No complete request is buffered.
    Empty,
    /// The client was evicted (`maxmemory-clients`).
    Evicted,
    /// The request of this length at the front stopped midway: it continues once the client
    /// has read enough (see [`resume`]).
    Resume(usize),
    After(AfterRequest),
}

/// What a finished request requires before the next one runs.
enum AfterRequest {
    /// Its replies broke the client's output limit: the connection ends.
    OutputLimit,
    /// The client asked to close (QUIT): write what is pending, then close.
    Closing,
    /// Enough replies are pending to write them before going on.
    Flush,
}

/// Executes buffered requests until one needs the connection to wait (for the client to
/// read, or to write before closing) or none is left. Never waits itself, which is what
/// lets it keep the store's exclusivity from one request to the next (`command::execute`):
/// the guard never lives across an await.
fn execute_ready(
    state: &ServerState,
    connection: &mut Connection,
    session: &mut Session,
    clock: &mut Instant,
) -> Result<Pause, ProtocolError> {
    let mut held = None;
    loop {
        if connection.info.is_evicted() {
            return Ok(Pause::Evicted);
        }
        // The decoder fails rather than buffer more than `max_request_len` of one request,
        // so memory per connection stays bounded by that plus one read.
        let limits = request_limits(state, session);
        let Some(len) = connection.decoder.decode_front(&mut connection.input, &limits)? else {
            return Ok(Pause::Empty);
        };
        {
            // The arguments are borrowed from the read buffer, on the stack for up to
            // REQUEST_ARGS_INLINE of them: a request costs no allocation.
            let args: RequestArgs<'_> = connection.decoder.args(&connection.input[..len]).collect();
            let hard_limit = state.settings.output_buffer_limits().normal.hard;
            connection.output.set_hard_limit(usize::try_from(hard_limit).unwrap_or(usize::MAX));
            let mut writer = ReplyWriter::new(&mut connection.output, session.protocol());
            *clock = command::execute(state, session, &args, &mut writer, *clock, &mut held);
        }
        // A command that stopped midway continues once the client has read enough.
        if session.resume_at.is_some() && !connection.output.overflowed() {
            return Ok(Pause::Resume(len));
        }
        if let Some(after) = finish_request(connection, session, len) {
            return Ok(Pause::After(after));
        }
    }
}

/// Continues the request of length `len` at the front, which stopped midway, each time the
/// client has read enough, until it is done.
async fn resume(
    state: &ServerState,
    connection: &mut Connection,
    session: &mut Session,
    len: usize,
) -> io::Result<Option<Ending>> {
    while session.resume_at.is_some() && !connection.output.overflowed() {
        let argv_mem = connection.decoder.args(&connection.input[..len]).map(<[u8]>::len).sum();
        let writing = Writing { argv_mem, ..connection.writing(session.aof_wait) };
        if let Some(ending) = writing.drain(state, FLUSH_THRESHOLD).await? {
            return Ok(Some(ending));
        }
        let args: RequestArgs<'_> = connection.decoder.args(&connection.input[..len]).collect();
        let mut writer = ReplyWriter::new(&mut connection.output, session.protocol());
        command::resume(state, session, &args, &mut writer);
    }
    Ok(None)
}

/// Done with the request of length `len` at the front: drops it from the read buffer and
/// says whether the connection must stop executing for now.
fn finish_request(connection: &mut Connection, session: &mut Session, len: usize) -> Option<AfterRequest> {
    session.resume_at = None;
    session.reply_keys = Vec::new();
    connection.input.advance(len);
    if connection.output.overflowed() {
        Some(AfterRequest::OutputLimit)
    } else if session.closing {
        Some(AfterRequest::Closing)
    } else if connection.output.pending() >= FLUSH_THRESHOLD {
        Some(AfterRequest::Flush)
    } else {
        None
    }
}

impl Connection {
    fn writing(&mut self, aof_wait: u64) -> Writing<'_> {
        Writing {
            stream: &mut self.stream,
            output: &mut self.output,
            over_soft_limit_since: &mut self.over_soft_limit_since,
            info: &self.info,
            published: &mut self.published,
            input: &self.input,
            argv_mem: 0,
            aof_wait,
        }
    }
}

/// The parts of a connection that writing replies needs, borrowed apart from the read buffer
/// (whose arguments a command that stopped midway still uses).
struct Writing<'a> {
    stream: &'a mut TcpStream,
    output: &'a mut Output,
    over_soft_limit_since: &'a mut Option<Instant>,
    /// For publishing the buffer sizes while the client is slow to read.
    info: &'a ClientInfo,
    published: &'a mut BufferUsage,
    input: &'a BytesMut,
    argv_mem: usize,
    /// The AOF position of the client's last logged write: no reply is sent before the log
    /// holds what it acknowledges (written, and under `appendfsync always` fsynced), so a
    /// reply never promises more than the log keeps.
    aof_wait: u64,
}

impl Writing<'_> {
    /// Writes until at most `target` bytes are pending, enforcing the soft output limit and
    /// the write deadlines. Returns how the connection ends if a limit ended it.
    async fn drain(self, state: &ServerState, target: usize) -> io::Result<Option<Ending>> {
        if self.output.pending() > target {
            state.aof.wait_acked(self.aof_wait).await;
        }
        // Most flushes fit in the socket at once: write them without the timers below.
        while self.output.pending() > target {
            match self.output.try_write_some(self.stream) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        while self.output.pending() > target {
            let limits = state.settings.output_buffer_limits().normal;
            let now = Instant::now();
            if soft_limit_exceeded(
                self.output.pending(),
                limits.soft,
                limits.soft_duration(),
                self.over_soft_limit_since,
                now,
            ) {
                return Ok(Some(Ending::OutputLimit));
            }
            publish(self.info, self.published, self.input, self.output, self.argv_mem);
            if evicted_after_growth(state, self.info) {
                return Ok(Some(Ending::Evicted));
            }
            let draining = state.shutdown.is_draining();
            let (wait, ending) = write_deadline(state, draining);
            // Wake up when the soft limit's time runs out, to close the client then.
            let soft_wait = self.over_soft_limit_since.map(|since| {
                (since + limits.soft_duration()).saturating_duration_since(now) + Duration::from_millis(1)
            });
            tokio::select! {
                written = self.output.write_some(self.stream) => {
                    written?;
                }
                () = sleep_for(wait) => return Ok(Some(ending)),
                () = self.info.eviction() => return Ok(Some(Ending::Evicted)),
                () = sleep_for(soft_wait) => {}
                // The wait shrinks to the shutdown linger once the server drains.
                () = state.shutdown.drain_started(), if !draining => {}
            }
        }
        if limits_reset_below_soft(self.output.pending()) {
            *self.over_soft_limit_since = None;
        }
        Ok(None)
    }
}

/// Below the soft limit the timer stops, as in Redis, whatever the limit is.
fn limits_reset_below_soft(pending: usize) -> bool {
    pending == 0
}

/// Redis's soft limit: true once the output has stayed at or above `soft` bytes for longer
/// than `allowed` (0 bytes: no soft limit).
fn soft_limit_exceeded(
    pending: usize,
    soft: u64,
    allowed: Duration,
    since: &mut Option<Instant>,
    now: Instant,
) -> bool {
    if soft == 0 || (pending as u64) < soft {
        *since = None;
        return false;
    }
    let since = *since.get_or_insert(now);
    now.saturating_duration_since(since) > allowed
}

/// How long a write may make no progress, and what ends the connection then: the shorter of
/// `client-write-timeout` and Redis's idle `timeout`, or the shutdown linger while draining.
fn write_deadline(state: &ServerState, draining: bool) -> (Option<Duration>, Ending) {
    if draining {
        return (Some(SHUTDOWN_LINGER), Ending::Shutdown);
    }
    match (state.settings.client_write_timeout(), state.settings.client_idle_timeout()) {
        (Some(write), Some(idle)) if idle < write => (Some(idle), Ending::IdleTimeout),
        (None, Some(idle)) => (Some(idle), Ending::IdleTimeout),
        (write, _) => (write, Ending::WriteTimeout),
    }
}

/// How many rounds of already-received requests are answered after shutdown begins: enough
/// for any pipeline in flight, bounded so a client that keeps sending cannot delay shutdown.
const SHUTDOWN_READ_ROUNDS: usize = 64;
/// How long a closing connection waits for the client to close its side, so that replies
/// already sent are not destroyed by a reset (closing a socket with unread input sends one),
/// and how long a write may stall once the server drains.
const SHUTDOWN_LINGER: Duration = Duration::from_secs(2);

/// Answers the requests that had reached the socket when shutdown began (they are in
/// flight: the client sent them before the server stopped), then closes gracefully: our
/// side first, then waits briefly for the client's end so no reply is lost to a reset.
async fn finish_for_shutdown(
    state: &ServerState,
    connection: &mut Connection,
    session: &mut Session,
) -> io::Result<Ending> {
    for _ in 0..SHUTDOWN_READ_ROUNDS {
        connection.input.reserve(READ_CHUNK);
        match connection.stream.try_read_buf(&mut connection.input) {
            Ok(0) => break,
            Ok(_) => {
                if let Some(ending) = execute_buffered(state, connection, session).await? {
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

/// Answers a protocol error the way Redis does, then closes the connection.
async fn refuse(
    state: &ServerState,
    connection: &mut Connection,
    session: &Session,
    error: &ProtocolError,
) -> io::Result<Ending> {
    let mut writer = ReplyWriter::new(&mut connection.output, session.protocol());
    writer.error(&format!("ERR {error}"));
    Ok(connection.writing(session.aof_wait).drain(state, 0).await?.unwrap_or(Ending::ProtocolError))
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
            unauthenticated: false,
        }
    }
}
