//! S3 adapter for the runner binaries: tags and multipart uploads.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};

use super::{SdkConfig, aws_error};
use crate::error::{AwsError, AwsErrorKind};
use crate::ports::{Encryption, ObjectStore};

pub struct S3ObjectStore {
    client: Client,
}

impl S3ObjectStore {
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }
}

/// `k=v&k2=v2`, URL-encoded, as S3's `x-amz-tagging` wants it.
fn tagging(tags: &[(String, String)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    tags.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn tag_value(&self, bucket: &str, key: &str, tag: &str) -> Result<Option<String>, AwsError> {
        match self.client.get_object_tagging().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(out.tag_set().iter().find(|t| t.key() == tag).map(|t| t.value().to_string())),
            Err(e) => {
                let err = aws_error("s3:GetObjectTagging", e);
                if err.kind == AwsErrorKind::NotFound { Ok(None) } else { Err(err) }
            }
        }
    }

    async fn start_upload(
        &self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
        encryption: &Encryption,
    ) -> Result<String, AwsError> {
        let mut call = self.client.create_multipart_upload().bucket(bucket).key(key).tagging(tagging(tags));
        call = match encryption {
            Encryption::BucketDefault => call,
            Encryption::S3 => call.server_side_encryption(ServerSideEncryption::Aes256),
            Encryption::Kms { key_id } => {
                call.server_side_encryption(ServerSideEncryption::AwsKms).set_ssekms_key_id(key_id.clone())
            }
        };
        let out = call.send().await.map_err(|e| aws_error("s3:CreateMultipartUpload", e))?;
        out.upload_id().map(str::to_string).ok_or_else(|| {
            AwsError::new("s3:CreateMultipartUpload", AwsErrorKind::Transient, None, "no upload id in the answer")
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        data: bytes::Bytes,
    ) -> Result<String, AwsError> {
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| aws_error("s3:UploadPart", e))?;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> Result<(), AwsError> {
        let parts: Vec<CompletedPart> =
            parts.iter().map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build()).collect();
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| aws_error("s3:CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), AwsError> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| aws_error("s3:AbortMultipartUpload", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tagging_is_url_encoded() {
        assert_eq!(
            super::tagging(&[("name".into(), "actions-runner-linux-x64-2.321.0.tar.gz".into())]),
            "name=actions-runner-linux-x64-2.321.0.tar.gz"
        );
        assert_eq!(super::tagging(&[("a b".into(), "c&d".into()), ("e".into(), "f".into())]), "a%20b=c%26d&e=f");
    }
}
