# courier: multi-stage build; the runtime image holds only the (stripped)
# binary, its config files, CA certificates and curl (for the health check),
# and runs as the non-root user courier (uid 10001) with
# COURIER_ENV=production (listens on 0.0.0.0:8080, JSON logs).
#
# Production needs, in the environment:
#   COURIER__REDIS__URL              redis://… or rediss://… (TLS)
#   COURIER__AUTH__ADMIN_KEYS        the platform's admin keys, comma-separated
#   COURIER__AUTH__ENCRYPTION_KEYS   `openssl rand -base64 32` (signing secrets at rest)
#   COURIER__SERVER__PUBLIC_BASE_URL https://… (links in emails and the dashboard)
#   COURIER__SMTP__URL               smtp+starttls://user:pass@host:587 or smtps://…
#   COURIER__SMTP__FROM              "Platform <notifications@platform.example>"
# `docker run … courier check-config` checks them without starting.
#
# Stopping: courier drains for server.shutdown_timeout_secs (30 s) after
# SIGTERM; Docker's default stop timeout is 10 s, so give it more:
#   docker run --stop-timeout 45 …   (compose: stop_grace_period: 45s)
#
#   docker build -t courier .
#   docker run -p 8080:8080 --stop-timeout 45 \
#     -e COURIER__REDIS__URL=redis://redis:6379 \
#     -e COURIER__AUTH__ADMIN_KEYS=... \
#     -e COURIER__AUTH__ENCRYPTION_KEYS="$(openssl rand -base64 32)" \
#     -e COURIER__SERVER__PUBLIC_BASE_URL=https://webhooks.platform.example \
#     -e COURIER__SMTP__URL=smtp+starttls://user:pass@mail.platform.example:587 \
#     -e COURIER__SMTP__FROM='Platform <notifications@platform.example>' courier
#
# scripts/check-dockerfile (run by CI) builds exactly what the build stage
# copies, with its commands, in a directory holding only those files.

FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first: built against placeholder sources, this layer stays
# cached until Cargo.toml or Cargo.lock change. Every target Cargo.toml
# declares needs a file, or cargo refuses the manifest; the bench and test
# placeholders stay (the image builds only the courier binary).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin benches tests/api \
 && for f in src/main.rs src/bin/courier-bench.rs benches/hot.rs tests/api/main.rs; do \
      echo 'fn main() {}' > "$f"; \
    done \
 && : > src/lib.rs \
 && cargo build --release --locked --bin courier \
 && rm -rf src

# The real sources. COPY keeps the files' original mtimes, which can be older
# than the placeholder build; touching makes cargo rebuild the crate itself.
COPY src ./src
# Email and dashboard templates are compiled into the binary (askama).
COPY templates ./templates
# Stripped: the release profile keeps line tables for backtraces in
# development, which more than double the binary.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin courier \
 && strip target/release/courier

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 courier \
 && useradd --uid 10001 --gid courier --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin courier
COPY --from=build /src/target/release/courier /usr/local/bin/courier
WORKDIR /app
COPY config ./config
ENV COURIER_ENV=production
EXPOSE 8080
USER courier
# The port follows COURIER__SERVER__PORT when it is set.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${COURIER__SERVER__PORT:-8080}/healthz" || exit 1
ENTRYPOINT ["courier"]
CMD ["serve"]
