# courier: multi-stage build; the runtime image holds only the binary, its
# config files, CA certificates and curl (for the health check), and runs as
# the non-root user courier (uid 10001) with COURIER_ENV=production
# (listens on 0.0.0.0:8080; set COURIER__REDIS__URL,
# COURIER__AUTH__ADMIN_KEYS and COURIER__AUTH__ENCRYPTION_KEYS in the
# environment).
#
#   docker build -t courier .
#   docker run -p 8080:8080 -e COURIER__REDIS__URL=redis://redis:6379 \
#     -e COURIER__AUTH__ADMIN_KEYS=... \
#     -e COURIER__AUTH__ENCRYPTION_KEYS="$(openssl rand -base64 32)" courier

FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first: built against placeholder sources, this layer stays
# cached until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && cargo build --release --locked --bin courier \
 && rm -rf src

# The real sources. COPY keeps the files' original mtimes, which can be older
# than the placeholder build; touching makes cargo rebuild the crate itself.
COPY src ./src
# Email templates are compiled into the binary (askama).
COPY templates ./templates
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin courier

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
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["courier"]
CMD ["serve"]
