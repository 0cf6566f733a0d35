"""Shared pieces of the request and response models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# ref §1: all IDs are strings in v1.3 (some exceed the safe integer range). Requests refuse numbers.
Id = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]

IdSchema = Literal["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "IDFA_MD5", "AAID_SHA256", "AAID_MD5"]
"""ref §2.1: `segment/mapping/` id_schema values (no GAID_*; AAID covers GAID)."""

CalculateType = Literal[
    "EMAIL_SHA256",
    "PHONE_SHA256",
    "IDFA_SHA256",
    "IDFA_MD5",
    "GAID_SHA256",
    "GAID_MD5",
    "MAID_SHA256",
    "MAID_MD5",
    "FIRST_SHA256",
    "FIRST_MD5",
    "MULTIPLE_TYPES",
]
"""ref §2.4: `dmp/custom_audience/file/upload/` `calculate_type` values (the file flow uses GAID_*, not AAID_*)."""

CreateCalculateType = Literal[
    "EMAIL_SHA256",
    "PHONE_SHA256",
    "IDFA_SHA256",
    "IDFA_MD5",
    "GAID_SHA256",
    "GAID_MD5",
    "FIRST_SHA256",
    "FIRST_MD5",
    "MULTIPLE_TYPES",
]
"""`dmp/custom_audience/create/` `calculate_type` values: upload's without MAID_* (official SDK
yml_files/dmp_custom_audience_create.yml, ref §9). A MAID_* file is created as FIRST_*, the same enum value."""


class RequestModel(BaseModel):
    """Base of request bodies/queries: unknown fields are a bug in the caller, numbers are not IDs."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ResponseModel(BaseModel):
    """Base of response parts: tolerate fields TikTok adds, accept numeric IDs leniently as strings."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, hide_input_in_errors=True)


class ApiResult(ResponseModel):
    """What every client method returns: the `data` fields plus envelope facts."""

    request_id: str = ""
    partial_success: bool = Field(
        default=False, description="True when TikTok answered 20001 (partial success): inspect the data."
    )


class EmptyResult(ApiResult):
    """For endpoints whose `data` carries nothing useful (e.g. `segment/mapping/`)."""


class PageInfo(ResponseModel):
    """ref §1: pagination block."""

    page: int = 1
    page_size: int = 0
    total_number: int = 0
    total_page: int = 0
