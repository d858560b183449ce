//! The S3 requests the uploader makes: PUT (with `Content-Type` and `Cache-Control`), a
//! multipart upload for large files, GET of a playlist, DELETE, and HEAD of the bucket at
//! start.
//!
//! `rusty-s3` signs (AWS Signature Version 4 presigned URLs, sans-IO: no HTTP stack of its
//! own, no aws-lc), and the server's reqwest client (rustls with ring) sends. Every request
//! has the configured time-out, connect to last byte, so a write can never land long after
//! the fence allowed it.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::config::S3Config;

/// Files above this go up in parts (S3 takes at most 5 GiB in one PUT; parts keep memory
/// and a retry small).
pub const MULTIPART_ABOVE: u64 = 64 * 1024 * 1024;
/// The size of each part (S3's minimum is 5 MiB, except the last).
pub const PART_SIZE: u64 = 16 * 1024 * 1024;
/// The most a playlist request (its PUT, the GET that continues it) may take, or
/// `s3.timeout` when shorter. Playlists are a few kilobytes; the cluster's fence must vouch
/// for this long (so it stays well inside a lease of two seconds or more).
pub const PLAYLIST_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes of a playlist read back from the bucket; a larger copy counts as none.
const MAX_PLAYLIST: usize = 4 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("HTTP status {status}: {message}")]
    Status { status: u16, message: String },
    #[error("timed out")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Request(String),
    #[error("reading {0}")]
    File(String),
}

impl S3Error {
    /// The `reason` label of the failures counter.
    pub fn reason(&self) -> &'static str {
        match self {
            S3Error::Status { status: 403, .. } => "status_403",
            S3Error::Status { status: 404, .. } => "status_404",
            S3Error::Status { status, .. } if *status >= 500 => "status_5xx",
            S3Error::Status { .. } => "status_4xx",
            S3Error::Timeout => "timeout",
            S3Error::Connect(_) => "connect",
            S3Error::Request(_) => "request",
            S3Error::File(_) => "file",
        }
    }

    /// Trying again may help: not for a refusal of the request itself (bad credentials,
    /// no bucket, a key it will not take), except throttling and conflicts.
    pub fn retry(&self) -> bool {
        match self {
            S3Error::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 409 || *status == 429
            }
            S3Error::File(_) => false,
            _ => true,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> S3Error {
        if e.is_timeout() {
            S3Error::Timeout
        } else if e.is_connect() {
            S3Error::Connect(e.to_string())
        } else {
            S3Error::Request(e.to_string())
        }
    }
}

/// A bucket, the credentials that sign for it, and the HTTP client.
#[derive(Debug)]
pub struct S3Client {
    bucket: Bucket,
    credentials: Option<Credentials>,
    http: reqwest::Client,
    timeout: Duration,
}

impl S3Client {
    /// From the `[s3]` options (with the environment's values filled in).
    pub fn new(config: &S3Config) -> Result<S3Client, String> {
        let endpoint: Url = config
            .endpoint
            .parse()
            .map_err(|e| format!("s3.endpoint {:?}: {e}", config.endpoint))?;
        let style = if config.addressing == "virtual" {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| {
            format!(
                "s3.bucket {:?} at {:?}: {e}",
                config.bucket, config.endpoint
            )
        })?;
        let credentials = (!config.access_key.is_empty())
            .then(|| Credentials::new(config.access_key.clone(), config.secret_key.clone()));
        let timeout = Duration::from_secs(config.timeout.max(1));
        let http = crate::auth::http_client(timeout)?;
        Ok(S3Client {
            bucket,
            credentials,
            http,
            timeout,
        })
    }

    /// The time-out of playlist requests: what the fence is asked to vouch for.
    pub fn playlist_timeout(&self) -> Duration {
        self.timeout.min(PLAYLIST_TIMEOUT)
    }

    /// How long a signature stays good: past the request's time-out, and no longer.
    fn expiry(&self) -> Duration {
        self.timeout + Duration::from_secs(60)
    }

    /// The bucket's URL, for logs.
    pub fn bucket_url(&self) -> &Url {
        self.bucket.base_url()
    }

    /// HEAD the bucket: is it there, and do the credentials reach it?
    pub async fn check_bucket(&self) -> Result<(), S3Error> {
        let url = self
            .bucket
            .head_bucket(self.credentials.as_ref())
            .sign(self.expiry());
        let response = self.http.head(url).send().await;
        checked(response).await.map(drop)
    }

    /// PUT `body` (its pieces in order) as `key`. Returns the bytes sent.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<Bytes>,
        content_type: &str,
        cache_control: &str,
    ) -> Result<u64, S3Error> {
        let len: u64 = body.iter().map(|p| p.len() as u64).sum();
        let url = self
            .bucket
            .put_object(self.credentials.as_ref(), key)
            .sign(self.expiry());
        let mut request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CACHE_CONTROL, cache_control)
            .header(reqwest::header::CONTENT_LENGTH, len);
        if content_type == super::queue::PLAYLIST_TYPE {
            request = request.timeout(self.playlist_timeout());
        }
        let response = request.body(pieces_body(body)).send().await;
        checked(response).await?;
        Ok(len)
    }

    /// PUT the file at `path` as `key`: in one request up to [`MULTIPART_ABOVE`], else as a
    /// multipart upload of [`PART_SIZE`] parts (aborted if a part fails).
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
        cache_control: &str,
    ) -> Result<u64, S3Error> {
        let file_error = |e: std::io::Error| S3Error::File(format!("{}: {e}", path.display()));
        let len = tokio::fs::metadata(path).await.map_err(file_error)?.len();
        if len <= MULTIPART_ABOVE {
            let data = tokio::fs::read(path).await.map_err(file_error)?;
            return self
                .put(key, vec![Bytes::from(data)], content_type, cache_control)
                .await;
        }
        let mut create = CreateMultipartUpload::new(&self.bucket, self.credentials.as_ref(), key);
        create
            .headers_mut()
            .insert("content-type", content_type.to_string());
        create
            .headers_mut()
            .insert("cache-control", cache_control.to_string());
        let url = create.sign(self.expiry());
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CACHE_CONTROL, cache_control)
            .send()
            .await;
        let body = checked(response).await?;
        let created = CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&body))
            .map_err(|e| S3Error::Request(format!("create multipart upload: {e}")))?;
        let upload_id = created.upload_id().to_string();
        let parts = self.put_parts(key, path, len, &upload_id).await;
        let etags = match parts {
            Ok(etags) => etags,
            Err(e) => {
                let abort = self
                    .bucket
                    .abort_multipart_upload(self.credentials.as_ref(), key, &upload_id)
                    .sign(self.expiry());
                let _ = self.http.delete(abort).send().await;
                return Err(e);
            }
        };
        let complete = CompleteMultipartUpload::new(
            &self.bucket,
            self.credentials.as_ref(),
            key,
            &upload_id,
            etags.iter().map(String::as_str),
        );
        let url = complete.sign(self.expiry());
        let response = self.http.post(url).body(complete.body()).send().await;
        checked(response).await?;
        Ok(len)
    }

    async fn put_parts(
        &self,
        key: &str,
        path: &Path,
        len: u64,
        upload_id: &str,
    ) -> Result<Vec<String>, S3Error> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let file_error = |e: std::io::Error| S3Error::File(format!("{}: {e}", path.display()));
        let mut file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let mut etags = Vec::new();
        let mut offset = 0;
        let mut number: u16 = 1;
        while offset < len {
            let size = PART_SIZE.min(len - offset);
            let mut data = vec![0u8; size as usize];
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(file_error)?;
            file.read_exact(&mut data).await.map_err(file_error)?;
            let url = self
                .bucket
                .upload_part(self.credentials.as_ref(), key, number, upload_id)
                .sign(self.expiry());
            let response = self.http.put(url).body(data).send().await;
            let response = response.map_err(S3Error::from_reqwest)?;
            if !response.status().is_success() {
                return Err(status_error(response).await);
            }
            let etag = response
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| S3Error::Request("a part's answer has no ETag".into()))?;
            etags.push(etag.to_string());
            offset += size;
            number = number
                .checked_add(1)
                .ok_or_else(|| S3Error::File("too many parts".into()))?;
        }
        Ok(etags)
    }

    /// GET a playlist; `None` when there is none.
    pub async fn get_playlist(&self, key: &str) -> Result<Option<String>, S3Error> {
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), key)
            .sign(self.expiry());
        let request = self.http.get(url).timeout(self.playlist_timeout());
        match checked(request.send().await).await {
            Ok(body) if body.len() <= MAX_PLAYLIST => {
                Ok(Some(String::from_utf8_lossy(&body).into_owned()))
            }
            Ok(_) => Ok(None),
            Err(S3Error::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DELETE `key` (one already gone is fine: S3 answers 204 either way).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let url = self
            .bucket
            .delete_object(self.credentials.as_ref(), key)
            .sign(self.expiry());
        let mut request = self.http.delete(url);
        if super::queue::content_type(key) == super::queue::PLAYLIST_TYPE {
            // Fenced as a playlist's write is: it must not land after the fence's answer.
            request = request.timeout(self.playlist_timeout());
        }
        match checked(request.send().await).await {
            Ok(_) | Err(S3Error::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A request body of the pieces, in order, without joining them.
fn pieces_body(mut pieces: Vec<Bytes>) -> reqwest::Body {
    if pieces.len() == 1 {
        return reqwest::Body::from(pieces.pop().unwrap_or_default());
    }
    // Sent piece by piece (the request carries their total as its Content-Length): a CMAF
    // segment is kept as its parts, and joining them would copy it into fresh memory.
    reqwest::Body::wrap_stream(futures_util::stream::iter(
        pieces.into_iter().map(Ok::<Bytes, std::io::Error>),
    ))
}

/// The body of a successful answer, or why it failed.
async fn checked(response: Result<reqwest::Response, reqwest::Error>) -> Result<Bytes, S3Error> {
    let response = response.map_err(S3Error::from_reqwest)?;
    if !response.status().is_success() {
        return Err(status_error(response).await);
    }
    response.bytes().await.map_err(S3Error::from_reqwest)
}

/// The status and the S3 error code (`<Code>` of the XML body) of a failed answer.
async fn status_error(response: reqwest::Response) -> S3Error {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(2048)]);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_string());
    let message = match (code, status) {
        (Some(code), _) => code,
        (None, 403) => "access denied (check s3.access_key and s3.secret_key)".into(),
        (None, 404) => "not found (check s3.bucket)".into(),
        (None, _) => "no error code".into(),
    };
    S3Error::Status { status, message }
}
