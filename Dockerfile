# Multi-stage build of the portcullis gateway.
#   docker build -t portcullis .
#   docker run -v $PWD/deploy:/etc/portcullis:ro -p 8443:8443 portcullis
# For Kubernetes see deploy/kubernetes/. Without .git in the build context, --version and
# portcullis_build_info say revision "unknown".
# The config, certificates and truststore are mounted (secrets / config maps); nothing
# secret is baked into the image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# The workspace member and bench targets the manifest names must be present.
COPY loadtest ./loadtest
COPY benches ./benches
COPY configs ./configs
RUN cargo build --release --locked --bin portcullis

FROM debian:bookworm-slim
# The public CAs, for a jwks_url on the internet (`jwks_ca` in the README names this bundle).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --no-create-home portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
USER 10001
EXPOSE 8443 9901
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["run", "--config", "/etc/portcullis/portcullis.toml"]
