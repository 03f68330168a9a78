# wisp: a Nostr relay. Build with
#   docker build -t wisp --build-arg VERSION=$(git describe --tags --always) .
# and run with
#   docker run -p 4869:4869 -v wisp-data:/data wisp
# The image listens on every interface and keeps its database in /data
# unless told otherwise (-e WISP_LISTEN=..., or an --env-file made from
# config.example.env, whose settings are all commented out). A bind mount
# for /data must be writable by uid 10001: chown 10001 <host directory>.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that the download is cached across source changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
# cgo builds the SQLite driver and wisp's copy of libsecp256k1
# (internal/secp256k1, about five times as fast as btcec at verifying).
# Both are compiled from source by the image's gcc: no -dev package needed.
ENV CGO_ENABLED=1
RUN go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/wisp ./cmd/wisp \
 && /out/wisp --version

FROM debian:bookworm-slim
# The binary links only against glibc; ca-certificates is for any future
# outbound HTTPS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin wisp \
 && mkdir -p /data \
 && chown wisp:wisp /data
COPY --from=build /out/wisp /usr/local/bin/wisp
USER wisp
ENV WISP_DATA_DIR=/data \
    WISP_LISTEN=0.0.0.0:4869
VOLUME /data
EXPOSE 4869
# Healthy when the relay answers NIP-11 on WISP_LISTEN, holds /data and can
# write there (wisp health --help). The start period covers a migration or
# a search reindex at start.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/wisp", "health"]
# SIGTERM makes wisp store what it accepted and close the database cleanly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wisp"]
CMD ["serve"]
