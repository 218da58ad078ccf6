# kubeinvoke operator image: `docker build -t kubeinvoke .`
#
# Stages:
#   build     compiles the release binaries, the operator and the kubectl plugin (the emulator and
#             tests are not part of the image)
#   prebuilt  takes already built binaries from the build context instead (BINARY=prebuilt)
#   runtime   the image: distroless with glibc and CA certificates, no shell, non-root (uid/gid
#             65532), as the chart's securityContext expects (runAsNonRoot, readOnlyRootFilesystem:
#             nothing is written)
#
# `make image` builds the runtime stage of this file with buildah, without a Docker engine or a
# registry: BINARY=prebuilt with the binary cargo built, and RUNTIME_BASE set to a base assembled from
# Debian's own glibc, libgcc and CA certificates with the same nonroot user (hack/images.sh).
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARY=build

FROM rust:1 AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kubeinvoke --bin kubectl-invoke \
    && cp target/release/kubeinvoke target/release/kubectl-invoke /

FROM scratch AS prebuilt
COPY kubeinvoke kubectl-invoke /

FROM ${BINARY} AS binary

FROM ${RUNTIME_BASE} AS runtime
COPY --from=binary /kubeinvoke /kubeinvoke
# `kubectl invoke` for pipelines that run it in a container (it needs a kubeconfig or in-cluster
# credentials with the runner role).
COPY --from=binary /kubectl-invoke /usr/local/bin/kubectl-invoke
USER 65532:65532
EXPOSE 8080
# The chart passes `controller` and its flags as arguments.
ENTRYPOINT ["/kubeinvoke"]
CMD ["controller"]
