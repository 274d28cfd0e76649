"""What one training attempt may do in S3, as an IAM session policy: read the datasets and the
example packs they name (and the model it continues from), write, read and delete only its own
attempt folder. The trainer container gets credentials minted for it with this policy (see
plugins/trainer_operator.py and docs/security.md), lasting longer than its time limit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tasks.layout import DATASETS_PREFIX, EXAMPLES_PREFIX
from tasks.storage import S3Uri

# STS refuses longer sessions; a role's own maximum may be lower (its MaxSessionDuration).
LONGEST_SESSION = timedelta(hours=12)
# Time past the training limit the credentials still hold: the final uploads of a try that ran
# to its limit, and the container's start.
SESSION_MARGIN = timedelta(minutes=30)


# An IAM policy document, in AWS's JSON.
IamPolicy = dict[str, Any]


def session_duration(training_limit: timedelta) -> timedelta:
    """How long the attempt's credentials last: its training limit and a margin, at most 12 h."""
    return min(training_limit + SESSION_MARGIN, LONGEST_SESSION)


def object_arn(uri: S3Uri) -> str:
    return f"arn:aws:s3:::{uri.bucket}/{uri.key}"


def trainer_session_policy(output_uri: str, warm_start_uri: str | None) -> IamPolicy:
    """The session policy of one attempt writing to `output_uri` (its attempt folder)."""
    attempt = S3Uri.parse(output_uri)
    bucket = attempt.bucket
    readable = [f"arn:aws:s3:::{bucket}/{DATASETS_PREFIX}*", f"arn:aws:s3:::{bucket}/{EXAMPLES_PREFIX}*"]
    if warm_start_uri:
        readable.append(object_arn(S3Uri.parse(warm_start_uri)))
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadTheDataset", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": readable},
            {
                "Sid": "WriteTheAttempt",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": [f"arn:aws:s3:::{bucket}/{attempt.key.rstrip('/')}/*"],
            },
            # Key names only (HeadBucket and the checkpoint listing need it), not their content.
            {
                "Sid": "ListTheBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
        ],
    }
