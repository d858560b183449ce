//! The node registry: each node's id and the HTTP base URL other nodes reach it at
//! (`cluster.advertise`), kept in Redis by a heartbeat and read to forward requests and to
//! list the whole cluster's streams.

use redis::AsyncCommands;
use serde::Serialize;

use super::redis::Redis;

/// A node of the cluster, as other nodes reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    pub id: String,
    pub url: String,
}

/// How long a node's record outlives its last heartbeat, in leases: a node whose heartbeat
/// stopped is dropped from the list once its leases have surely run out.
pub const RECORD_LEASES: u32 = 3;

/// Writes this node's record (`SET {ns}:node:{id} url PX`, `SADD {ns}:nodes id`).
pub async fn heartbeat(redis: &Redis, node: &Node, ttl_ms: u64) -> redis::RedisResult<()> {
    let mut conn = redis.conn().await?;
    let _: () = redis::pipe()
        .set_options(
            redis.node_key(&node.id),
            &node.url,
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms)),
        )
        .ignore()
        .sadd(redis.nodes_key(), &node.id)
        .ignore()
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Removes this node's record (the server is stopping).
pub async fn leave(redis: &Redis, id: &str) -> redis::RedisResult<()> {
    let mut conn = redis.conn().await?;
    let _: () = redis::pipe()
        .del(redis.node_key(id))
        .ignore()
        .srem(redis.nodes_key(), id)
        .ignore()
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Every node with a live record (`SMEMBERS`, then `MGET` of their records); ids whose
/// record expired are pruned from the set.
pub async fn list(redis: &Redis) -> redis::RedisResult<Vec<Node>> {
    let mut conn = redis.conn().await?;
    let mut ids: Vec<String> = conn.smembers(redis.nodes_key()).await?;
    ids.sort();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| redis.node_key(id)).collect();
    let urls: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
    let mut nodes = Vec::new();
    let mut gone = Vec::new();
    for (id, url) in ids.into_iter().zip(urls) {
        match url {
            Some(url) => nodes.push(Node { id, url }),
            None => gone.push(id),
        }
    }
    if !gone.is_empty() {
        let _: usize = conn.srem(redis.nodes_key(), &gone).await?;
    }
    Ok(nodes)
}
