//! Per-client state: what one connection negotiated (protocol, authentication), and the
//! facts about it that CLIENT LIST shows to other clients.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry::trace::SpanContext;
use parking_lot::Mutex;

use super::command::{COMMANDS, Queued};
use super::config::RuntimeSettings;
use super::connection::CONNECTION_FIXED_MEMORY;
use super::latch::Flags;
use super::reply::Protocol;
use crate::engine::{CompactBytes, Watcher};

/// What other clients may read about a connection. Fields the owning connection changes on
/// every command are atomics, so CLIENT LIST never slows the hot path down.
pub(crate) struct ClientInfo {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) connected_at: Instant,
    pub(crate) name: Mutex<Option<Bytes>>,
    pub(crate) lib_name: Mutex<Option<Bytes>>,
    pub(crate) lib_ver: Mutex<Option<Bytes>>,
    /// Index into the command table plus one; 0 before the first command.
    last_command: AtomicUsize,
    /// Milliseconds after `connected_at` of the last command.
    last_active_ms: AtomicU64,
    resp: AtomicU8,
    /// Buffer sizes, published by the connection after each batch of requests and each
    /// write, for CLIENT LIST, INFO and `maxmemory`.
    memory: MemoryGauges,
    /// The sum of every client's `tot-mem`, shared by all clients.
    all_clients_memory: Arc<AtomicU64>,
    /// `CLIENT NO-EVICT on`: client eviction passes this client over.
    no_evict: AtomicBool,
    /// Why the connection must close ([`EVICTED`], [`SHUTTING_DOWN`]), set by other tasks.
    closing: Flags,
    /// Commands queued since MULTI plus one, 0 outside a transaction (CLIENT LIST's `multi`).
    multi: AtomicUsize,
    /// The selected database, for CLIENT LIST.
    db: AtomicUsize,
    /// Bytes those queued commands hold (`multi-mem`, part of `tot-mem`).
    multi_mem: AtomicUsize,
}

/// Client eviction chose the client: its connection closes at once.
const EVICTED: u8 = 1;
/// The server drains: the connection answers what it has read, then closes.
const SHUTTING_DOWN: u8 = 2;

/// What a connection's buffers hold, as CLIENT LIST names it.
#[derive(Default)]
struct MemoryGauges {
    qbuf: AtomicUsize,
    qbuf_free: AtomicUsize,
    argv_mem: AtomicUsize,
    omem: AtomicUsize,
    tot_mem: AtomicUsize,
    /// The largest `qbuf` and `omem` since the connection last trimmed its buffers (INFO's
    /// `client_recent_max_input_buffer` and `client_recent_max_output_buffer`).
    recent_max_qbuf: AtomicUsize,
    recent_max_omem: AtomicUsize,
}

/// A connection's buffer sizes at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BufferUsage {
    /// Bytes read and not yet executed.
    pub(crate) qbuf: usize,
    /// Free capacity of the read buffer.
    pub(crate) qbuf_free: usize,
    /// Bytes of the arguments of the command being executed.
    pub(crate) argv_mem: usize,
    /// Reply bytes the client has yet to receive.
    pub(crate) omem: usize,
    /// Memory the output holds (its encoding buffer's capacity and what is queued).
    pub(crate) output_memory: usize,
}

impl ClientInfo {
    /// One line of CLIENT LIST / CLIENT INFO, in Redis's field order (fields cstore has no
    /// notion of are reported with their neutral value so parsers keep working).
    pub(crate) fn describe(&self, now: Instant) -> String {
        let text = |field: &Mutex<Option<Bytes>>| {
            field.lock().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
        };
        let age = now.saturating_duration_since(self.connected_at);
        let idle_ms = u64::try_from(age.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(self.last_active_ms.load(Ordering::Relaxed));
        let cmd = match self.last_command.load(Ordering::Relaxed) {
            0 => "NULL",
            n => COMMANDS.get(n - 1).map_or("NULL", |spec| spec.name),
        };
        let gauge = |value: &AtomicUsize| value.load(Ordering::Relaxed);
        let memory = &self.memory;
        // Redis's letters: `x` in a transaction, `e` for CLIENT NO-EVICT, `N` for none.
        let mut flags = String::new();
        let multi = gauge(&self.multi);
        if multi > 0 {
            flags.push('x');
        }
        if self.no_evict() {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db={} sub=0 psub=0 ssub=0 multi={} \
             qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r \
             cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            self.local,
            text(&self.name),
            age.as_secs(),
            idle_ms / 1000,
            flags,
            self.db.load(Ordering::Relaxed),
            multi as i64 - 1,
            gauge(&memory.qbuf),
            gauge(&memory.qbuf_free),
            gauge(&memory.argv_mem),
            gauge(&self.multi_mem),
            gauge(&memory.omem),
            gauge(&memory.tot_mem),
            cmd,
            self.resp.load(Ordering::Relaxed),
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }
}

impl ClientInfo {
    /// Publishes the connection's buffer sizes; `tot-mem` is what its buffers hold plus the
    /// fixed memory of a connection, as Redis counts its client structure.
    pub(crate) fn publish(&self, usage: BufferUsage) {
        let memory = &self.memory;
        memory.qbuf.store(usage.qbuf, Ordering::Relaxed);
        memory.qbuf_free.store(usage.qbuf_free, Ordering::Relaxed);
        memory.argv_mem.store(usage.argv_mem, Ordering::Relaxed);
        memory.omem.store(usage.omem, Ordering::Relaxed);
        memory.recent_max_qbuf.fetch_max(usage.qbuf, Ordering::Relaxed);
        memory.recent_max_omem.fetch_max(usage.omem, Ordering::Relaxed);
        let total = CONNECTION_FIXED_MEMORY
            + usage.qbuf
            + usage.qbuf_free
            + usage.argv_mem
            + usage.output_memory
            + self.multi_mem.load(Ordering::Relaxed);
        let before = memory.tot_mem.swap(total, Ordering::Relaxed);
        self.add_to_all(total as i64 - before as i64);
    }

    /// Starts a new window for the recent maxima (the connection trims its buffers then).
    pub(crate) fn reset_recent_max(&self) {
        self.memory.recent_max_qbuf.store(self.memory.qbuf.load(Ordering::Relaxed), Ordering::Relaxed);
        self.memory.recent_max_omem.store(self.memory.omem.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The largest input and output buffer since the last trim.
    pub(crate) fn recent_max(&self) -> (usize, usize) {
        (self.memory.recent_max_qbuf.load(Ordering::Relaxed), self.memory.recent_max_omem.load(Ordering::Relaxed))
    }

    /// The connection's `tot-mem` as last published.
    pub(crate) fn total_memory(&self) -> usize {
        self.memory.tot_mem.load(Ordering::Relaxed)
    }

    pub(crate) fn no_evict(&self) -> bool {
        self.no_evict.load(Ordering::Relaxed)
    }

    pub(crate) fn set_no_evict(&self, on: bool) {
        self.no_evict.store(on, Ordering::Relaxed);
    }

    /// Whether client eviction chose this client: its connection must close.
    pub(crate) fn is_evicted(&self) -> bool {
        self.closing.any(EVICTED)
    }

    /// Returns once client eviction chooses this client.
    pub(crate) async fn eviction(&self) {
        self.closing.wait(EVICTED).await;
    }

    /// Returns once the server shuts down and the connection should finish (at once if it
    /// already does). The connection's own task is the only waiter on its signals.
    pub(crate) async fn shutdown(&self) {
        self.closing.wait(SHUTTING_DOWN).await;
    }

    fn add_to_all(&self, delta: i64) {
        if delta >= 0 {
            self.all_clients_memory.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.all_clients_memory.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }
}

/// The connection's own view of itself.
pub(crate) struct Session {
    pub(crate) info: Arc<ClientInfo>,
    protocol: Protocol,
    pub(crate) authenticated: bool,
    /// Set by QUIT: reply, flush, then close.
    pub(crate) closing: bool,
    /// The trace context `CLIENT TRACEPARENT` gave for the next request, which takes it.
    pub(crate) trace_parent: Option<SpanContext>,
    /// The AOF position of this client's last logged write: its replies wait for it.
    pub(crate) aof_wait: u64,
    /// Set by a command that stopped with its reply partly written, to be called again with
    /// this position once the client has read the output so far (MGET of many large values).
    pub(crate) resume_at: Option<usize>,
    /// The keys a KEYS reply that stopped midway has yet to send, held between its parts.
    pub(crate) reply_keys: Vec<CompactBytes>,
    /// Between MULTI and EXEC or DISCARD: the commands queued.
    transaction: Option<Queued>,
    /// The keys this client WATCHes.
    pub(crate) watcher: Watcher,
    /// The database this client's commands use (SELECT).
    db: usize,
    /// Set while EXEC runs the queue: a reply cannot stop midway and resume later then, since
    /// the transaction must end before the connection writes.
    pub(crate) in_exec: bool,
}

impl Session {
    pub(crate) fn new(info: Arc<ClientInfo>, authenticated: bool) -> Self {
        Session {
            info,
            protocol: Protocol::Resp2,
            authenticated,
            closing: false,
            trace_parent: None,
            aof_wait: 0,
            resume_at: None,
            reply_keys: Vec::new(),
            transaction: None,
            watcher: Watcher::default(),
            in_exec: false,
            db: 0,
        }
    }

    /// The database this client's commands use.
    pub(crate) fn db(&self) -> usize {
        self.db
    }

    /// SELECT: the caller has checked that database `number` exists.
    pub(crate) fn select(&mut self, number: usize) {
        self.db = number;
        self.info.db.store(number, Ordering::Relaxed);
    }

    /// The queue of the transaction under way, if MULTI was sent.
    pub(crate) fn transaction(&self) -> Option<&Queued> {
        self.transaction.as_ref()
    }

    /// MULTI: commands are queued from now on.
    pub(crate) fn begin_transaction(&mut self) {
        self.transaction = Some(Queued::default());
        self.info.multi.store(1, Ordering::Relaxed);
    }

    /// Queues a command of the transaction under way (`refused`: it was refused, and EXEC
    /// must discard the transaction).
    pub(crate) fn queue(&mut self, request: &[&[u8]], refused: bool) {
        let Some(queued) = &mut self.transaction else { return };
        if refused {
            queued.refuse();
        } else {
            queued.push(request);
        }
        self.info.multi.store(queued.len() + 1, Ordering::Relaxed);
        self.info.multi_mem.store(queued.memory(), Ordering::Relaxed);
    }

    /// DISCARD, RESET: the transaction ends; returns its queue if there was one.
    pub(crate) fn end_transaction(&mut self) -> Option<Queued> {
        let queued = self.transaction.take();
        self.transaction_done();
        queued
    }

    /// EXEC: takes the queue; CLIENT LIST shows the transaction until [`Session::transaction_done`].
    pub(crate) fn take_transaction(&mut self) -> Option<Queued> {
        self.transaction.take()
    }

    pub(crate) fn transaction_done(&mut self) {
        self.info.multi.store(0, Ordering::Relaxed);
        self.info.multi_mem.store(0, Ordering::Relaxed);
    }

    /// Whether the client may run commands that need authentication, under the password in
    /// force now (Redis's `authRequired`).
    pub(crate) fn is_authenticated(&self, settings: &RuntimeSettings) -> bool {
        self.authenticated || !settings.auth_required()
    }

    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub(crate) fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
        let resp = match protocol {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        };
        self.info.resp.store(resp, Ordering::Relaxed);
    }

    /// Records that a command is running now (for CLIENT LIST's `cmd` and `idle`).
    pub(crate) fn touch(&self, command_index: usize, now: Instant) {
        self.info.last_command.store(command_index + 1, Ordering::Relaxed);
        let since_connect = now.saturating_duration_since(self.info.connected_at);
        self.info.last_active_ms.store(u64::try_from(since_connect.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// After a client eviction pass that could not bring the clients under the limit (what is
/// left belongs to CLIENT NO-EVICT clients), how long the next waits: a pass walks every
/// client, and would otherwise run after every read of every client. The periodic check runs
/// at this pace too.
pub(crate) const EVICTION_RETRY: Duration = Duration::from_millis(100);

/// Every connected client, by id, for CLIENT LIST and the connected-clients count.
#[derive(Default)]
pub(crate) struct Clients {
    by_id: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    next_id: AtomicU64,
    /// Bytes held by every client's buffers (INFO's `mem_clients_normal`).
    memory: Arc<AtomicU64>,
    /// Clients disconnected by client eviction (INFO's `evicted_clients`).
    evicted: AtomicU64,
    /// Held by a client eviction pass (two at once would each evict for the same excess),
    /// with when the last pass left the clients over the limit.
    eviction_pass: Mutex<Option<Instant>>,
    /// Set (under `by_id`'s lock) when the server begins to shut down.
    shutting_down: AtomicBool,
}

impl Clients {
    /// Registers a new connection; it is unregistered when the returned guard drops.
    pub(crate) fn register(self: &Arc<Self>, peer: SocketAddr, local: SocketAddr) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(ClientInfo {
            id,
            peer,
            local,
            connected_at: Instant::now(),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            last_command: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            resp: AtomicU8::new(2),
            memory: MemoryGauges::default(),
            all_clients_memory: Arc::clone(&self.memory),
            no_evict: AtomicBool::new(false),
            closing: Flags::default(),
            multi: AtomicUsize::new(0),
            db: AtomicUsize::new(0),
            multi_mem: AtomicUsize::new(0),
        });
        info.publish(BufferUsage::default());
        let mut by_id = self.by_id.lock();
        // Under the list's lock, so a client registered while shutdown begins is told too.
        if self.shutting_down.load(Ordering::Relaxed) {
            info.closing.set(SHUTTING_DOWN);
        }
        by_id.insert(id, Arc::clone(&info));
        drop(by_id);
        Registration { clients: Arc::clone(self), info }
    }

    /// Tells every connection, present and future, that the server shuts down.
    pub(crate) fn shut_down_all(&self) {
        let by_id = self.by_id.lock();
        self.shutting_down.store(true, Ordering::Relaxed);
        for client in by_id.values() {
            client.closing.set(SHUTTING_DOWN);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.lock().len()
    }

    /// Bytes held by every client's buffers.
    pub(crate) fn memory(&self) -> u64 {
        self.memory.load(Ordering::Relaxed)
    }

    /// A snapshot of every client, in id order.
    pub(crate) fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.by_id.lock().values().cloned().collect()
    }

    /// Clients disconnected by client eviction since the server started.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Client eviction, as Redis's `evictClients`: while all clients together hold `limit`
    /// bytes or more (0: no limit), the client holding the most is disconnected, then the next;
    /// clients with CLIENT NO-EVICT on are passed over. Returns how many were chosen; their
    /// connections close as soon as they see it. Under the limit this costs one atomic load.
    pub(crate) fn evict_over(&self, limit: u64) -> usize {
        if limit == 0 || self.memory() < limit {
            return 0;
        }
        let Some(mut last_short) = self.eviction_pass.try_lock() else { return 0 };
        let now = Instant::now();
        if last_short.is_some_and(|at| now.saturating_duration_since(at) < EVICTION_RETRY) {
            return 0;
        }
        let clients = self.all();
        // Clients already chosen count in `memory` until their connections end: not here.
        let staying = || clients.iter().filter(|client| !client.is_evicted());
        let mut total: u64 = staying().map(|client| client.total_memory() as u64).sum();
        let mut candidates: Vec<(usize, &Arc<ClientInfo>)> =
            staying().filter(|client| !client.no_evict()).map(|client| (client.total_memory(), client)).collect();
        candidates.sort_unstable_by_key(|&(memory, _)| Reverse(memory));
        let mut evicted = 0;
        for (memory, client) in candidates {
            if total < limit {
                break;
            }
            if client.closing.set(EVICTED) {
                evicted += 1;
            }
            total = total.saturating_sub(memory as u64);
        }
        *last_short = (total >= limit).then_some(now);
        self.evicted.fetch_add(evicted as u64, Ordering::Relaxed);
        evicted
    }
}

/// Keeps a client listed while its connection lives.
pub(crate) struct Registration {
    clients: Arc<Clients>,
    pub(crate) info: Arc<ClientInfo>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.by_id.lock().remove(&self.info.id);
        let held = self.info.memory.tot_mem.swap(0, Ordering::Relaxed);
        self.info.add_to_all(-(held as i64));
    }
}
