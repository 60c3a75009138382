"""infra/aws: the IAM policy is least-privilege and forces SSE; bucket policy and lifecycle are accepted by S3's API.

Prefixes are checked against the keys nightbatch actually writes, so the examples cannot drift from the code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from moto import mock_aws
from moto.iam.policy_validation import BaseIAMPolicyValidator

from nightbatch.collect.ingest import results_key, shard_key
from nightbatch.submit.submitter import manifest_key
from tests.deployments.support import ROOT, load_json

BUCKET = "example-nightbatch-bucket"
PREFIX = "nightbatch/"
ALLOWED_ACTIONS = {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:AbortMultipartUpload"}


def _text(relative: str) -> str:
    return (ROOT / relative).read_text(encoding="utf-8")


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    (found,) = [s for s in policy["Statement"] if s.get("Sid") == sid]
    return found


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def test_iam_policy_grants_only_what_nightbatch_uses():
    policy = load_json("infra/aws/iam-policy.json")
    assert policy["Version"] == "2012-10-17"
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    for statement in allows:
        assert set(_as_list(statement["Action"])) <= ALLOWED_ACTIONS, statement["Sid"]
        for resource in _as_list(statement["Resource"]):
            assert resource.startswith(f"arn:aws:s3:::{BUCKET}"), resource
            assert resource != f"arn:aws:s3:::{BUCKET}/*", f"{statement['Sid']}: limit objects to a prefix"

    write = _statement(policy, "ReadWriteNightbatchPrefix")
    assert set(_as_list(write["Action"])) == {"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"}
    assert _as_list(write["Resource"]) == [f"arn:aws:s3:::{BUCKET}/{PREFIX}*"]
    puts = [s for s in allows if "s3:PutObject" in _as_list(s["Action"])]
    assert puts == [write], "only the nightbatch prefix is writable"

    listing = _statement(policy, "ListOnlyNightbatchPrefixes")
    assert _as_list(listing["Resource"]) == [f"arn:aws:s3:::{BUCKET}"]
    assert f"{PREFIX}*" in listing["Condition"]["StringLike"]["s3:prefix"]


def test_iam_policy_denies_puts_without_server_side_encryption():
    deny = _statement(load_json("infra/aws/iam-policy.json"), "DenyPutObjectWithoutSSE")
    assert deny["Effect"] == "Deny"
    assert _as_list(deny["Action"]) == ["s3:PutObject"]
    assert deny["Condition"] == {"Null": {"s3:x-amz-server-side-encryption": "true"}}


def test_bucket_policy_guardrails():
    policy = load_json("infra/aws/bucket-policy.json")
    assert all(s["Effect"] == "Deny" for s in policy["Statement"])
    unencrypted = _statement(policy, "DenyUnencryptedObjectUploads")
    assert unencrypted["Condition"] == {"Null": {"s3:x-amz-server-side-encryption": "true"}}
    unknown = _statement(policy, "DenyUnknownEncryption")
    assert set(unknown["Condition"]["StringNotEqualsIfExists"]["s3:x-amz-server-side-encryption"]) == {
        "AES256",
        "aws:kms",
    }
    transport = _statement(policy, "DenyInsecureTransport")
    assert transport["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_lifecycle_prefixes_match_the_keys_nightbatch_writes():
    rules = {r["ID"]: r for r in load_json("infra/aws/lifecycle.json")["Rules"]}
    day = date(2026, 11, 24)
    raw = rules["expire-raw-results-archives"]
    assert (PREFIX + results_key(7, day)).startswith(raw["Filter"]["Prefix"])
    assert raw["Expiration"]["Days"] > 0
    manifests = rules["expire-request-manifests"]
    assert (PREFIX + manifest_key(7, datetime(2026, 11, 24, tzinfo=UTC))).startswith(manifests["Filter"]["Prefix"])
    outputs = rules["transition-outputs"]
    assert (PREFIX + shard_key("ticket_triage", day, 7)).startswith(outputs["Filter"]["Prefix"])
    assert [t["StorageClass"] for t in outputs["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] > 0
    assert all(r["Status"] == "Enabled" for r in rules.values())


@pytest.mark.usefixtures("aws")
def test_s3_and_iam_accept_the_documents():
    # moto's S3 parses the lifecycle (after botocore checked its shape against S3's API model); moto's IAM
    # rejects a malformed identity policy with MalformedPolicyDocument, as IAM does.
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    lifecycle = load_json("infra/aws/lifecycle.json")
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=lifecycle)
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]) == len(lifecycle["Rules"])
    iam = boto3.client("iam")
    iam.create_policy(PolicyName="nightbatch-worker", PolicyDocument=_text("infra/aws/iam-policy.json"))
    iam.create_policy(PolicyName="nightbatch-minio-worker", PolicyDocument=_text("infra/minio/worker-policy.json"))


def test_bucket_policy_grammar():
    # S3 itself does not check the grammar here (moto stores any text), so use IAM's checker, which allows Principal.
    BaseIAMPolicyValidator(_text("infra/aws/bucket-policy.json")).validate()


def test_lifecycle_storage_classes_exist():
    model = botocore.session.get_session().get_service_model("s3")
    known = set(model.shape_for("TransitionStorageClass").enum)
    for rule in load_json("infra/aws/lifecycle.json")["Rules"]:
        for transition in rule.get("Transitions", []):
            assert transition["StorageClass"] in known, transition
