# syntax=docker/dockerfile:1
# The sales-operator image, built with BuildKit/buildx (the release workflow builds linux/amd64
# and linux/arm64, each on its own native runner). The same image as scripts/image.sh builds
# without a container runtime (tests/image.rs checks that archive, and that this file names the
# same user, entrypoint and labels): a statically linked binary (glibc, crt-static), Debian's CA
# bundle, image/rootfs/ (passwd, group, nsswitch.conf), /tmp and /home/nonroot; no shell, no
# libc; UID/GID 65532.
#   docker buildx build --build-arg VERSION=0.1.0 --build-arg SALES_OPERATOR_REVISION=$(git rev-parse HEAD) -t sales-operator .

FROM rust:1-bookworm AS build
# .git is not in the build context: build.rs takes the revision from here ("unknown" if unset).
ARG SALES_OPERATOR_REVISION=unknown
ARG SOURCE_DATE_EPOCH
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# Cargo.toml declares the benchmark targets, so their files must exist to build.
COPY benches ./benches
COPY queries ./queries
COPY src ./src
# BuildKit caches the registry and target dir between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-gnu" \
    && RUSTFLAGS="-C target-feature=+crt-static" \
       cargo build --release --locked --target "$target" --bin sales-operator \
    && cp "target/$target/release/sales-operator" /sales-operator
COPY image/rootfs/ /rootfs/
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/home/nonroot \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
    && chmod 0644 /rootfs/etc/passwd /rootfs/etc/group /rootfs/etc/nsswitch.conf \
    && chmod 1777 /rootfs/tmp \
    && chmod 0700 /rootfs/home/nonroot && chown 65532:65532 /rootfs/home/nonroot

FROM scratch
ARG VERSION=0.1.0
ARG SALES_OPERATOR_REVISION=unknown
ARG SOURCE=https://github.com/sales-operator/sales-operator
COPY --from=build /rootfs/ /
COPY --from=build /sales-operator /sales-operator
LABEL org.opencontainers.image.title="sales-operator" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${SALES_OPERATOR_REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
WORKDIR /
EXPOSE 8080
ENTRYPOINT ["/sales-operator"]
CMD ["run"]
