//! Talks to the test etcd through its JSON gateway (plain HTTP on loopback): the current revision and compaction.

use serde_json::{Value, json};

use crate::{Error, Result};

async fn post(client: &reqwest::Client, url: &str, body: Value) -> Result<Value> {
    let response = client.post(url).json(&body).send().await.map_err(|e| Error::Etcd(format!("POST {url}: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| Error::Etcd(format!("POST {url}: {e}")))?;
    if !status.is_success() {
        return Err(Error::Etcd(format!("POST {url}: {status} {body}")));
    }
    Ok(body)
}

/// Compacts etcd at its current revision, so that every older resourceVersion is gone; returns the revision.
pub(crate) async fn compact(etcd_url: &str) -> Result<i64> {
    let client = reqwest::Client::new();
    // Any key: the answer's header carries the store's current revision (an int64 as a JSON string).
    let range = post(&client, &format!("{etcd_url}/v3/kv/range"), json!({ "key": "AA==" })).await?;
    let revision = range["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse::<i64>().ok())
        .ok_or_else(|| Error::Etcd(format!("no revision in {range}")))?;
    let compaction = json!({ "revision": revision.to_string(), "physical": true });
    match post(&client, &format!("{etcd_url}/v3/kv/compaction"), compaction).await {
        // Nothing was written since the last compaction: history before `revision` is already gone.
        Err(Error::Etcd(message)) if message.contains("required revision has been compacted") => Ok(revision),
        Err(error) => Err(error),
        Ok(_) => Ok(revision),
    }
}
