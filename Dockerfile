# courier: multi-stage build, non-root runtime, health check on /healthz.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so they stay cached while only the code changes.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/api \
 && echo 'fn main() {}' > src/main.rs \
 && echo '' > src/lib.rs \
 && echo '' > tests/api/main.rs \
 && cargo build --release --locked --bin courier \
 && rm -rf src tests
COPY src ./src
COPY tests ./tests
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin courier

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin courier
WORKDIR /app
COPY --from=build /src/target/release/courier /usr/local/bin/courier
COPY config ./config
ENV COURIER_ENV=production
EXPOSE 8080
USER courier
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["courier"]
CMD ["serve"]
