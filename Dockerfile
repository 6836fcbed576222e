# Multi-stage build: compile with the full Rust image, run on a slim Debian with only CA
# certificates (rustls: no OpenSSL, no libpq).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY sim/Cargo.toml sim/Cargo.toml
# Cache the dependency build: compile against stub sources first.
RUN mkdir -p src sim/src benches sim/benches tests/it \
 && touch tests/it/main.rs \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > sim/src/main.rs && touch sim/src/lib.rs \
 && echo 'fn main() {}' > benches/upsert.rs && echo 'fn main() {}' > sim/benches/batch_read.rs \
 && cargo build --release --locked -p hubspot-sync --bin hubspot-sync || true
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
