//! A scripted stand-in for one store pod's RESP port, for reconcile tests that need a
//! migration to stay under way until the test says it finished (a real store migrates a small
//! key space faster than a test can look). It answers what the operator asks: AUTH, CONFIG GET,
//! CLIENT TRACEPARENT, CONFIG SET (which starts a migration when the engine changes), INFO
//! cstore and INFO persistence, with the field names of the server contract. Requests are decoded and replies encoded with
//! `cstore::server::resp_value`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use cstore::engine::Strategy;
use cstore::server::resp_value::{Value, parse_value};

/// What the fake pod is configured with and runs.
#[derive(Clone, Debug)]
pub struct FakeState {
    /// CONFIG GET's answers, by parameter name.
    pub configured: Vec<(String, String)>,
    pub strategy: Strategy,
    pub shards: u32,
    /// The engine a migration under way moves to.
    pub migrating_to: Option<(Strategy, u32)>,
    /// CONFIG SETs accepted so far.
    pub config_sets: usize,
    /// When set, CONFIG SET is answered with this error.
    pub refuse_config_set: Option<String>,
    /// When set, every command but AUTH needs this password first.
    pub password: Option<String>,
    /// The trace contexts CLIENT TRACEPARENT was given.
    pub trace_parents: Vec<String>,
    /// When set, CLIENT TRACEPARENT is refused, as a store from before the command refuses it.
    pub refuse_trace_parent: bool,
    /// INFO persistence's `rdb_last_bgsave_status` and `aof_last_write_status`: whether each
    /// says `err`.
    pub save_failed: bool,
    pub aof_write_failed: bool,
}

/// A fake store pod listening on 127.0.0.1; it stops when dropped.
pub struct FakeStore {
    pub address: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    server: JoinHandle<()>,
}

impl FakeStore {
    /// A pod running and configured with `strategy` and `shards`, and the other live settings
    /// as the operator renders them by default (maxmemory: three quarters of the default 1Gi
    /// memory limit).
    pub async fn start(strategy: Strategy, shards: u32) -> FakeStore {
        let state = Arc::new(Mutex::new(FakeState {
            configured: vec![
                ("strategy".into(), strategy.name().into()),
                ("shards".into(), shards.to_string()),
                ("maxmemory".into(), (768u64 << 20).to_string()),
                ("maxmemory-policy".into(), "noeviction".into()),
                ("trace-sample-ratio".into(), "0".into()),
            ],
            strategy,
            shards,
            migrating_to: None,
            config_sets: 0,
            refuse_config_set: None,
            password: None,
            trace_parents: Vec::new(),
            refuse_trace_parent: false,
            save_failed: false,
            aof_write_failed: false,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Arc::clone(&state);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        FakeStore { address, state, server }
    }

    pub fn state(&self) -> FakeState {
        self.state.lock().clone()
    }

    /// The configured value of one parameter.
    pub fn configured(&self, name: &str) -> Option<String> {
        self.state.lock().configured.iter().find(|(n, _)| n == name).map(|(_, value)| value.clone())
    }

    /// The migration under way completes.
    pub fn finish_migration(&self) {
        let mut state = self.state.lock();
        if let Some((strategy, shards)) = state.migrating_to.take() {
            state.strategy = strategy;
            state.shards = shards;
        }
    }

    pub fn refuse_config_set(&self, error: Option<&str>) {
        self.state.lock().refuse_config_set = error.map(str::to_owned);
    }

    pub fn refuse_trace_parent(&self, refuse: bool) {
        self.state.lock().refuse_trace_parent = refuse;
    }

    /// What INFO persistence says of the last snapshot and the last append-only write.
    pub fn fail_saves(&self, save_failed: bool, aof_write_failed: bool) {
        let mut state = self.state.lock();
        state.save_failed = save_failed;
        state.aof_write_failed = aof_write_failed;
    }

    pub fn require_password(&self, password: &str) {
        self.state.lock().password = Some(password.to_owned());
    }
}

impl Drop for FakeStore {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<FakeState>>) {
    let mut received = BytesMut::new();
    let mut authenticated = false;
    loop {
        let request = match parse_value(&received) {
            Ok(Some((request, used))) => {
                received.advance(used);
                request
            }
            Ok(None) => match stream.read_buf(&mut received).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            Err(_) => return,
        };
        let Value::Array(items) = request else { return };
        let args: Vec<String> = items
            .iter()
            .map(|item| match item {
                Value::Bulk(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => String::new(),
            })
            .collect();
        let mut reply = BytesMut::new();
        answer(&args, &mut state.lock(), &mut authenticated).encode(&mut reply);
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn answer(args: &[String], state: &mut FakeState, authenticated: &mut bool) -> Value {
    let upper: Vec<String> = args.iter().take(2).map(|arg| arg.to_ascii_uppercase()).collect();
    let command: Vec<&str> = upper.iter().map(String::as_str).collect();
    if command[0] == "AUTH" {
        *authenticated = state.password.as_deref() == args.get(1).map(String::as_str);
        return if *authenticated {
            simple("OK")
        } else {
            Value::Error(Bytes::from("WRONGPASS invalid username-password pair or user is disabled."))
        };
    }
    if state.password.is_some() && !*authenticated {
        return Value::Error(Bytes::from("NOAUTH Authentication required."));
    }
    match command.as_slice() {
        ["CONFIG", "GET"] => Value::Array(
            state
                .configured
                .iter()
                .filter(|(name, _)| args[2..].iter().any(|asked| asked.eq_ignore_ascii_case(name)))
                .flat_map(|(name, value)| [bulk(name), bulk(value)])
                .collect(),
        ),
        ["CONFIG", "SET"] => {
            if let Some(error) = &state.refuse_config_set {
                return Value::Error(Bytes::from(error.clone()));
            }
            for pair in args[2..].chunks_exact(2) {
                match state.configured.iter_mut().find(|(name, _)| name.eq_ignore_ascii_case(&pair[0])) {
                    Some(entry) => entry.1 = pair[1].clone(),
                    None => state.configured.push((pair[0].clone(), pair[1].clone())),
                }
            }
            let target = |name: &str| state.configured.iter().find(|(n, _)| n == name).unwrap().1.clone();
            let target = (target("strategy").parse().unwrap(), target("shards").parse().unwrap());
            if target != (state.strategy, state.shards) {
                state.migrating_to = Some(target);
            }
            state.config_sets += 1;
            simple("OK")
        }
        ["CLIENT", "TRACEPARENT"] if state.refuse_trace_parent => {
            Value::Error(Bytes::from("ERR unknown subcommand 'TRACEPARENT'. Try CLIENT HELP."))
        }
        ["CLIENT", "TRACEPARENT"] => {
            state.trace_parents.push(args[2].clone());
            simple("OK")
        }
        ["INFO", "PERSISTENCE"] => {
            let status = |failed| if failed { "err" } else { "ok" };
            bulk(&format!(
                "# Persistence\r\nloading:0\r\nrdb_last_bgsave_status:{}\r\naof_last_write_status:{}\r\n",
                status(state.save_failed),
                status(state.aof_write_failed),
            ))
        }
        ["INFO", ..] => {
            let (target_strategy, target_shards) = state.migrating_to.unwrap_or((state.strategy, state.shards));
            let info = format!(
                "# Cstore\r\nstrategy:{}\r\nshards:{}\r\nmigration_in_progress:{}\r\nmigration_target_strategy:{}\r\n\
                 migration_target_shards:{}\r\nmigration_keys_moved:{}\r\nmigration_keys_total:{}\r\n",
                state.strategy,
                state.shards,
                u8::from(state.migrating_to.is_some()),
                target_strategy,
                target_shards,
                if state.migrating_to.is_some() { 250 } else { 0 },
                if state.migrating_to.is_some() { 1000 } else { 0 },
            );
            bulk(&info)
        }
        _ => Value::Error(Bytes::from(format!("ERR unknown command '{}'", args.first().cloned().unwrap_or_default()))),
    }
}

fn simple(text: &str) -> Value {
    Value::Simple(Bytes::from(text.to_owned()))
}

fn bulk(text: &str) -> Value {
    Value::Bulk(Bytes::from(text.to_owned()))
}
