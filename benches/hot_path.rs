//! Hot-path pieces of the request pipeline in isolation: the Host check, path
//! normalisation and route matching (run once per request, before authentication).
//!
//!   cargo bench --bench hot_path

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use portcullis::config::{AuthMethod, RouteConfig};
use portcullis::proxy::host;
use portcullis::proxy::path::normalize;
use portcullis::route::{RouteMatch, Router};
use portcullis::upstream::Upstream;

fn route(name: &str, host: &str, prefix: &str, methods: &[&str]) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        host: host.into(),
        path_prefix: prefix.into(),
        methods: methods.iter().map(|m| m.to_string()).collect(),
        upstream: "echo".into(),
        auth: vec![AuthMethod::Mtls],
        auth_any: vec![],
        allow: vec![],
        max_body_size: 1 << 20,
        scopes: vec![],
        case_sensitive: false,
    }
}

/// Twenty routes over three host patterns: a realistic gateway config.
fn router() -> Router {
    let mut routes = vec![route("root", "*", "/", &[])];
    for (i, svc) in ["orders", "billing", "users", "search", "inventory", "ship"]
        .iter()
        .enumerate()
    {
        routes.push(route(svc, "*", &format!("/api/{svc}"), &[]));
        routes.push(route(
            &format!("{svc}-w"),
            "api.example.test",
            &format!("/v{i}/{svc}/write"),
            &["POST", "PUT"],
        ));
        routes.push(route(
            &format!("{svc}-int"),
            "*.internal.test",
            &format!("/{svc}"),
            &[],
        ));
    }
    let up = Arc::new(Upstream::echo("echo"));
    Router::new(&routes, |_| Some(up.clone())).expect("bench routes are valid")
}

fn bench_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("path_normalize");
    g.bench_function("clean", |b| {
        b.iter(|| normalize(black_box("/api/orders/12345/items")))
    });
    g.bench_function("dot_segments", |b| {
        b.iter(|| normalize(black_box("/api//orders/./12345/../12346/%7Eitems")))
    });
    g.finish();
}

fn bench_host(c: &mut Criterion) {
    let mut g = c.benchmark_group("host_check");
    let uri: http::Uri = "/api/orders/1".parse().expect("a valid path");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("api.example.test:8443"),
    );
    g.bench_function("http1_host_header", |b| {
        b.iter(|| host::request_host(http::Version::HTTP_11, black_box(&uri), black_box(&headers)))
    });
    g.finish();
}

fn bench_route(c: &mut Criterion) {
    let r = router();
    let mut g = c.benchmark_group("route_find");
    g.bench_function("wildcard_host_prefix", |b| {
        b.iter(|| {
            matches!(
                r.find(
                    black_box("gw.example.test"),
                    black_box("/api/inventory/42"),
                    &Method::GET
                ),
                RouteMatch::Found(_)
            )
        })
    });
    g.bench_function("exact_host_method", |b| {
        b.iter(|| {
            matches!(
                r.find(
                    black_box("api.example.test"),
                    black_box("/v3/search/write/x"),
                    &Method::POST
                ),
                RouteMatch::Found(_)
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_host, bench_path, bench_route);
criterion_main!(benches);
