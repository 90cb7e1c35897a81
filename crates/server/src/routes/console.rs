//! The onboarding console at `/console/`: three static files compiled into the binary
//! (`crates/server/console/`), no build step and no Node toolchain. The page talks to the
//! public HTTP API only, with the bearer token the user signs in with, so it can do
//! exactly what that token may do and nothing more.
//!
//! Every answer carries a Content-Security-Policy that allows scripts and styles from this
//! origin only (no inline script, no `eval`), requests to this origin only, and no framing.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

const INDEX_HTML: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const APP_CSS: &str = include_str!("../../console/app.css");

/// The console's policy: nothing from elsewhere, nothing inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; base-uri 'none'; \
                       form-action 'none'; frame-ancestors 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(redirect)))
        .service(web::resource("/console/").route(web::get().to(index)))
        .service(web::resource("/console/app.js").route(web::get().to(app_js)))
        .service(web::resource("/console/app.css").route(web::get().to(app_css)));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut res = HttpResponse::Ok()
        .content_type(content_type)
        // The assets change with the binary; a stale app.js against a new API helps nobody.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body);
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[cfg(test)]
mod tests {
    use actix_web::test as awtest;

    use super::*;

    #[actix_web::test]
    async fn assets_are_served_with_a_policy_that_forbids_inline_script() {
        let app = awtest::init_service(actix_web::App::new().configure(configure)).await;
        for (path, kind) in [
            ("/console/", "text/html"),
            ("/console/app.js", "text/javascript"),
            ("/console/app.css", "text/css"),
        ] {
            let res =
                awtest::call_service(&app, awtest::TestRequest::get().uri(path).to_request()).await;
            assert!(res.status().is_success(), "{path}");
            let h = res.headers();
            let csp = h
                .get(header::CONTENT_SECURITY_POLICY)
                .unwrap()
                .to_str()
                .unwrap();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
            assert!(
                h.get(header::CONTENT_TYPE)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(kind)
            );
        }
        let res = awtest::call_service(
            &app,
            awtest::TestRequest::get().uri("/console").to_request(),
        )
        .await;
        assert_eq!(res.headers().get(header::LOCATION).unwrap(), "/console/");
    }

    /// The page carries no script or style of its own: the policy would block it, and
    /// API data is put into the page as text only (`textContent`), never as markup.
    #[test]
    fn the_page_has_no_inline_script_and_the_script_builds_no_markup_from_strings() {
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains(" style="));
        for handler in [
            "onclick=",
            "onload=",
            "onerror=",
            "onchange=",
            "oninput=",
            "onkeydown=",
        ] {
            assert!(
                !INDEX_HTML.contains(handler),
                "inline event handler {handler}"
            );
        }
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        assert!(
            !APP_JS.contains("localStorage"),
            "the token stays in sessionStorage"
        );
    }
}
