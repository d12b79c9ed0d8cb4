# syntax=docker/dockerfile:1
# The one sales-operator binary, used by the operator pods (`run`) and the
# OrderGenerator pods (`generate`).
#   docker build -t sales-operator .

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Cargo.toml declares the benchmark target, so its file must exist to build.
COPY benches ./benches
COPY queries ./queries
COPY src ./src
# BuildKit caches the registry and target dir between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sales-operator \
    && cp target/release/sales-operator /sales-operator

# glibc, libgcc and CA certificates only: no shell, no package manager; uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sales-operator /sales-operator
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/sales-operator"]
CMD ["run"]
