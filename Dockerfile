# Multi-stage build: compile with the full Rust image, run on a slim Debian with only CA
# certificates (rustls: no OpenSSL, no libpq).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY sim/Cargo.toml sim/Cargo.toml
# Cache the dependency build: compile against stub sources first. Cargo refuses a manifest whose
# targets have no file, so every [lib], [[bin]], [[bench]] and [[test]] of both manifests gets a
# stub here; tests/dockerfile.rs runs this step against the manifests and fails when one is missing.
# (fuzz/ is outside the workspace.)
RUN set -eu; \
    for lib in src/lib.rs sim/src/lib.rs; do mkdir -p "$(dirname "$lib")"; : > "$lib"; done; \
    for main in src/main.rs sim/src/main.rs tests/it/main.rs \
        benches/upsert.rs benches/sync.rs benches/ingest.rs benches/freshness.rs benches/fastpoll.rs \
        benches/cluster.rs benches/accounts.rs \
        sim/benches/batch_read.rs; do \
      mkdir -p "$(dirname "$main")"; echo 'fn main() {}' > "$main"; \
    done
RUN cargo build --release --locked -p hubspot-sync --bin hubspot-sync
COPY . .
RUN touch src/main.rs src/lib.rs sim/src/lib.rs sim/src/main.rs \
 && cargo build --release --locked -p hubspot-sync --bin hubspot-sync

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home hubspot-sync
COPY --from=build /src/target/release/hubspot-sync /usr/local/bin/hubspot-sync
USER hubspot-sync
ENV PORT=8080 METRICS_PORT=9091 LOG_FORMAT=json
EXPOSE 8080 9091
ENTRYPOINT ["hubspot-sync"]
CMD ["serve"]
