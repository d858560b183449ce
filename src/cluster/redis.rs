//! The cluster's Redis: one multiplexed connection (made again after a failure; behind
//! Sentinel, the master is asked of the Sentinels each time), and the Lua scripts that keep
//! the leases. Each script is one round trip and runs atomically in Redis.
//!
//! Keys, under the namespace `ns` (`cluster.namespace`):
//! - `{ns}:lease:{app}/{name}`: `{node}:{token}`, expiring with the lease (PX); once given
//!   back, `released:{node}:{token}` for the rest of its time.
//! - `{ns}:token:{app}/{name}`: the key's fencing counter (INCR); kept, so tokens only grow.
//! - `{ns}:node:{node}`: the node's advertised HTTP base URL, expiring unless renewed.
//! - `{ns}:nodes`: the set of node ids (pruned of ids whose node key expired).
//! - channel `{ns}:stop:{node}`: `{token} {app}/{name}`, a node told that another took a key
//!   over with that token.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};

use super::url::{RedisUrl, Target};

/// How long connecting, and each command, may take before Redis counts as unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// After a failed attempt to connect, calls fail at once for this long (with the reason of
/// that attempt) instead of each waiting for a connection of its own: publishes that come
/// while Redis is down are refused promptly.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The connection, made when first needed and again after an error.
pub struct Redis {
    url: RedisUrl,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// When the last attempt to connect failed, and why.
    refused: Mutex<Option<(std::time::Instant, String)>>,
    /// Why the last attempt failed (for `/readyz` and the log).
    pub last_error: Mutex<Option<String>>,
    pub scripts: Scripts,
    pub ns: String,
}

impl Redis {
    pub fn new(url: RedisUrl, ns: String) -> Redis {
        Redis {
            url,
            conn: tokio::sync::Mutex::new(None),
            refused: Mutex::new(None),
            last_error: Mutex::new(None),
            scripts: Scripts::new(),
            ns,
        }
    }

    /// A client for the master: the URL's server, or the one the Sentinels name now.
    pub async fn client(&self) -> redis::RedisResult<Client> {
        match &self.url.target {
            Target::Standalone { host, port } => {
                Client::open(self.url.connection_info(host, *port))
            }
            Target::Sentinel { sentinels, master } => {
                let addrs = sentinels
                    .iter()
                    .map(|(h, p)| redis::ConnectionAddr::Tcp(h.clone(), *p));
                let mut builder = redis::sentinel::SentinelClientBuilder::new(
                    addrs,
                    master,
                    redis::sentinel::SentinelServerType::Master,
                )?
                .set_client_to_redis_db(self.url.db);
                if let Some(u) = &self.url.username {
                    builder = builder.set_client_to_redis_username(u);
                }
                if let Some(p) = &self.url.password {
                    builder = builder.set_client_to_redis_password(p);
                }
                let mut sentinel = builder.build()?;
                tokio::time::timeout(TIMEOUT * 2, sentinel.async_get_client())
                    .await
                    .map_err(|_| timed_out("asking the Sentinels for the master"))?
            }
        }
    }

    /// The connection, made now if there is none.
    pub async fn conn(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        if let Some((at, why)) = crate::hub::stream::lock(&self.refused).as_ref()
            && at.elapsed() < RETRY_AFTER
        {
            return Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                why.clone(),
            )));
        }
        let made = async {
            let client = self.client().await?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT));
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
        }
        .await;
        match made {
            Ok(made) => {
                *crate::hub::stream::lock(&self.refused) = None;
                *conn = Some(made.clone());
                Ok(made)
            }
            Err(e) => {
                *crate::hub::stream::lock(&self.refused) =
                    Some((std::time::Instant::now(), e.to_string()));
                Err(e)
            }
        }
    }

    /// Forgets the connection after an error that may have broken it.
    pub async fn failed(&self, e: &redis::RedisError) {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            *self.conn.lock().await = None;
        }
        *crate::hub::stream::lock(&self.last_error) = Some(e.to_string());
    }

    pub fn lease_key(&self, stream: &str) -> String {
        format!("{}:lease:{stream}", self.ns)
    }

    pub fn token_key(&self, stream: &str) -> String {
        format!("{}:token:{stream}", self.ns)
    }

    pub fn node_key(&self, node: &str) -> String {
        format!("{}:node:{node}", self.ns)
    }

    pub fn nodes_key(&self) -> String {
        format!("{}:nodes", self.ns)
    }

    pub fn stop_channel(&self, node: &str) -> String {
        format!("{}:stop:{node}", self.ns)
    }
}

fn timed_out(what: &str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what}: no answer within {:?}", TIMEOUT * 2),
    ))
}

/// The lease scripts.
pub struct Scripts {
    pub claim: Script,
    pub renew: Script,
    pub release: Script,
    pub holder: Script,
}

/// Claims a key. KEYS: lease, token; ARGV: node, lease ms, takeover (1/0), stream, stop
/// channel prefix (`{ns}:stop:`). A key given back by another node (`released:...`, see
/// [`RELEASE`]) is free: its node is told, as a holder is, so that it stops writing, and
/// its remaining time is returned as the previous pttl.
/// Returns `{1, token, previous pttl, previous node}` when granted (a previous holder that
/// is another node is told on its stop channel), `{0, 0, pttl, holder}` when another node
/// holds the key and takeover is off.
const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
local prev_node = ''
local prev_ttl = 0
local notify = ''
local drained = cur and string.match(cur, '^released:(.*):%d+$')
if drained then
  cur = nil
  if drained ~= ARGV[1] then
    prev_ttl = redis.call('PTTL', KEYS[1])
    if prev_ttl < 0 then prev_ttl = 0 end
    notify = drained
  end
end
if cur then
  prev_node = string.match(cur, '^(.*):%d+$') or ''
  if prev_node ~= ARGV[1] then
    prev_ttl = redis.call('PTTL', KEYS[1])
    if prev_ttl < 0 then prev_ttl = 0 end
    if ARGV[3] ~= '1' then return {0, 0, prev_ttl, prev_node} end
    notify = prev_node
  else
    prev_node = ''
  end
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
if notify ~= '' then
  redis.call('PUBLISH', ARGV[5] .. notify, token .. ' ' .. ARGV[4])
end
return {1, token, prev_ttl, prev_node}
"#;

/// Renews every lease a node holds. KEYS: `2n` keys, each lease key then its token key;
/// ARGV: node, lease ms, then the `n` values held (`{node}:{token}`, or
/// `released:{node}:{token}` for an ended stream still kept here). Per key: 0 renewed; a
/// new token when a publish's key had expired (Redis was unreachable for longer than the
/// lease, or lost its data) and is taken again; -1 when another node (or a newer claim)
/// holds it, or a given-back key is gone.
const RENEW: &str = r#"
local out = {}
local n = #ARGV - 2
for i = 1, n do
  local lease = KEYS[2 * i - 1]
  local mine = ARGV[i + 2]
  local cur = redis.call('GET', lease)
  if cur == mine then
    redis.call('PEXPIRE', lease, ARGV[2])
    out[i] = 0
  elseif not cur and string.sub(mine, 1, 9) ~= 'released:' then
    local token = redis.call('INCR', KEYS[2 * i])
    redis.call('SET', lease, ARGV[1] .. ':' .. token, 'PX', ARGV[2])
    out[i] = token
  else
    out[i] = -1
  end
end
return out
"#;

/// Gives a key back if this node still holds it with this token. KEYS: lease; ARGV: value.
/// The lease becomes `released:{value}`: the key is free, the node renews it while it
/// keeps the ended stream (its ended playlist, then the deletions), and whoever claims it
/// next tells the node and waits out the remaining time before writing to shared storage.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], 'released:' .. ARGV[1], 'KEEPTTL') and 1
end
return 0
"#;

/// Who holds a key, and where that node is reached. KEYS: lease; ARGV: node key prefix.
/// Returns `{node, url}`, `{node, false}` when the node's record expired, or nil.
const HOLDER: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur or string.match(cur, '^released:') then return nil end
local node = string.match(cur, '^(.*):%d+$')
if not node then return nil end
return {node, redis.call('GET', ARGV[1] .. node)}
"#;

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            holder: Script::new(HOLDER),
        }
    }
}
