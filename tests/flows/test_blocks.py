"""Optional Prefect blocks: a Secret for the API key, a prefect-aws S3Bucket for the output store."""

from __future__ import annotations

import os
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from pydantic import Field, SecretStr

from flows.blocks import apply_blocks
from nightbatch.config import Settings
from nightbatch.storage import store_from_settings


class AwsCredentials(Block):
    """The fields of prefect-aws's block of the same slug that nightbatch reads (prefect-aws is not installed)."""

    _block_type_slug = "aws-credentials"
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    region_name: str | None = None
    aws_client_parameters: dict[str, Any] = Field(default_factory=dict)


class S3Bucket(Block):
    _block_type_slug = "s3-bucket"
    bucket_name: str
    bucket_folder: str = ""
    credentials: AwsCredentials


@pytest.mark.usefixtures("prefect_harness")
def test_without_block_names_the_settings_are_untouched():
    settings = Settings(anthropic_api_key=None)
    assert apply_blocks(settings) is settings


@pytest.mark.usefixtures("prefect_harness")
def test_the_api_key_comes_from_a_secret_block():
    Secret(value="sk-from-the-block").save("nb-test-api-key", overwrite=True)
    settings = apply_blocks(Settings(anthropic_api_key=None, api_key_secret_block="nb-test-api-key"))
    assert settings.api_key_value() == "sk-from-the-block"
    assert not settings.simulated


@pytest.mark.usefixtures("prefect_harness")
def test_the_output_store_and_its_credentials_come_from_an_s3_bucket_block(
    s3_bucket: str, s3_endpoint_url: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    credentials = AwsCredentials(
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SecretStr(aws_env["AWS_SECRET_ACCESS_KEY"]),
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": s3_endpoint_url},
    )
    S3Bucket(bucket_name=s3_bucket, bucket_folder="nightly/", credentials=credentials).save(
        "nb-test-outputs", overwrite=True
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # only the block knows the credentials now
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    settings = apply_blocks(Settings(s3_bucket_block="nb-test-outputs"))
    assert settings.resolved_output == f"s3://{s3_bucket}/nightly"
    assert settings.s3_endpoint_url == s3_endpoint_url
    assert os.environ["AWS_ACCESS_KEY_ID"] == aws_env["AWS_ACCESS_KEY_ID"]
    store = store_from_settings(settings)
    store.put_bytes("probe.txt", b"written with the block's credentials")
    assert store.get_bytes("probe.txt") == b"written with the block's credentials"
