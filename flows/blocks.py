"""Optional Prefect blocks as a source of settings for flow runs: a ``Secret`` for the API key and a
prefect-aws ``S3Bucket`` (with its ``AwsCredentials``) for the output store. See docs/production.md.

The env/settings path stays the default; a block is used only when its name is set
(``NIGHTBATCH_API_KEY_SECRET_BLOCK``, ``NIGHTBATCH_S3_BUCKET_BLOCK``). The S3 block is read as a block
document through the API, so workers need no prefect-aws install; its credentials are handed to boto3's
own chain (the flow-run process's environment), the way every other nightbatch S3 client gets them.
"""

from __future__ import annotations

from typing import Any, cast

from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from nightbatch.config import Settings, export_to_environment
from nightbatch.errors import ConfigError

__all__ = ["apply_blocks", "s3_settings_from_block"]

_AWS_ENV = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
    "region_name": "AWS_DEFAULT_REGION",
    "profile_name": "AWS_PROFILE",
}


def _block_data(name: str, slug: str) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name=name, block_type_slug=slug, include_secrets=True)
        except Exception as exc:  # ObjectNotFound and friends: say which block, and how to make one
            raise ConfigError(f"Prefect block {slug}/{name} cannot be read ({exc}); create it in the UI (Blocks) "
                              f"or unset the setting that names it") from exc  # fmt: skip
    return dict(document.data)


def s3_settings_from_block(name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``(settings updates, AWS environment)`` from an ``S3Bucket`` block and its nested credentials."""
    data = _block_data(name, "s3-bucket")
    folder = str(data.get("bucket_folder") or "").strip("/")
    updates: dict[str, Any] = {"output": f"s3://{data['bucket_name']}" + (f"/{folder}" if folder else "")}
    credentials = data.get("credentials") or {}
    endpoint = (credentials.get("aws_client_parameters") or {}).get("endpoint_url")
    if endpoint:
        updates["s3_endpoint_url"] = str(endpoint)
    env = {var: str(credentials[key]) for key, var in _AWS_ENV.items() if credentials.get(key)}
    return updates, env


def apply_blocks(settings: Settings) -> Settings:
    """``settings`` with the values of the blocks it names (unchanged when it names none)."""
    updates: dict[str, Any] = {}
    if settings.api_key_secret_block:
        secret = cast(Secret[str], Secret.load(settings.api_key_secret_block))  # sync context: the block itself
        updates["anthropic_api_key"] = SecretStr(str(secret.get()))
    if settings.s3_bucket_block:
        s3, env = s3_settings_from_block(settings.s3_bucket_block)
        updates.update(s3)
        export_to_environment(env)  # boto3's credential chain, for this flow-run process
    return settings.model_copy(update=updates) if updates else settings
