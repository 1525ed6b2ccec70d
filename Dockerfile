# syntax=docker/dockerfile:1
# One image for both subcommands: `cstore serve` (the store) and `cstore operator`.
# The operator passes its own image to the stores it creates (CSTORE_IMAGE), so a release
# ships exactly one image. Build: docker build -t cstore:dev .

ARG RUST_VERSION=1.95

# --- builder: a release build of the cstore binary, from the locked dependency set --------
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
# make builds jemalloc's bundled C sources (tikv-jemalloc-sys, the binary's allocator); the
# slim image has the C compiler but not make. Pinned to bookworm's version.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads (see .dockerignore): the manifest, the lock file, the sources and
# the declared bench target (Cargo refuses a manifest whose [[bench]] file is missing).
COPY Cargo.toml Cargo.lock ./
COPY benches benches
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cstore \
    && install -D -m 0755 target/release/cstore /out/cstore.full
# The release profile keeps line tables (readable backtraces, profiles): 153 MB, against
# 21 MB stripped. The image gets the stripped binary, linked by a GNU debuglink to the debug
# info, which the `debug` stage below keeps (docker build --target debug -o type=local,dest=.
# exports cstore.debug, for gdb/perf/addr2line against a released binary).
# objcopy is binutils', which the rust image ships (the linker needs it).
RUN objcopy --only-keep-debug /out/cstore.full /out/cstore.debug \
    && objcopy --strip-all --add-gnu-debuglink=/out/cstore.debug /out/cstore.full /out/cstore \
    && rm /out/cstore.full

# --- debug: the separate debug info, for `--target debug`; not part of the runtime image --
FROM scratch AS debug
COPY --from=builder /out/cstore.debug /cstore.debug

# --- runtime: glibc and libgcc only, no shell, no package manager ------------------------
# Debian 12 like the builder, so the binary's glibc matches. The nonroot variant runs as
# 65532:65532, the user the operator's store pods and the chart's securityContext expect.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="cstore" \
      org.opencontainers.image.description="Redis-protocol key-value store and its Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/cstore-dev/cstore" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/cstore /usr/local/bin/cstore
USER 65532:65532
# 6379: Redis protocol (serve); 8080: /healthz, /readyz, /metrics (serve and operator).
EXPOSE 6379 8080
ENTRYPOINT ["cstore"]
CMD ["serve"]
