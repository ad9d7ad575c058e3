//! The dashboard: static HTML, CSS and JavaScript embedded in the binary and served at `/`.
//!
//! Every response carries a strict Content-Security-Policy (scripts, styles and connections
//! from this origin only; no inline script, no `eval`, no framing) and `nosniff`. Assets are
//! gzip-compressed once, on first use, for clients that accept it. `index.html` links every
//! asset with `?v=<content hash>`, so a versioned asset can be cached for a year
//! (`immutable`) while the page itself is revalidated on each load (`no-cache` + `ETag`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};

/// The dashboard's files (`siren-server/assets/`), built into the binary.
static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/assets");

/// The page every asset hangs off.
const INDEX: &str = "index.html";

/// The policy sent with every dashboard response. The dashboard loads only its own files
/// and talks only to its own origin; data never becomes markup (see `assets/app.js`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Cache lifetime of an asset requested with its current version.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One servable file, prepared once.
struct Asset {
    body: &'static [u8],
    gzip: Option<Vec<u8>>,
    content_type: HeaderValue,
    /// First 16 hex digits of the BLAKE3 hash of the body.
    version: String,
}

/// Every file under `assets/` by its path there, plus the rewritten index page.
struct Catalogue {
    files: HashMap<String, Asset>,
    index: Asset,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut files = HashMap::new();
        collect(&ASSETS, &mut files);
        let page = files
            .remove(INDEX)
            .map(|asset| String::from_utf8_lossy(asset.body).into_owned())
            .unwrap_or_default();
        // Link each asset by its version so that browsers may cache it for good.
        let mut page = page;
        for (path, asset) in &files {
            page = page.replace(
                &format!("\"/assets/{path}\""),
                &format!("\"/assets/{path}?v={}\"", asset.version),
            );
        }
        let body: &'static [u8] = Box::leak(page.into_bytes().into_boxed_slice());
        let index = prepare(INDEX, body);
        Catalogue { files, index }
    })
}

fn collect(dir: &'static Dir<'static>, out: &mut HashMap<String, Asset>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        out.insert(path.clone(), prepare(&path, file.contents()));
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

fn prepare(path: &str, body: &'static [u8]) -> Asset {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "svg");
    let content_type = if text {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let hash = blake3::hash(body).to_hex();
    Asset {
        body,
        gzip: if text { gzip(body) } else { None },
        content_type: HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        version: hash[..16].to_owned(),
    }
}

/// The body gzip-compressed, when that makes it at least a tenth smaller.
fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < body.len() - body.len() / 10).then_some(compressed)
}

/// The dashboard's routes: `/`, `/index.html` and `/assets/…`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    respond(&catalogue().index, "no-cache", &headers)
}

async fn asset(
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let catalogue = catalogue();
    let Some(asset) = catalogue.files.get(path.as_str()) else {
        return with_security_headers((StatusCode::NOT_FOUND, "not found").into_response());
    };
    let current = query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.strip_prefix("v=") == Some(asset.version.as_str()))
    });
    let cache = if current { IMMUTABLE } else { "no-cache" };
    respond(asset, cache, &headers)
}

fn respond(asset: &Asset, cache: &'static str, request: &HeaderMap) -> Response {
    let use_gzip = asset.gzip.is_some() && accepts_gzip(request);
    let etag = if use_gzip {
        format!("\"{}-gz\"", asset.version)
    } else {
        format!("\"{}\"", asset.version)
    };
    let not_modified = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim().trim_start_matches("W/");
            tag == etag || tag == "*"
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match (&asset.gzip, use_gzip) {
            (Some(compressed), true) => {
                let mut response = Response::new(Body::from(compressed.clone()));
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                response
            }
            _ => Response::new(Body::from(asset.body)),
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, asset.content_type.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if asset.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    with_security_headers(response)
}

/// Whether the request's `Accept-Encoding` allows gzip (`gzip` or `*`, with a non-zero q).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// Adds the dashboard's security headers to a response.
fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn index_links_versioned_assets_under_a_strict_policy() {
        let response = get("/", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let page = text(response).await;
        let version = &catalogue().files["app.js"].version;
        assert!(
            page.contains(&format!("\"/assets/app.js?v={version}\"")),
            "{page}"
        );
        assert!(page.contains("/assets/vendor/chart.umd.min.js?v="));
        // No inline script: every <script> has a src.
        assert_eq!(
            page.matches("<script").count(),
            page.matches("<script src=").count()
        );
    }

    #[tokio::test]
    async fn assets_have_types_and_cache_by_version() {
        let version = catalogue().files["app.css"].version.clone();
        let current = get(&format!("/assets/app.css?v={version}"), &[]).await;
        assert_eq!(current.status(), StatusCode::OK);
        assert_eq!(
            current.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        assert_eq!(current.headers()[header::CACHE_CONTROL], IMMUTABLE);
        let stale = get("/assets/app.css?v=0000", &[]).await;
        assert_eq!(stale.headers()[header::CACHE_CONTROL], "no-cache");
        let js = get("/assets/app.js", &[]).await;
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let svg = get("/assets/favicon.svg", &[]).await;
        assert_eq!(
            svg.headers()[header::CONTENT_TYPE],
            "image/svg+xml; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn gzip_when_accepted_and_not_modified_on_a_matching_etag() {
        let plain = get("/assets/vendor/chart.umd.min.js", &[]).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let plain_len = to_bytes(plain.into_body(), 1 << 24).await.unwrap().len();
        let zipped = get(
            "/assets/vendor/chart.umd.min.js",
            &[("accept-encoding", "br, gzip;q=0.8")],
        )
        .await;
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(zipped.headers()[header::VARY], "Accept-Encoding");
        let etag = zipped.headers()[header::ETAG].to_str().unwrap().to_owned();
        let zipped_len = to_bytes(zipped.into_body(), 1 << 24).await.unwrap().len();
        assert!(zipped_len * 2 < plain_len, "{zipped_len} vs {plain_len}");
        let refused = get("/assets/app.js", &[("accept-encoding", "gzip;q=0")]).await;
        assert!(refused.headers().get(header::CONTENT_ENCODING).is_none());
        let again = get(
            "/assets/vendor/chart.umd.min.js",
            &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(
            to_bytes(again.into_body(), 1 << 24)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found_with_the_policy() {
        for uri in [
            "/assets/nope.js",
            "/assets/../Cargo.toml",
            "/assets/index.html",
        ] {
            let response = get(uri, &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
            assert!(
                response
                    .headers()
                    .contains_key(header::CONTENT_SECURITY_POLICY)
            );
        }
    }
}
