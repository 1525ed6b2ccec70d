//! An OTLP trace receiver that counts what it receives: the collector of the tracing
//! overhead benchmark (scripts/bench-tracing.py). Prints `grpc=ADDR http=ADDR` on its first
//! line, then the number of spans received whenever a line arrives on standard input, and
//! exits when standard input closes.

#[path = "../tests/common/otlp.rs"]
mod otlp;

use std::io::BufRead;

fn main() {
    let receiver = otlp::OtlpReceiver::start_keeping(false);
    println!("grpc={} http={}", receiver.grpc_addr, receiver.http_addr);
    for _line in std::io::stdin().lock().lines().map_while(Result::ok) {
        println!("{}", receiver.count());
    }
}
