//! The web dashboard: one page, its script and style sheet, and hls.js for the previews,
//! embedded in the binary (the scratch image has nothing else) and served from it.
//!
//! `GET /` and `GET /dashboard` answer the page (`no-cache`, with a Content-Security-Policy
//! that lets it load only this server's assets and talk only to this server); its assets are
//! named by their content, `/dashboard/assets/{stem}.{hash}.{ext}` (the first 16 hex digits
//! of the SHA-256 of the bytes), and cached for a year as immutable. The page holds no data:
//! it reads the stats API (`/api/*`) with the bearer token the viewer enters, so it is open
//! like playback, and the API's own token check guards what it shows and does.
//!
//! hls.js: `hls.light.min.js` of hls.js 1.7.4, the light build of the `dist/` folder of the
//! npm package `hls.js@1.7.4` (<https://github.com/video-dev/hls.js>), unmodified; the light
//! build keeps Low-Latency HLS, which is in the core. SHA-256 of the file:
//! `482cccb3a224554f64d8c2cf0d335dba4a3819bdb726afbfddfe15de4c277d82`. Apache License 2.0,
//! its notice (the package's `LICENSE`) in `assets/HLS-JS-LICENSE`, served beside it and
//! linked from the page.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ring::digest::{SHA256, digest};

/// The hls.js release embedded (`assets/hls.light.min.js`).
pub const HLS_JS_VERSION: &str = "1.7.4";

/// Where the assets are served.
pub const ASSETS_PATH: &str = "/dashboard/assets";

/// The page's Content-Security-Policy: scripts, styles, images and requests from this
/// server only; media and hls.js's worker from `blob:` URLs (Media Source Extensions, and the
/// worker hls.js builds from its own code); thumbnails also as `data:`/`blob:` images. No
/// inline script or style, no plug-ins, no framing (the controls cannot be clicked through
/// another site's page).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; style-src 'self'; \
     script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Cache lifetime of a content-named asset: a changed file has another name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One embedded file: what the page calls it before hashing, and its bytes.
struct Source {
    /// The name without its extension (`dashboard`, `hls.light.min`).
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every asset, as the page's template refers to them: `{{stem.ext}}`.
const SOURCES: [Source; 4] = [
    Source {
        stem: "dashboard",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/dashboard.js"),
    },
    Source {
        stem: "dashboard",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/dashboard.css"),
    },
    Source {
        stem: "hls.light.min",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/hls.light.min.js"),
    },
    Source {
        stem: "hls-js-license",
        ext: "txt",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("assets/HLS-JS-LICENSE"),
    },
];

/// The page's template: `{{stem.ext}}` marks where an asset's served path goes.
const PAGE_TEMPLATE: &str = include_str!("assets/index.html");

/// An asset under its served name.
struct Asset {
    /// `{stem}.{hash}.{ext}`.
    name: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The assets under their content names and the page that refers to them, made once.
struct Built {
    assets: Vec<Asset>,
    page: String,
}

static BUILT: LazyLock<Built> = LazyLock::new(build);

/// The first 16 hex digits of the SHA-256 of `bytes`.
fn content_hash(bytes: &[u8]) -> String {
    digest(&SHA256, bytes).as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn build() -> Built {
    let assets: Vec<Asset> = SOURCES
        .iter()
        .map(|s| Asset {
            name: format!("{}.{}.{}", s.stem, content_hash(s.bytes), s.ext),
            content_type: s.content_type,
            bytes: s.bytes,
        })
        .collect();
    let page = render(PAGE_TEMPLATE, &assets);
    Built { assets, page }
}

/// The page with every `{{stem.ext}}` replaced by that asset's served path.
fn render(template: &str, assets: &[Asset]) -> String {
    let mut page = template.to_string();
    for (source, asset) in SOURCES.iter().zip(assets) {
        let marker = format!("{{{{{}.{}}}}}", source.stem, source.ext);
        page = page.replace(&marker, &format!("{ASSETS_PATH}/{}", asset.name));
    }
    page
}

/// The served path of the asset `stem.ext` (for tests and the page's template).
pub fn asset_path(stem: &str, ext: &str) -> Option<String> {
    SOURCES
        .iter()
        .zip(&BUILT.assets)
        .find(|(s, _)| s.stem == stem && s.ext == ext)
        .map(|(_, a)| format!("{ASSETS_PATH}/{}", a.name))
}

/// The dashboard's routes: the page at `/` and `/dashboard`, the assets under
/// [`ASSETS_PATH`].
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/dashboard", get(page))
        .route("/dashboard/assets/{file}", get(asset))
}

/// `GET /`, `GET /dashboard`: the page, checked again on every load (`no-cache`), so a new
/// binary's assets are picked up at once.
async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        BUILT.page.as_str(),
    )
        .into_response()
}

/// `GET /dashboard/assets/{file}`: an asset by its content name; any other name is 404.
async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = BUILT.assets.iter().find(|a| a.name == file) else {
        return (
            StatusCode::NOT_FOUND,
            [(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            )],
            "no such dashboard asset\n",
        )
            .into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_is_the_start_of_the_sha_256() {
        // SHA-256("abc") (FIPS 180-2, appendix B.1).
        assert_eq!(content_hash(b"abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn the_page_names_every_asset_by_its_hash_and_keeps_no_marker() {
        let page = &BUILT.page;
        assert!(!page.contains("{{"), "a marker left in the page");
        for (source, asset) in SOURCES.iter().zip(&BUILT.assets) {
            let hash = content_hash(source.bytes);
            assert_eq!(asset.name, format!("{}.{hash}.{}", source.stem, source.ext));
            assert!(
                page.contains(&format!("{ASSETS_PATH}/{}", asset.name)),
                "the page does not name {}",
                asset.name
            );
        }
    }

    #[test]
    fn the_embedded_hls_js_is_the_release_the_page_names() {
        let hls = std::str::from_utf8(include_bytes!("assets/hls.light.min.js")).expect("UTF-8");
        assert!(
            hls.contains(&format!("=\"{HLS_JS_VERSION}\"")),
            "hls.light.min.js is not hls.js {HLS_JS_VERSION}"
        );
        assert!(BUILT.page.contains(&format!("hls.js {HLS_JS_VERSION}")));
        assert_eq!(
            ring::digest::digest(&SHA256, hls.as_bytes())
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "482cccb3a224554f64d8c2cf0d335dba4a3819bdb726afbfddfe15de4c277d82",
            "the embedded hls.js is not the file the module's documentation names"
        );
    }

    #[test]
    fn the_page_loads_nothing_inline_or_from_elsewhere() {
        let page = &BUILT.page;
        for forbidden in [
            "<style",
            " style=",
            "onclick",
            "javascript:",
            "http://",
            "https://",
        ] {
            assert!(!page.contains(forbidden), "the page holds {forbidden:?}");
        }
        assert!(!page.contains("<script>"), "an inline script");
    }
}
