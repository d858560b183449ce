//! `cluster.redis`: where the cluster's Redis (or Valkey) is, as a URL.
//!
//! - `redis://[[user]:password@]host[:port][/db]`: one server (port 6379 unless given).
//! - `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]`: the master
//!   that the Sentinels (port 26379 unless given) name `master`; the credentials and database
//!   are the master's (Sentinels are asked without credentials).
//!
//! TLS (`rediss://`) is refused: the Redis client is built without TLS, so the cluster's
//! Redis is expected on a private network.

use std::fmt;

/// A parsed `cluster.redis`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub target: Target,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
}

/// Where the master is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One server.
    Standalone { host: String, port: u16 },
    /// Asked of these Sentinels by the master's name.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
    },
}

/// The port of a Redis server unless the URL names one.
pub const REDIS_PORT: u16 = 6379;
/// The port of a Sentinel unless the URL names one.
pub const SENTINEL_PORT: u16 = 26379;

impl fmt::Debug for RedisUrl {
    /// Without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("target", &self.target)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .finish()
    }
}

impl RedisUrl {
    /// Parses `text`; the error says what is wrong, without repeating a password.
    pub fn parse(text: &str) -> Result<RedisUrl, String> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("expected redis://host[:port][/db] or redis+sentinel://host[:port][,host[:port]]/master[/db]")?;
        let sentinel = match scheme.to_ascii_lowercase().as_str() {
            "redis" => false,
            "redis+sentinel" => true,
            "rediss" | "rediss+sentinel" => {
                return Err(
                    "TLS to Redis (rediss://) is not supported: the client is built \
                            without TLS; use redis:// on a private network"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "unknown scheme {other:?}: use redis:// or redis+sentinel://"
                ));
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) || authority.contains(['?', '#']) {
            return Err("query parameters are not supported".into());
        }
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (u, None),
                };
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| "the credentials are not UTF-8 once decoded".to_string())
                };
                let user = (!user.is_empty()).then(|| decode(user)).transpose()?;
                let pass = pass.filter(|p| !p.is_empty()).map(decode).transpose()?;
                (user, pass)
            }
        };
        let default_port = if sentinel { SENTINEL_PORT } else { REDIS_PORT };
        let hosts = hosts
            .split(',')
            .map(|h| host_port(h, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let target = if sentinel {
            let master = parts
                .next()
                .ok_or("a Sentinel URL names the master: redis+sentinel://host:26379/mymaster")?;
            Target::Sentinel {
                sentinels: hosts,
                master: master.to_string(),
            }
        } else {
            if hosts.len() != 1 {
                return Err(
                    "redis:// names one server; for several Sentinels use redis+sentinel://".into(),
                );
            }
            let (host, port) = hosts.into_iter().next().ok_or("no host")?;
            Target::Standalone { host, port }
        };
        let db = match parts.next() {
            None => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| format!("database {db:?} is not a number"))?,
        };
        if parts.next().is_some() {
            return Err("too many path parts".into());
        }
        Ok(RedisUrl {
            target,
            username,
            password,
            db,
        })
    }

    /// The connection details of a Redis server at `host:port` with this URL's credentials.
    pub fn connection_info(&self, host: &str, port: u16) -> redis::ConnectionInfo {
        let mut redis = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(u) = &self.username {
            redis = redis.set_username(u.clone());
        }
        if let Some(p) = &self.password {
            redis = redis.set_password(p.clone());
        }
        redis::ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()
            .expect("a TCP address is a connection info")
            .set_redis_settings(redis)
    }
}

use redis::IntoConnectionInfo;

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a host is missing".into());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("unclosed [ in an IPv6 address")?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("expected :port after ]")?),
            ),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() || host.contains([':', '/', '@']) && !text.starts_with('[') {
        return Err(format!("bad host {host:?}"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port {p:?}"))?,
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_urls() {
        let u = RedisUrl::parse("redis://127.0.0.1").unwrap();
        assert_eq!(
            u.target,
            Target::Standalone {
                host: "127.0.0.1".into(),
                port: 6379
            }
        );
        assert_eq!((u.username, u.password, u.db), (None, None, 0));
        let u = RedisUrl::parse("redis://app:s%40cret@redis.internal:6380/2").unwrap();
        assert_eq!(
            u.target,
            Target::Standalone {
                host: "redis.internal".into(),
                port: 6380
            }
        );
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.db, 2);
        let u = RedisUrl::parse("redis://:pw@[::1]:7000/").unwrap();
        assert_eq!(
            u.target,
            Target::Standalone {
                host: "::1".into(),
                port: 7000
            }
        );
        assert_eq!((u.username, u.password.as_deref()), (None, Some("pw")));
        assert!(!format!("{:?}", RedisUrl::parse("redis://:pw@h").unwrap()).contains("pw"));
    }

    #[test]
    fn sentinel_urls() {
        let u = RedisUrl::parse("redis+sentinel://s1:26380,s2,[::1]/mymaster/3").unwrap();
        assert_eq!(
            u.target,
            Target::Sentinel {
                sentinels: vec![
                    ("s1".into(), 26380),
                    ("s2".into(), 26379),
                    ("::1".into(), 26379)
                ],
                master: "mymaster".into()
            }
        );
        assert_eq!(u.db, 3);
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (bad, why) in [
            ("", "expected"),
            ("localhost:6379", "expected"),
            ("http://h", "unknown scheme"),
            ("rediss://h", "TLS"),
            ("redis://", "host is missing"),
            ("redis://h:0", "bad port"),
            ("redis://h:99999", "bad port"),
            ("redis://h:x", "bad port"),
            ("redis://h/x", "not a number"),
            ("redis://h/-1", "not a number"),
            ("redis://a,b", "one server"),
            ("redis://h/1/2", "too many"),
            ("redis://h/1?x=1", "query"),
            ("redis+sentinel://s1,s2", "names the master"),
            ("redis+sentinel://s1,,s2/m", "host is missing"),
            ("redis://[::1/", "unclosed"),
            ("redis://u:%ff@h", "UTF-8"),
        ] {
            let e = RedisUrl::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
