# mai-provision as a FROM scratch image: the static binary, the two folders
# it writes to, and nothing else.
#
#   docker build -t mai-provision .
#       builds the binary in a Rust stage (needs network for the Rust image
#       and crates);
#   cp "$(scripts/build-static.sh)" dist/mai-provision &&
#   docker build --target prebuilt -t mai-provision .
#       packages a binary built outside (what CI does; pulls nothing).
#       Without dist/mai-provision that image has no binary and cannot start.
#
# Stage order matters: the legacy builder (DOCKER_BUILDKIT=0) builds every
# stage up to the target, so `base` and `prebuilt` come before the Rust
# stage, and `--target prebuilt` never needs the Rust image. BuildKit builds
# only the stages the target needs.

# Settings shared by both images. The two folders are created owned by the
# job's user, so that a new named volume mounted there (which Docker seeds
# from the image) is writable by the job on its first boot.
FROM scratch AS base
COPY image/empty/ /app/backend/
COPY image/empty/ /run/
COPY --chown=65532:65532 image/empty/ /app/backend/data/
COPY --chown=65532:65532 image/empty/ /run/mai/
ENV PROVISION_MODE=production \
    DATA_DIR=/app/backend/data \
    ENV_FILE=/run/mai/.env
USER 65532:65532
ENTRYPOINT ["/mai-provision"]

# A binary built outside, from dist/. dist/ exists in every checkout (its
# .gitignore keeps it), so the legacy builder can pass through this stage on
# a plain build even when no binary was put there.
FROM base AS prebuilt
COPY dist/ /

# The binary built from source, the same way scripts/build-static.sh builds
# it everywhere: static glibc on this image, which has no musl target.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN bin="$(scripts/build-static.sh)" && install -D -m 0755 "$bin" /out/mai-provision

# The default target: what a plain `docker build .` produces.
FROM base AS runtime
COPY --from=builder /out/mai-provision /mai-provision
