"""Hooks of scripts/schemathesis: the two query values a JSON Schema cannot describe.

- `cursor` of the numbers listing is opaque: a value only this server makes (it encodes the
  carrier's next page and is checked against the account). A generated one that fits the
  schema is dropped, so the listing starts at the first page; one that does not fit the
  schema (too long, control characters) is sent as it is, and must be refused.
- `phoneNumber` must be valid for its country code, which takes libphonenumber's tables to
  judge. A generated value in E.164 form is replaced with a valid number; one that is not
  in E.164 form is sent as it is, and must be refused. The same for `To` of the Twilio voice
  webhook's form body, and for `from` and `to` of `POST /telephony/calls` (which must also
  differ from each other).

Everything else is generated from /openapi.json untouched.
"""

import re

import schemathesis

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
MAX_CURSOR_LEN = 2048


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    body = case.body
    if case.operation.path == "/telephony/calls" and isinstance(body, dict):
        for field, valid in (("from", "+14155550100"), ("to", "+14155550199")):
            if isinstance(body.get(field), str) and E164.fullmatch(body[field]):
                body[field] = valid
    query = case.query if isinstance(case.query, dict) else {}
    cursor = query.get("cursor")
    if isinstance(cursor, str) and len(cursor) <= MAX_CURSOR_LEN and not CONTROL.search(cursor):
        del query["cursor"]
    phone = query.get("phoneNumber")
    if isinstance(phone, str) and E164.fullmatch(phone):
        query["phoneNumber"] = "+14155550100"
    body = case.body
    if isinstance(body, dict):
        to = body.get("To")
        if isinstance(to, str) and E164.fullmatch(to):
            body["To"] = "+14155550100"
