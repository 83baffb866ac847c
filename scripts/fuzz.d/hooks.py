"""schemathesis hooks of scripts/fuzz.

Account ids: an event for an account that does not exist is refused before
anything is stored, so generated events would never reach the store. When
FUZZ_ACCOUNT_ID is set, every "account_id" in a request body that is a
well-formed id is replaced by it (the account scripts/fuzz created); ids
that are not well-formed stay, and are refused as before.

Webhook URLs: the fuzzed courier allows loopback targets, and
`POST /v1/subscriptions/{id}/test` sends a request to the subscription's URL
at once. So that fuzzing never sends anything off this machine, every string
in a request body under a key named "url" that could be an absolute URL
(anything with a ':') is replaced, before the request goes out, by a loopback
URL nothing listens on. Strings without a ':' cannot parse as an absolute URL
and are kept, so URL validation is still fuzzed with them.

Python 3.11 (3.11.7 and Debian bookworm's 3.11.2 among them) sometimes raises
a spurious "SystemError: AST constructor recursion depth mismatch" from
ast.parse in threaded programs (python/cpython#106905). Hypothesis parses
lambdas' source only to describe a strategy in its repr, and such an error
failed a whole operation of a run; a lambda it cannot describe is described
as unknown instead.
"""

import os
import re

import schemathesis
from hypothesis.internal import lambda_sources

SINK = "http://127.0.0.1:9/fuzz"
ACCOUNT = os.environ.get("FUZZ_ACCOUNT_ID")
UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _rewrite(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "url" and isinstance(item, str) and ":" in item:
                value[key] = SINK
            elif key == "account_id" and ACCOUNT and isinstance(item, str) and UUID.match(item):
                value[key] = ACCOUNT
            else:
                _rewrite(item)
    elif isinstance(value, list):
        for item in value:
            _rewrite(item)


_describe_lambda = lambda_sources.lambda_description


def _lambda_description(f):
    try:
        return _describe_lambda(f)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources.lambda_description = _lambda_description


@schemathesis.hook
def before_call(context, case, **kwargs):
    _rewrite(case.body)
