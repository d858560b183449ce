//! Relay targets: where a stream is pushed, as `relay.push` and the stream-service's `push`
//! name them.
//!
//! A target is an RTMP or RTMPS URL, `rtmp[s]://host[:port]/app/name`, written as a template
//! ([`Template`]): `{key}` stands for the publisher's stream key and `{name}` for the name
//! the stream is served under, so one configured URL serves every stream
//! (`rtmp://a.rtmp.youtube.com/live2/{key}`), and a fixed URL pushes every stream to one
//! target key. The application is everything between the host and the last `/` (what
//! `connect` names, with tcUrl `rtmp[s]://host[:port]/app`); the stream name is the last path
//! part with its `?query` (what `publish` names). The default ports are 1935 for `rtmp://`
//! and 443 for `rtmps://`.
//!
//! The name part usually is a secret (a platform's stream key), so a target is shown as
//! [`Target::redacted`]: `rtmp://host/app/***`.
//!
//! Sans-IO: text in, values and errors out.

use std::fmt;

/// Why a URL (or template) cannot be a relay target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("must start with rtmp:// or rtmps://")]
    Scheme,
    #[error("contains spaces or control characters")]
    Whitespace,
    #[error("has no host (rtmp://HOST/app/name)")]
    NoHost,
    #[error("carries user information (user@host), which RTMP has no use for")]
    UserInfo,
    #[error("port {0:?} is not a number from 1 to 65535")]
    Port(String),
    #[error("has no application (rtmp://host/APP/name)")]
    NoApp,
    #[error("has no stream name (rtmp://host/app/NAME)")]
    NoName,
    #[error("has the unknown placeholder {0:?}: use {{key}} or {{name}}")]
    Placeholder(String),
}

/// A relay target as written, with `{key}` and `{name}` placeholders; checked when made, so
/// that every expansion is a valid [`Target`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    /// Checks `text`: placeholders are `{key}` and `{name}` only, and the URL they make is
    /// a valid target.
    pub fn parse(text: &str) -> Result<Template, TargetError> {
        let text = text.trim();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open..];
            let close = after.find('}').map_or(after.len(), |c| c + 1);
            let placeholder = &after[..close];
            if placeholder != "{key}" && placeholder != "{name}" {
                return Err(TargetError::Placeholder(placeholder.to_string()));
            }
            rest = &after[close..];
        }
        if rest.contains('}') {
            return Err(TargetError::Placeholder("}".into()));
        }
        // Keys and names are made of URL-safe characters: a sample stands for any of them.
        Target::parse(&fill(text, "key", "name"))?;
        Ok(Template(text.to_string()))
    }

    /// The target for a stream published with `key` and served as `name` (both made of
    /// A-Z a-z 0-9 - _ . ~, as stream keys are).
    pub fn expand(&self, key: &str, name: &str) -> Result<Target, TargetError> {
        Target::parse(&fill(&self.0, key, name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The template with its stream name part hidden, for logs and printed configurations.
    pub fn redacted(&self) -> String {
        Target::parse(&fill(&self.0, "key", "name"))
            .map(|t| t.redacted())
            .unwrap_or_else(|_| "***".into())
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `text` with what follows its last `/` hidden, for text that may not be a valid target
/// (a refused configuration value, a stream-service entry): `rtmp://host/app/***`; `***`
/// when it has no path at all.
pub fn redact_text(text: &str) -> String {
    let text = text.trim();
    let after_scheme = text.find("://").map_or(0, |i| i + 3);
    let Some(path) = text[after_scheme..].find('/').map(|i| after_scheme + i) else {
        return "***".into();
    };
    let end = text[path..].find('?').map_or(text.len(), |q| path + q);
    let last = text[..end].rfind('/').unwrap_or(path);
    match &text[last + 1..] {
        // Only a placeholder: nothing secret is written there.
        "{key}" | "{name}" => text.to_string(),
        _ => format!("{}***", &text[..=last]),
    }
}

fn fill(template: &str, key: &str, name: &str) -> String {
    template.replace("{key}", key).replace("{name}", name)
}

/// One place to push a stream to.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// `rtmps://`: RTMP over TLS.
    pub tls: bool,
    /// The host to connect to and, over TLS, to name in SNI and verify (without the
    /// brackets of an IPv6 address).
    pub host: String,
    pub port: u16,
    /// The application (`connect`'s `app`): the path between the host and the last `/`.
    pub app: String,
    /// The publishing name: the last path part, with its `?query`.
    pub name: String,
    /// `host[:port]` as written.
    authority: String,
}

impl Target {
    /// Default port of `rtmp://`.
    pub const RTMP_PORT: u16 = 1935;
    /// Default port of `rtmps://`.
    pub const RTMPS_PORT: u16 = 443;

    /// Reads `rtmp[s]://host[:port]/app/name[?query]`.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let url = url.trim();
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TargetError::Whitespace);
        }
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("rtmps://") {
            (true, &url[8..])
        } else if lower.starts_with("rtmp://") {
            (false, &url[7..])
        } else {
            return Err(TargetError::Scheme);
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(TargetError::UserInfo);
        }
        let (host, port) = split_port(authority)?;
        if host.is_empty() {
            return Err(TargetError::NoHost);
        }
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let path = path.strip_prefix('/').unwrap_or(path);
        let (app, name) = path.rsplit_once('/').ok_or(if path.is_empty() {
            TargetError::NoApp
        } else {
            TargetError::NoName
        })?;
        let app = app.trim_matches('/');
        if app.is_empty() {
            return Err(TargetError::NoApp);
        }
        if name.is_empty() {
            return Err(TargetError::NoName);
        }
        let name = match query {
            Some(q) => format!("{name}?{q}"),
            None => name.to_string(),
        };
        Ok(Target {
            tls,
            host: host.to_string(),
            port: port.unwrap_or(if tls {
                Target::RTMPS_PORT
            } else {
                Target::RTMP_PORT
            }),
            app: app.to_string(),
            name,
            authority: authority.to_string(),
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls { "rtmps" } else { "rtmp" }
    }

    /// tcUrl: `rtmp[s]://host[:port]/app`, as encoders send it in `connect`.
    pub fn tc_url(&self) -> String {
        format!("{}://{}/{}", self.scheme(), self.authority, self.app)
    }

    /// The URL without its stream name: `rtmp[s]://host[:port]/app/***`.
    pub fn redacted(&self) -> String {
        format!("{}/***", self.tc_url())
    }
}

/// Never prints the stream name (a secret): the redacted form.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `host[:port]` or `[v6]:port` into the host and the port, if written.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), TargetError> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(TargetError::NoHost)?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(TargetError::Port(after.to_string())),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(TargetError::Port(p.to_string())),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_app_and_name() {
        let t = Target::parse("rtmp://a.rtmp.youtube.com/live2/abcd-1234").unwrap();
        assert_eq!(
            (
                t.tls,
                t.host.as_str(),
                t.port,
                t.app.as_str(),
                t.name.as_str()
            ),
            (false, "a.rtmp.youtube.com", 1935, "live2", "abcd-1234")
        );
        assert_eq!(t.tc_url(), "rtmp://a.rtmp.youtube.com/live2");
        assert_eq!(t.redacted(), "rtmp://a.rtmp.youtube.com/live2/***");

        let t = Target::parse("rtmps://live-api-s.facebook.com:443/rtmp/FB-1?s_bl=1&a=b").unwrap();
        assert_eq!(
            (t.tls, t.port, t.app.as_str(), t.name.as_str()),
            (true, 443, "rtmp", "FB-1?s_bl=1&a=b")
        );
        assert_eq!(t.tc_url(), "rtmps://live-api-s.facebook.com:443/rtmp");
        assert_eq!(Target::parse("RTMPS://h/a/k").unwrap().port, 443);

        // An application of several parts, an IPv6 host.
        let t = Target::parse("rtmp://[::1]:1940/app/inst/key").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.app.as_str(), t.name.as_str()),
            ("::1", 1940, "app/inst", "key")
        );
        assert_eq!(t.redacted(), "rtmp://[::1]:1940/app/inst/***");
        assert!(!format!("{t:?}").contains("key"), "Debug hides the name");
    }

    #[test]
    fn what_is_not_a_target_says_why() {
        for (url, error) in [
            ("http://h/app/k", TargetError::Scheme),
            ("rtmp:/h/app/k", TargetError::Scheme),
            ("rtmp:///app/k", TargetError::NoHost),
            ("rtmp://h", TargetError::NoApp),
            ("rtmp://h/", TargetError::NoApp),
            ("rtmp://h/k", TargetError::NoName),
            ("rtmp://h//k", TargetError::NoApp),
            ("rtmp://h/app/", TargetError::NoName),
            ("rtmp://h/app/?x=1", TargetError::NoName),
            ("rtmp://h:0/app/k", TargetError::Port("0".into())),
            ("rtmp://h:x/app/k", TargetError::Port("x".into())),
            ("rtmp://h:70000/app/k", TargetError::Port("70000".into())),
            ("rtmp://u:p@h/app/k", TargetError::UserInfo),
            ("rtmp://h/app/a b", TargetError::Whitespace),
        ] {
            assert_eq!(Target::parse(url), Err(error), "{url}");
        }
    }

    #[test]
    fn text_that_is_no_target_is_shown_without_its_last_part() {
        assert_eq!(redact_text("ftp://h/app/secret"), "ftp://h/app/***");
        assert_eq!(redact_text("rtmp://h/app/secret?x=/y"), "rtmp://h/app/***");
        assert_eq!(redact_text("h/secret"), "h/***");
        assert_eq!(redact_text("secret"), "***");
        assert_eq!(redact_text("rtmp://host"), "***");
        assert_eq!(redact_text("rtmp://h/app/{key}"), "rtmp://h/app/{key}");
        assert_eq!(redact_text("rtmp://h/app/{key}?t=x"), "rtmp://h/app/***");
    }

    #[test]
    fn templates_take_key_and_name() {
        let t = Template::parse("rtmp://h:1936/live/{key}").unwrap();
        assert_eq!(t.expand("k1", "n1").unwrap().name, "k1");
        let t = Template::parse("rtmp://h/{name}/x-{key}?tag={name}").unwrap();
        let target = t.expand("k1", "n1").unwrap();
        assert_eq!(
            (target.app.as_str(), target.name.as_str()),
            ("n1", "x-k1?tag=n1")
        );
        // A fixed target: every stream goes to one key.
        let t = Template::parse(" rtmp://h/live/fixed ").unwrap();
        assert_eq!(t.expand("a", "b").unwrap().name, "fixed");
        assert_eq!(t.redacted(), "rtmp://h/live/***");
        assert_eq!(
            Template::parse("rtmp://h/live/{stream}"),
            Err(TargetError::Placeholder("{stream}".into()))
        );
        assert_eq!(
            Template::parse("rtmp://h/live/{key"),
            Err(TargetError::Placeholder("{key".into()))
        );
        assert_eq!(
            Template::parse("rtmp://h/live/key}"),
            Err(TargetError::Placeholder("}".into()))
        );
        assert_eq!(
            Template::parse("rtmp://h/{key}"),
            Err(TargetError::NoName),
            "the key as the application leaves no name"
        );
    }
}
