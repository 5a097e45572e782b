//! Command-center dashboards: web pages embedded in the binary (meeting client, wall display,
//! public alerts, publisher console) and, later, the live ops feed for walls.
//!
//! Today it serves the WebRTC test and diagnostic pages under `/assets/test/`: a WHIP
//! publisher (camera + microphone, three simulcast layers) and a WHEP viewer, both with zh-CN
//! text, used by the browser tests and by operators checking a site's media path.

/// Embedded assets: (path under `/assets/`, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "test/publish.html",
        "text/html; charset=utf-8",
        include_bytes!("../assets/test/publish.html"),
    ),
    (
        "test/view.html",
        "text/html; charset=utf-8",
        include_bytes!("../assets/test/view.html"),
    ),
    (
        "test/webrtc-common.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/test/webrtc-common.js"),
    ),
];

/// The content type and bytes of the asset at `path` (relative to `/assets/`).
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

/// Every embedded asset path.
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(p, _, _)| *p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_pages_are_embedded_and_chinese_first() {
        for path in ["test/publish.html", "test/view.html"] {
            let (content_type, bytes) = super::asset(path).expect(path);
            assert!(content_type.starts_with("text/html"));
            let text = std::str::from_utf8(bytes).expect("UTF-8");
            assert!(text.contains("lang=\"zh-CN\""), "{path} declares zh-CN");
        }
        let (content_type, script) = super::asset("test/webrtc-common.js").expect("shared script");
        assert!(content_type.starts_with("text/javascript"));
        let script = std::str::from_utf8(script).expect("UTF-8");
        for page in ["test/publish.html", "test/view.html"] {
            let (_, bytes) = super::asset(page).expect(page);
            let text = std::str::from_utf8(bytes).expect("UTF-8");
            assert!(
                text.contains("<script src=\"webrtc-common.js\">"),
                "{page} loads it"
            );
        }
        assert!(script.contains("function rewriteCandidates"));
        assert!(super::asset("../Cargo.toml").is_none());
    }
}
