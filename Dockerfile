# token_sync: PostgreSQL with pg_cron and token_sync, the nightly D-1 sync scheduled.
#   docker build -t token-sync:0.5.0-pg18 .
#   docker build --build-arg PG_MAJOR=17 --build-arg DEBIAN_SUITE=trixie -t token-sync:0.5.0-pg17 .
# PostgreSQL and pg_cron are Debian's own packages: 18 from sid (unstable), 17 from trixie,
# 15 from bookworm. The container contract is the official postgres image's (POSTGRES_*
# variables, PGDATA, /docker-entrypoint-initdb.d), kept by docker/postgres-entrypoint.sh.
ARG PG_MAJOR=18
ARG DEBIAN_SUITE=sid

# Only the Rust toolchain is taken from the official Rust image.
FROM rust:1.95-slim AS rust

# Build stage: the same install script CI uses (--build-only), then the Debian package
# (scripts/package.sh), on the runtime's own Debian so that it links against the same
# libraries. A package built elsewhere for the same suite can stand in for this stage:
#   podman build --build-context build=DIR .    (DIR/packages/ holding the .deb)
FROM debian:${DEBIAN_SUITE}-slim AS build
ARG PG_MAJOR
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN bash scripts/install-deps.sh --build-only "$PG_MAJOR"
COPY Cargo.toml Cargo.lock token_sync.control LICENSE ./
COPY src ./src
COPY sql ./sql
COPY pg_cron ./pg_cron
COPY scripts/package.sh scripts/
# The caches keep crates and compiled dependencies between builds on the same machine.
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target \
    bash scripts/package.sh "$PG_MAJOR" --out /packages

FROM debian:${DEBIAN_SUITE}-slim
ARG PG_MAJOR
# The postgres user has the official image's uid and gid (999), which the chart's fsGroup
# names; Debian's packages must not create a cluster of their own.
RUN groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "postgresql-$PG_MAJOR" "postgresql-$PG_MAJOR-cron" ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
 && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
# token_sync from its package, as on a server (its dependencies are all installed above).
COPY --from=build /packages/ /tmp/token_sync-packages/
RUN DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "/tmp/token_sync-packages/postgresql-$PG_MAJOR-token-sync_"*.deb \
 && rm -rf /tmp/token_sync-packages
COPY docker/postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY docker/entrypoint.sh /usr/local/bin/token-sync-entrypoint.sh
COPY docker/initdb.sh /docker-entrypoint-initdb.d/50-token-sync.sh
ENV TOKEN_SYNC_SHARE=/usr/share/postgresql/${PG_MAJOR}/contrib/token_sync \
    PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8 \
    POSTGRES_DB=tokens
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["token-sync-entrypoint.sh"]
CMD ["postgres"]
