"""schemathesis hooks of scripts/fuzz.

Webhook URLs: the fuzzed courier allows loopback targets, and
`POST /v1/subscriptions/{id}/test` sends a request to the subscription's URL
at once. So that fuzzing never sends anything off this machine, every string
in a request body under a key named "url" that could be an absolute URL
(anything with a ':') is replaced, before the request goes out, by a loopback
URL nothing listens on. Strings without a ':' cannot parse as an absolute URL
and are kept, so URL validation is still fuzzed with them.
"""

import schemathesis

SINK = "http://127.0.0.1:9/fuzz"


def _confine(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "url" and isinstance(item, str) and ":" in item:
                value[key] = SINK
            else:
                _confine(item)
    elif isinstance(value, list):
        for item in value:
            _confine(item)


@schemathesis.hook
def before_call(context, case, **kwargs):
    _confine(case.body)
