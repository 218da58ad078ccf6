# kubeinvoke operator image: `docker build -t kubeinvoke .`
# Build stage: the release binary only (the emulator and tests are not part of the image).
FROM rust:1 AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kubeinvoke \
    && cp target/release/kubeinvoke /kubeinvoke

# Runtime: distroless with glibc and CA certificates, no shell, non-root (uid/gid 65532), as the
# chart's securityContext expects (runAsNonRoot, readOnlyRootFilesystem: nothing is written).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /kubeinvoke /kubeinvoke
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/kubeinvoke", "controller"]
