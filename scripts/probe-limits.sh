#!/usr/bin/env bash
# Per-client limits at work (issue 15, "Server: memory and time per client"): starts
# `cstore serve` with a password and a 2 s client-write-timeout on a free loopback port, then
# shows each limit being reached, with numbers (RSS from /proc/PID/status):
#   - MGET naming a 1 MiB value 5,000 times, never read: the server stays up, RSS bounded;
#     the same MGET 300 times is streamed whole to a client that reads;
#   - a client pipelining 5,000 GETs of 1 MiB and never reading is closed at its write
#     deadline while another client's PINGs stay fast;
#   - a reply over the hard client-output-buffer-limit closes its client;
#   - fifty unauthenticated clients announcing 512 MiB bulks are refused at once, RSS flat;
#   - CLIENT LIST shows qbuf/omem/tot-mem, and buffers shrink after a large request;
#   - tcp-keepalive is on the accepted socket; maxclients is lowered under a low RLIMIT_NOFILE;
#   - maxmemory-clients: above the clients' total nothing happens; at a limit under it the
#     client using the most is evicted (not one with CLIENT NO-EVICT on), the others are served;
#   - active expiry on 4,096 shards: 50,000 keys with a 500 ms TTL among 100,000 with an hour,
#     never read, are gone from memory within seconds;
#   - SIGTERM does not wait the grace period for a client that never reads.
# Any limit not holding fails the script. CI runs it with a debug build (CSTORE_BIN).
#
# Usage: scripts/probe-limits.sh
# Environment: CSTORE_BIN (default: build target/release/cstore)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

cstore_bin_or_build
command -v ss >/dev/null || fail "ss (iproute2) is required"
command -v prlimit >/dev/null || fail "prlimit (util-linux) is required"

exec python3 - "$CSTORE_BIN" <<'PYTHON'
import json, os, signal, socket, statistics, subprocess, sys, threading, time

BIN = sys.argv[1]
MIB = 1 << 20
failures = []

def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)

def start(extra, wrapper=()):
    proc = subprocess.Popen([*wrapper, BIN, "serve", "--port", "0", "--admin-port", "0", "--bind", "127.0.0.1",
                             "--log-format", "json", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("CSTORE_")}, "RUST_LOG": "info"})
    log = []
    for line in proc.stderr:
        log.append(line)
        if '"cstore serve started"' in line:
            # Keep draining its log, so that logging never blocks the server.
            threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
            return proc, json.loads(line)["port"], log
    sys.exit("the server did not start:\n" + "".join(log))

def rss(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

def encode(*args):
    args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)

class Client:
    def __init__(self, port, password=None):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        if password:
            assert self.call("AUTH", password) == b"+OK", "AUTH"

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        if line[:1] in (b"$", b"="):
            n = int(line[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if line[:1] == b"*":
            return [self.reply() for _ in range(int(line[1:]))]
        return line

    def call(self, *args):
        self.sock.sendall(encode(*args))
        return self.reply()

    def info(self, field):
        for line in self.call("INFO").decode().splitlines():
            if line.startswith(field + ":"):
                return int(line.split(":", 1)[1])

    def closed_by_server(self, within):
        self.sock.settimeout(within)
        try:
            while self.sock.recv(1 << 20):
                pass
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

def wait_for(what, within, predicate):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False

PASSWORD = "probe"
server, port, log = start(["--requirepass", PASSWORD, "--client-write-timeout-secs", "2"])
pid = server.pid
admin = Client(port, PASSWORD)
admin.call("SET", "big", b"v" * MIB)
base = rss(pid)
print(f"server pid {pid}, port {port}; RSS after a 1 MiB value: {base / MIB:.1f} MiB")

print("\n1. MGET naming a 1 MiB value 5,000 times (5,000 MiB of reply)")
idle = Client(port, PASSWORD)
sent = time.monotonic()
idle.sock.sendall(encode("MGET", *["big"] * 5000))
time.sleep(1)
grown = rss(pid) - base
print(f"  never read: RSS {rss(pid) / MIB:.1f} MiB (+{grown / MIB:.1f} MiB), peak VmHWM {rss(pid, 'VmHWM') / MIB:.1f} MiB")
check(grown < 64 * MIB, "the unread 5,000 MiB reply grows the RSS by less than 64 MiB")
check(wait_for("close", 15, lambda: admin.info("connected_clients") == 1), "the client that never reads is closed")
print(f"  closed {time.monotonic() - sent:.1f} s after sending it (client-write-timeout 2 s)")
check(admin.call("PING") == b"+PONG", "the server is up")
reader = Client(port, PASSWORD)
started = time.monotonic()
reader.sock.sendall(encode("MGET", *["big"] * 300))
values = reader.reply()
elapsed = time.monotonic() - started
check(len(values) == 300 and all(v == b"v" * MIB for v in values), "a reading client gets all 300 MiB of MGET big x300")
print(f"  read 300 MiB in {elapsed:.2f} s; peak VmHWM {rss(pid, 'VmHWM') / MIB:.1f} MiB (hard limit 256 MiB: streamed, not built)")
del values, reader

print("\n2. A client pipelining 5,000 GETs of 1 MiB, never reading")
stalled = Client(port, PASSWORD)
stalled.sock.sendall(b"".join(encode("GET", "big") for _ in range(5000)))
time.sleep(0.2)
latencies = []
for _ in range(200):
    t = time.perf_counter()
    admin.call("PING")
    latencies.append((time.perf_counter() - t) * 1e3)
latencies.sort()
print(f"  another client's PING meanwhile: p50 {statistics.median(latencies):.3f} ms, "
      f"p99 {latencies[197]:.3f} ms, max {latencies[-1]:.3f} ms")
clients = admin.call("CLIENT", "LIST").decode()
omem = max(int(f.split("=")[1]) for line in clients.splitlines() for f in line.split() if f.startswith("omem="))
print(f"  its omem in CLIENT LIST: {omem / 1024:.0f} KiB (the rest waits in the socket and in its unread requests)")
check(omem <= 2 * MIB, "the stalled client's pending output stays within 256 KiB + one value")
started = time.monotonic()
check(wait_for("close", 15, lambda: admin.info("connected_clients") == 1), "the stalled client is closed")
print(f"  closed after {time.monotonic() - started:.1f} s more; RSS {rss(pid) / MIB:.1f} MiB")
check(any("left its replies unread" in line for line in log), "its closing is logged")

print("\n3. client-output-buffer-limit normal 4mb 0 0, and a GET of an 8 MiB value")
admin.call("SET", "eight", b"v" * (8 * MIB))
admin.call("CONFIG", "SET", "client-output-buffer-limit", "normal 4mb 0 0")
greedy = Client(port, PASSWORD)
greedy.sock.sendall(encode("GET", "eight"))
check(greedy.closed_by_server(5), "the client whose reply reaches the hard limit is closed, nothing sent")
check(wait_for("log", 5, lambda: any("overcoming of output buffer limits" in line for line in log)),
      "and logged as Redis logs it")
admin.call("CONFIG", "SET", "client-output-buffer-limit", "normal 256mb 64mb 60")

print("\n4. Fifty unauthenticated clients announcing 512 MiB bulks")
before = rss(pid)
announcers = [Client(port) for _ in range(50)]
for c in announcers:
    c.sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n")
answers = {c.line() for c in announcers}
print(f"  answers: {answers}; RSS {before / MIB:.1f} -> {rss(pid) / MIB:.1f} MiB")
check(answers == {b"-ERR Protocol error: unauthenticated bulk length"}, "each is refused at its header")
check(rss(pid) - before < 8 * MIB, "fifty announcers cost less than 8 MiB")
eleven = Client(port)
eleven.sock.sendall(b"*11\r\n")
check(eleven.line() == b"-ERR Protocol error: unauthenticated multibulk length", "11 arguments before AUTH are refused")
del announcers

print("\n5. CLIENT LIST and trimming after a 4 MiB request")
big_request = Client(port, PASSWORD)
cid = big_request.call("CLIENT", "ID").decode().lstrip(":")
big_request.sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (4 * MIB) + b"v" * (2 * MIB))
def fields():
    line = admin.call("CLIENT", "LIST", "ID", cid).decode().split()
    return {k: int(v) for k, v in (f.split("=", 1) for f in line) if k in ("qbuf", "qbuf-free", "omem", "tot-mem")}
wait_for("qbuf", 5, lambda: fields()["qbuf"] >= 2 * MIB)
print(f"  half a 4 MiB SET received: {fields()}")
big_request.sock.sendall(b"v" * (2 * MIB) + b"\r\n")
big_request.line()
print(f"  executed: {fields()}")
check(wait_for("trim", 10, lambda: fields()["tot-mem"] < 256 * 1024), "the read buffer shrinks once unused")
print(f"  a few seconds later: {fields()}")

print("\n6. tcp-keepalive and RLIMIT_NOFILE")
print(f"  CONFIG GET tcp-keepalive: {admin.call('CONFIG', 'GET', 'tcp-keepalive')[1].decode()}")
peer = admin.sock.getsockname()[1]
def timer():
    out = subprocess.run(["ss", "-tnoH", "state", "established", f"( sport = :{port} and dport = :{peer} )"],
                         capture_output=True, text=True).stdout
    return out.split("timer:")[1].strip() if "timer:" in out else ""
wait_for("keepalive", 5, lambda: "keepalive" in timer())
print(f"  server side of a client socket: timer:{timer()}")
check("keepalive" in timer(), "accepted sockets have a keepalive timer")
limited, limited_port, limited_log = start(["--maxclients", "1000"], wrapper=("prlimit", "--nofile=96:96"))
lowered = Client(limited_port).call("CONFIG", "GET", "maxclients")[1].decode()
print(f"  --maxclients 1000 under ulimit -n 96: maxclients {lowered}")
check(lowered == "64", "maxclients is lowered to the open files limit minus 32")
limited.terminate()
limited.wait()

print("\n7. maxmemory-clients (client eviction)")
def tot_mem():
    return {int(fields["id"]): int(fields["tot-mem"]) for fields in
            (dict(f.split("=", 1) for f in line.split() if "=" in f)
             for line in admin.call("CLIENT", "LIST").decode().splitlines())}
loader = Client(port, PASSWORD)  # a SET this large leaves its read buffer large: not the admin's
loader.call("SET", "twenty-four", b"v" * (24 * MIB))
loader.sock.close()
check(admin.call("CLIENT", "NO-EVICT", "on") == b"+OK", "CLIENT NO-EVICT on")
unread = {}
for name, key in (("largest", "twenty-four"), ("medium-1", "eight"), ("medium-2", "eight")):
    client = Client(port, PASSWORD)
    unread[name] = (client, int(client.call("CLIENT", "ID")[1:]))
    client.sock.sendall(encode("GET", key))
time.sleep(1)
sizes = tot_mem()
total = admin.info("mem_clients_normal")
print(f"  default maxmemory-clients {admin.call('CONFIG', 'GET', 'maxmemory-clients')[1].decode()} of maxmemory 0: no limit")
print("  three clients with a GET unread: " + ", ".join(f"{name} {sizes[cid] / MIB:.1f} MiB" for name, (_, cid) in unread.items())
      + f"; all clients {total / MIB:.1f} MiB (mem_clients_normal)")
above = total + 8 * MIB
admin.call("CONFIG", "SET", "maxmemory-clients", above)
time.sleep(0.5)
check(admin.info("evicted_clients") == 0 and all(cid in tot_mem() for _, cid in unread.values()),
      f"limit {above / MIB:.1f} MiB, above the total: nobody is evicted")
largest = sizes[unread["largest"][1]]
limit = total - largest // 2
started = time.monotonic()
admin.call("CONFIG", "SET", "maxmemory-clients", limit)
gone = wait_for("eviction", 5, lambda: unread["largest"][1] not in tot_mem())
print(f"  limit {limit / MIB:.1f} MiB: the largest evicted after {(time.monotonic() - started) * 1e3:.0f} ms; "
      f"mem_clients_normal now {admin.info('mem_clients_normal') / MIB:.1f} MiB, evicted_clients {admin.info('evicted_clients')}")
check(gone, "at a limit under the total, the client using the most is evicted")
time.sleep(0.3)
check(admin.info("evicted_clients") == 1 and unread["medium-1"][1] in tot_mem() and unread["medium-2"][1] in tot_mem(),
      "only it: the others, and the admin client (NO-EVICT), stay")
medium = unread["medium-1"][0]
check(medium.reply() == b"v" * (8 * MIB) and medium.call("PING") == b"+PONG", "the others are served as before")
check(any("client evicted" in line for line in log), "the eviction is logged")
admin.call("CONFIG", "SET", "maxmemory-clients", "10%")
for client, _ in unread.values():
    client.sock.close()

print("\n8. Active expiry on 4,096 shards: 100,000 keys with a one-hour TTL, 50,000 with 500 ms, never read")
sharded, sharded_port, _ = start(["--shards", "4096"])
store = Client(sharded_port)
def load(prefix, count, ttl_ms):
    for first in range(0, count, 1000):
        store.sock.sendall(b"".join(encode("SET", f"{prefix}:{n}", "v", "PX", ttl_ms) for n in range(first, first + 1000)))
        for _ in range(1000):
            store.reply()
def keyspace():
    line = store.call("INFO", "keyspace").decode().split("db0:")[1].split()[0]
    return dict(pair.split("=") for pair in line.split(","))
load("hour", 100_000, 3_600_000)
load("short", 50_000, 500)
loaded = time.monotonic()
print(f"  loaded: DBSIZE {int(store.call('DBSIZE')[1:])}, keyspace {keyspace()}")
swept = wait_for("expiry", 10, lambda: int(store.call("DBSIZE")[1:]) == 100_000)
took = time.monotonic() - loaded
print(f"  {took:.1f} s later: DBSIZE {int(store.call('DBSIZE')[1:])}, keyspace {keyspace()}, expired_keys {store.info('expired_keys')}")
check(swept, "the 50,000 expired keys are gone from memory within 10 s, unread")
check(store.info("expired_keys") == 50_000, "every one of them counted in expired_keys, none of the others")
sharded.terminate()
sharded.wait()

print("\n9. SIGTERM with a client that never reads (shutdown grace 30 s)")
stuck = Client(port, PASSWORD)
stuck.sock.sendall(b"".join(encode("GET", "big") for _ in range(500)))
time.sleep(0.3)
started = time.monotonic()
server.send_signal(signal.SIGTERM)
server.wait(timeout=60)
took = time.monotonic() - started
print(f"  exited in {took:.1f} s")
check(took < 10, "shutdown does not wait the grace period for it")

if failures:
    sys.exit(f"\n{len(failures)} limit(s) did not hold: {failures}")
print("\nevery limit held")
PYTHON
