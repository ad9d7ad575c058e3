//! [`Archive`]: parts and their manifests in a local folder or an S3-compatible bucket,
//! through the `object_store` crate.
//!
//! Layout, under the archive's root:
//! - `events/<tenant>/<YYYY-MM-DD>/<part>.jsonl.zst`: the parts;
//! - `manifests/<tenant>/<YYYY-MM-DD>/<part>.json`: one [`PartManifest`] per part, written
//!   after the part, so a part without a manifest is one whose writing did not finish (it is
//!   never read, and the events it holds were not removed from the store).
//!
//! Keeping manifests apart lets `siren hunt <root>/events` read a local archive as any other
//! folder of logs.

use std::io::Write as _;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::format::{ArchivedEvent, Header};
use crate::event::TenantId;

/// The `archive:` section: where archives are written and read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// `s3://BUCKET/PREFIX`, `file:///FOLDER` or a folder.
    pub url: String,
    /// The S3 endpoint, for a service other than AWS (`http://127.0.0.1:9000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The S3 region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The S3 access key id: literal, `env:NAME` or `file:PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The S3 secret key: `env:NAME` or `file:PATH` (or literal, in a file only its owner
    /// reads). Never logged.
    #[serde(default, skip_serializing)]
    pub secret_access_key: Option<String>,
    /// Allows an `http://` endpoint (a bucket on the same host or network).
    #[serde(default)]
    pub allow_http: bool,
    /// The zstd level (1 to 19).
    #[serde(default = "default_level")]
    pub level: i32,
}

fn default_level() -> i32 {
    9
}

impl ArchiveConfig {
    /// Resolves the `env:NAME` and `file:PATH` references of the S3 keys, reading the
    /// environment through `lookup_env`.
    pub fn resolve_secrets(
        &mut self,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        for (name, value) in [
            ("access_key_id", &mut self.access_key_id),
            ("secret_access_key", &mut self.secret_access_key),
        ] {
            if let Some(spec) = value.as_mut() {
                *spec = crate::secret::resolve(spec, &lookup_env)
                    .map_err(|e| format!("archive.{name}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The keys written literally rather than as `env:NAME` / `file:PATH`.
    pub fn literal_secrets(&self) -> Vec<String> {
        self.secret_access_key
            .as_deref()
            .filter(|s| !crate::secret::is_reference(s))
            .map(|_| vec!["archive.secret_access_key".to_owned()])
            .unwrap_or_default()
    }

    /// An archive in the folder `path`.
    pub fn folder(path: impl AsRef<std::path::Path>) -> Self {
        Self {
            url: path.as_ref().display().to_string(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            level: default_level(),
        }
    }
}

/// What can go wrong with an archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The configuration is not usable.
    #[error("archive: {0}")]
    Config(String),
    /// The object store failed (unreachable, refused, not found).
    #[error("archive {location}: {source}")]
    Store {
        /// The archive and object.
        location: String,
        /// Why.
        source: object_store::Error,
    },
    /// An object is not what its manifest says, or not in the archive format.
    #[error("archive {location}: {reason}")]
    Corrupt {
        /// The archive and object.
        location: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a part holds, written beside it once it is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartManifest {
    /// The format ([`super::format::FORMAT`]).
    pub format: String,
    /// The format version.
    pub version: u32,
    /// Whose events.
    pub tenant: String,
    /// Their day (UTC).
    pub day: NaiveDate,
    /// The part's object, from the archive's root.
    pub object: String,
    /// Events in it.
    pub events: u64,
    /// Its size in bytes, compressed.
    pub bytes: u64,
    /// The SHA-256 of its bytes, hexadecimal (as `sha256sum` prints it).
    pub sha256: String,
    /// The earliest event time in it.
    pub first: Option<DateTime<Utc>>,
    /// The latest.
    pub last: Option<DateTime<Utc>>,
    /// When it was written.
    pub written_at: DateTime<Utc>,
}

/// How much an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Parts.
    pub parts: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// An archive: a folder or bucket of parts and manifests.
#[derive(Debug, Clone)]
pub struct Archive {
    objects: Arc<dyn ObjectStore>,
    root: ObjectPath,
    location: String,
    level: i32,
    /// The folder, for an archive on this machine.
    folder: Option<std::path::PathBuf>,
}

impl Archive {
    /// Opens the archive `config` names (a folder is created if missing; nothing is sent to
    /// a bucket until it is used).
    pub fn open(config: &ArchiveConfig) -> Result<Self, ArchiveError> {
        let url = config.url.trim();
        if !(1..=19).contains(&config.level) {
            return Err(ArchiveError::Config(format!(
                "level {} is not a zstd level from 1 to 19",
                config.level
            )));
        }
        let mut local = None;
        let (objects, root): (Arc<dyn ObjectStore>, String) = if let Some(rest) =
            url.strip_prefix("s3://")
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ArchiveError::Config(format!(
                    "'{url}' names no bucket: use s3://BUCKET/PREFIX"
                )));
            }
            let mut builder = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_allow_http(config.allow_http)
                .with_region(config.region.as_deref().unwrap_or("us-east-1"));
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            for secret in [&config.access_key_id, &config.secret_access_key] {
                if secret.as_deref().is_some_and(crate::secret::is_reference) {
                    return Err(ArchiveError::Config(
                        "the S3 keys are not resolved (see ArchiveConfig::resolve_secrets)"
                            .to_owned(),
                    ));
                }
            }
            if let Some(id) = &config.access_key_id {
                builder = builder.with_access_key_id(id);
            }
            if let Some(secret) = &config.secret_access_key {
                builder = builder.with_secret_access_key(secret);
            }
            let store = builder
                .build()
                .map_err(|e| ArchiveError::Config(format!("{url}: {e}")))?;
            (Arc::new(store), prefix.trim_matches('/').to_owned())
        } else {
            let folder = url.strip_prefix("file://").unwrap_or(url);
            if folder.is_empty() || url.contains("://") && !url.starts_with("file://") {
                return Err(ArchiveError::Config(format!(
                    "unsupported archive URL '{url}': use s3://BUCKET/PREFIX, file:///FOLDER or a folder"
                )));
            }
            std::fs::create_dir_all(folder).map_err(|e| {
                ArchiveError::Config(format!(
                    "cannot create {folder}: {}",
                    crate::normalize::io_reason(&e)
                ))
            })?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(folder)
                .map_err(|e| ArchiveError::Config(format!("{folder}: {e}")))?;
            local = Some(std::path::PathBuf::from(folder));
            (Arc::new(store), String::new())
        };
        Ok(Self {
            objects,
            root: ObjectPath::from(root),
            location: url.trim_end_matches('/').to_owned(),
            level: config.level,
            folder: local,
        })
    }

    /// Where a part is on this machine, for an archive in a folder.
    pub fn local_file(&self, part: &PartManifest) -> Option<std::path::PathBuf> {
        let folder = self.folder.as_ref()?;
        Some(
            part.object
                .split('/')
                .fold(folder.clone(), |path, p| path.join(p)),
        )
    }

    /// Where the archive is, as configured (no secret is ever part of it).
    pub fn location(&self) -> &str {
        &self.location
    }

    fn path(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    fn store_error(&self, object: &str, source: object_store::Error) -> ArchiveError {
        ArchiveError::Store {
            location: format!("{}/{object}", self.location),
            source,
        }
    }

    fn corrupt(&self, object: &str, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Corrupt {
            location: format!("{}/{object}", self.location),
            reason: reason.into(),
        }
    }

    /// Writes `events` of `tenant`, one part per day, each followed by its manifest; returns
    /// the manifests. When this returns, every event is in a complete part.
    pub async fn write(
        &self,
        tenant: &TenantId,
        events: &[ArchivedEvent],
    ) -> Result<Vec<PartManifest>, ArchiveError> {
        let mut by_day: std::collections::BTreeMap<NaiveDate, Vec<&ArchivedEvent>> =
            Default::default();
        for event in events {
            by_day.entry(event.day()).or_default().push(event);
        }
        let mut manifests = Vec::new();
        for (day, events) in by_day {
            manifests.push(self.write_part(tenant, day, &events).await?);
        }
        Ok(manifests)
    }

    async fn write_part(
        &self,
        tenant: &TenantId,
        day: NaiveDate,
        events: &[&ArchivedEvent],
    ) -> Result<PartManifest, ArchiveError> {
        let written_at = Utc::now();
        let stem = format!(
            "{}-{}",
            written_at.format("%Y%m%dT%H%M%S%6fZ"),
            events
                .first()
                .map_or("empty", |e| &e.key[..e.key.len().min(12)])
        );
        let object = format!("events/{}/{day}/{stem}.jsonl.zst", tenant.as_str());
        let bytes = compress(tenant.as_str(), day, events, self.level)
            .map_err(|e| self.corrupt(&object, format!("cannot compress: {e}")))?;
        let times = events.iter().filter_map(|e| e.event.timestamp);
        let manifest = PartManifest {
            format: super::format::FORMAT.to_owned(),
            version: super::format::VERSION,
            tenant: tenant.as_str().to_owned(),
            day,
            object: object.clone(),
            events: events.len() as u64,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            first: times.clone().min(),
            last: times.max(),
            written_at,
        };
        self.objects
            .put(&self.path(&object), PutPayload::from(bytes))
            .await
            .map_err(|e| self.store_error(&object, e))?;
        let name = format!("manifests/{}/{day}/{stem}.json", tenant.as_str());
        let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        self.objects
            .put(&self.path(&name), PutPayload::from(text))
            .await
            .map_err(|e| self.store_error(&name, e))?;
        Ok(manifest)
    }

    /// The manifests of `tenant`'s parts (every tenant's when `None`) whose day is within
    /// `from..=to`, by tenant, day and time written.
    pub async fn list(
        &self,
        tenant: Option<&TenantId>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<PartManifest>, ArchiveError> {
        let listed = self.objects_under("manifests", tenant).await?;
        let root = self.root.as_ref();
        let mut manifests = Vec::new();
        for meta in listed {
            let full = meta.location.as_ref();
            let relative = full
                .strip_prefix(root)
                .unwrap_or(full)
                .trim_start_matches('/');
            let mut parts = relative.split('/');
            let (Some("manifests"), Some(_tenant), Some(day), Some(file)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(day) = day.parse::<NaiveDate>() else {
                continue;
            };
            if !file.ends_with(".json")
                || from.is_some_and(|from| day < from)
                || to.is_some_and(|to| day > to)
            {
                continue;
            }
            let bytes = self.get(relative).await?;
            let manifest: PartManifest = serde_json::from_slice(&bytes)
                .map_err(|e| self.corrupt(relative, format!("not a part manifest: {e}")))?;
            manifests.push(manifest);
        }
        manifests.sort_by(|a, b| {
            (&a.tenant, a.day, a.written_at, &a.object).cmp(&(
                &b.tenant,
                b.day,
                b.written_at,
                &b.object,
            ))
        });
        Ok(manifests)
    }

    /// The parts stored (complete or not) and their bytes, `tenant`'s or every tenant's,
    /// from a listing (no part is read).
    pub async fn usage(&self, tenant: Option<&TenantId>) -> Result<Usage, ArchiveError> {
        let listed = self.objects_under("events", tenant).await?;
        Ok(Usage {
            parts: listed.len() as u64,
            bytes: listed.iter().map(|meta| meta.size).sum(),
        })
    }

    /// Every object under `folder` (`events`, `manifests`), or under its `tenant` subfolder.
    async fn objects_under(
        &self,
        folder: &str,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<object_store::ObjectMeta>, ArchiveError> {
        let prefix = match tenant {
            Some(tenant) => format!("{folder}/{}", tenant.as_str()),
            None => folder.to_owned(),
        };
        self.objects
            .list(Some(&self.path(&prefix)))
            .try_collect()
            .await
            .map_err(|e| self.store_error(&prefix, e))
    }

    async fn get(&self, object: &str) -> Result<Vec<u8>, ArchiveError> {
        let bytes = self
            .objects
            .get(&self.path(object))
            .await
            .map_err(|e| self.store_error(object, e))?
            .bytes()
            .await
            .map_err(|e| self.store_error(object, e))?;
        Ok(bytes.to_vec())
    }

    /// A part's bytes, checked against its manifest (size and SHA-256).
    pub async fn fetch(&self, part: &PartManifest) -> Result<Vec<u8>, ArchiveError> {
        let bytes = self.get(&part.object).await?;
        if bytes.len() as u64 != part.bytes {
            return Err(self.corrupt(
                &part.object,
                format!(
                    "{} bytes where the manifest says {}",
                    bytes.len(),
                    part.bytes
                ),
            ));
        }
        let digest = sha256_hex(&bytes);
        if digest != part.sha256 {
            return Err(self.corrupt(
                &part.object,
                format!("SHA-256 {digest} where the manifest says {}", part.sha256),
            ));
        }
        Ok(bytes)
    }

    /// A part's events, checked against its manifest (size, SHA-256, header, count).
    pub async fn read(&self, part: &PartManifest) -> Result<Vec<ArchivedEvent>, ArchiveError> {
        let bytes = self.fetch(part).await?;
        let object = part.object.clone();
        let decoded = tokio::task::spawn_blocking(move || decompress(&bytes))
            .await
            .map_err(|e| self.corrupt(&object, e.to_string()))?
            .map_err(|reason| self.corrupt(&object, reason))?;
        let (header, events) = decoded;
        if header.tenant != part.tenant || header.day != part.day {
            return Err(self.corrupt(
                &part.object,
                format!(
                    "holds {}'s events of {} where the manifest says {}'s of {}",
                    header.tenant, header.day, part.tenant, part.day
                ),
            ));
        }
        if events.len() as u64 != part.events {
            return Err(self.corrupt(
                &part.object,
                format!(
                    "{} events where the manifest says {}",
                    events.len(),
                    part.events
                ),
            ));
        }
        Ok(events)
    }
}

/// A part's bytes: the header and `events` as JSON Lines, compressed.
fn compress(
    tenant: &str,
    day: NaiveDate,
    events: &[&ArchivedEvent],
    level: i32,
) -> std::io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), level)?;
    serde_json::to_writer(&mut encoder, &Header::new(tenant, day))?;
    encoder.write_all(b"\n")?;
    for event in events {
        serde_json::to_writer(&mut encoder, event)?;
        encoder.write_all(b"\n")?;
    }
    encoder.finish()
}

/// A part's header and events.
fn decompress(bytes: &[u8]) -> Result<(Header, Vec<ArchivedEvent>), String> {
    let text = zstd::stream::decode_all(bytes).map_err(|e| format!("cannot decompress: {e}"))?;
    let text = std::str::from_utf8(&text).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut lines = text.lines().enumerate();
    let header = match lines.next() {
        Some((_, line)) => Header::parse(line)?,
        None => return Err("empty part".to_owned()),
    };
    let mut events = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let event: ArchivedEvent = serde_json::from_str(line)
            .map_err(|e| format!("line {}: not an archived event: {e}", index + 1))?;
        events.push(event);
    }
    Ok((header, events))
}

/// SHA-256 in hexadecimal.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
