# Multi-stage build of the portcullis gateway.
#   docker build -t portcullis .
#   docker run -v $PWD/deploy:/etc/portcullis:ro -p 8443:8443 portcullis
# The config, certificates and truststore are mounted (secrets / config maps); nothing
# secret is baked into the image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace member and bench targets the manifest names must be present.
COPY loadtest ./loadtest
COPY benches ./benches
COPY configs ./configs
RUN cargo build --release --locked --bin portcullis

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
USER 10001
EXPOSE 8443 9901
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["run", "--config", "/etc/portcullis/portcullis.toml"]
