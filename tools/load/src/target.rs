//! Where the load runs publish and play: an `rtmp://host[:port]/app` URL taken apart into
//! what the socket and the `connect` command need, and `rtmp://host[:port]/app/name` for the
//! stream RTMP players play.

use reqwest::Url;

use crate::LoadgenError;

/// The RTMP port when the URL names none (IANA-registered for RTMP).
pub const DEFAULT_RTMP_PORT: u16 = 1935;

/// An RTMP application to publish streams to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpTarget {
    /// Host name or address to connect to (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The application named in `connect`: the URL path without its slashes.
    pub app: String,
    /// tcUrl for `connect`: `rtmp://host:port/app`.
    pub tc_url: String,
}

impl RtmpTarget {
    /// Takes apart `rtmp://host[:port]/app`. Stream keys are added per stream, so the URL
    /// ends at the application.
    pub fn parse(url: &str) -> Result<RtmpTarget, LoadgenError> {
        let invalid = |reason: &'static str| LoadgenError::Url {
            url: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|_| invalid("not a URL"))?;
        if parsed.scheme() != "rtmp" {
            return Err(invalid("only rtmp:// is supported"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("a query or fragment has no meaning here"));
        }
        // As written in a URL: an IPv6 address in brackets.
        let host_in_url = match parsed.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(invalid("no host")),
        };
        let host = host_in_url
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host_in_url)
            .to_owned();
        let port = parsed.port().unwrap_or(DEFAULT_RTMP_PORT);
        let app = parsed.path().trim_matches('/');
        if app.is_empty() {
            return Err(invalid("no application (rtmp://host:port/app)"));
        }
        Ok(RtmpTarget {
            tc_url: format!("rtmp://{host_in_url}:{port}/{app}"),
            app: app.to_owned(),
            host,
            port,
        })
    }
}

/// A stream to play: `rtmp://host[:port]/app/name[?query]`, as ffmpeg takes such a URL
/// apart (the first path segment is the application, the rest the stream name, with the
/// query, if any, kept on the name, where servers read tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayTarget {
    pub server: RtmpTarget,
    /// The stream name `play` asks for.
    pub name: String,
}

impl PlayTarget {
    /// Takes apart `rtmp://host[:port]/app/name[?query]`.
    pub fn parse(url: &str) -> Result<PlayTarget, LoadgenError> {
        let invalid = |reason: &'static str| LoadgenError::Url {
            url: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|_| invalid("not a URL"))?;
        if parsed.fragment().is_some() {
            return Err(invalid("a fragment has no meaning here"));
        }
        let path = parsed.path().trim_start_matches('/');
        let Some((app, name)) = path.split_once('/') else {
            return Err(invalid("no stream name (rtmp://host:port/app/name)"));
        };
        let name = name.trim_end_matches('/');
        if app.is_empty() || name.is_empty() {
            return Err(invalid("no stream name (rtmp://host:port/app/name)"));
        }
        let mut server_url = parsed.clone();
        server_url.set_path(app);
        server_url.set_query(None);
        // The application URL's faults, told of the URL given.
        let server = RtmpTarget::parse(server_url.as_str()).map_err(|e| match e {
            LoadgenError::Url { reason, .. } => invalid(reason),
            other => other,
        })?;
        let name = match parsed.query() {
            Some(query) => format!("{name}?{query}"),
            None => name.to_owned(),
        };
        Ok(PlayTarget { server, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_url_apart() {
        assert_eq!(
            RtmpTarget::parse("rtmp://127.0.0.1:1936/live").expect("valid"),
            RtmpTarget {
                host: "127.0.0.1".to_owned(),
                port: 1936,
                app: "live".to_owned(),
                tc_url: "rtmp://127.0.0.1:1936/live".to_owned(),
            }
        );
        let t = RtmpTarget::parse("rtmp://ingest.example/live/").expect("valid");
        assert_eq!(
            (t.host.as_str(), t.port, t.app.as_str()),
            ("ingest.example", 1935, "live")
        );
        assert_eq!(t.tc_url, "rtmp://ingest.example:1935/live");
        let t = RtmpTarget::parse("rtmp://[::1]/live").expect("valid");
        assert_eq!(t.host, "::1");
        assert_eq!(t.tc_url, "rtmp://[::1]:1935/live");
    }

    #[test]
    fn refuses_what_cannot_be_published_to() {
        for (url, reason) in [
            ("127.0.0.1:1935/live", "not a URL"),
            ("http://127.0.0.1/live", "only rtmp:// is supported"),
            (
                "rtmp://127.0.0.1:1935",
                "no application (rtmp://host:port/app)",
            ),
            ("rtmp://127.0.0.1/", "no application (rtmp://host:port/app)"),
            (
                "rtmp://127.0.0.1/live?x=1",
                "a query or fragment has no meaning here",
            ),
        ] {
            match RtmpTarget::parse(url) {
                Err(LoadgenError::Url { reason: r, .. }) => assert_eq!(r, reason, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn takes_a_play_url_apart() {
        let t = PlayTarget::parse("rtmp://127.0.0.1:1936/live/bench-1").expect("valid");
        assert_eq!(
            t,
            PlayTarget {
                server: RtmpTarget::parse("rtmp://127.0.0.1:1936/live").expect("valid"),
                name: "bench-1".to_owned(),
            }
        );
        let t = PlayTarget::parse("rtmp://[::1]/live/a/b?token=x").expect("valid");
        assert_eq!(t.server.tc_url, "rtmp://[::1]:1935/live");
        assert_eq!(t.name, "a/b?token=x");
        for (url, reason) in [
            (
                "rtmp://127.0.0.1/live",
                "no stream name (rtmp://host:port/app/name)",
            ),
            (
                "rtmp://127.0.0.1/live/",
                "no stream name (rtmp://host:port/app/name)",
            ),
            ("http://127.0.0.1/live/k", "only rtmp:// is supported"),
            (
                "rtmp://127.0.0.1/live/k#x",
                "a fragment has no meaning here",
            ),
            ("live/k", "not a URL"),
        ] {
            match PlayTarget::parse(url) {
                Err(LoadgenError::Url { reason: r, .. }) => assert_eq!(r, reason, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
