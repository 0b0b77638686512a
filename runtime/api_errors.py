"""HTTP error bodies: what a 4xx answer holds, for the OpenAPI schema of every route."""

from pydantic import BaseModel, Field


class ErrorMessage(BaseModel):
    """A 4xx error other than validation: `detail` says what was wrong and what to do."""

    detail: str


class ValidationIssue(BaseModel):
    """One validation problem: where (`loc`), what was expected (`msg`), and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorMessage(BaseModel):
    """422: one entry per problem (the first 20); `loc` names the field, `msg` what was expected."""

    detail: list[ValidationIssue]
    error_count: int | None = Field(None, description="how many problems were found (detail lists the first 20)")
