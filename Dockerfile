# token_sync: PostgreSQL 15 with pg_cron and token_sync, the nightly D-1 sync scheduled.
#   docker build -t token-sync:0.2.0 .
# Build stage: the same install script CI uses (--build-only), then `cargo pgrx package`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN bash scripts/install-deps.sh --build-only
COPY Cargo.toml Cargo.lock token_sync.control ./
COPY src ./src
RUN cargo pgrx package --pg-config /usr/lib/postgresql/15/bin/pg_config

# Runtime: the official image, pg_cron from the PostgreSQL apt repository it is set up for,
# and the packaged extension.
FROM postgres:15-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15-cron ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/token_sync-pg15/usr/ /usr/
COPY pg_cron/ /opt/token_sync/pg_cron/
COPY sql/ /opt/token_sync/sql/
COPY docker/entrypoint.sh /usr/local/bin/token-sync-entrypoint.sh
COPY docker/initdb.sh /docker-entrypoint-initdb.d/50-token-sync.sh
ENV POSTGRES_DB=tokens
EXPOSE 5432
ENTRYPOINT ["token-sync-entrypoint.sh"]
CMD ["postgres"]
