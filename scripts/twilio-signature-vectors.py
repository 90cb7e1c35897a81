#!/usr/bin/env python3
"""Regenerate crates/twilio/tests/fixtures/signature_vectors.json with Twilio's official SDK.

    python3 -m venv /tmp/twvenv && /tmp/twvenv/bin/pip install twilio
    /tmp/twvenv/bin/python scripts/twilio-signature-vectors.py > crates/twilio/tests/fixtures/signature_vectors.json

Every signature and every verdict comes from twilio.request_validator.RequestValidator, so the
Rust validator is checked against Twilio's own implementation, not against itself.
"""
import json
import sys

import twilio
from twilio.request_validator import RequestValidator

TOKEN_A = "12345678901234567890123456789012"
TOKEN_B = "abcdefabcdefabcdefabcdefabcdef12"
ACCOUNT = "AC" + "1" * 32
BASE = "https://trunkline.example.com/telephony/providers/twilio/voice"

CALL = {
    "AccountSid": ACCOUNT,
    "ApiVersion": "2010-04-01",
    "CallSid": "CA" + "2" * 32,
    "CallStatus": "ringing",
    "Called": "+14155550100",
    "Caller": "+14155550199",
    "Direction": "inbound",
    "From": "+14155550199",
    "To": "+14155550100",
    "CallerName": "Zoë & Co <x>",
}


def pairs(params):
    out = []
    for k, v in params.items():
        for item in v if isinstance(v, list) else [v]:
            out.append([k, item])
    return out


class Multi(dict):
    """A form with repeated keys, read the way the SDK reads Flask's MultiDict."""

    def getall(self, name):
        v = self[name]
        return v if isinstance(v, list) else [v]


vectors = []


def add(name, token, signed_url, params, validate_url=None, signature=None, body=None, validate_token=None):
    """Sign `signed_url` (+ params) with `token`; ask the SDK whether `validate_url` with
    `validate_token` accepts it (defaults: the same URL and token)."""
    signer = RequestValidator(token)
    computed_here = signature is None and body is None
    if signature is None:
        signature = signer.compute_signature(signed_url, {} if body is not None else Multi(params))
    checker = RequestValidator(validate_token or token)
    url = validate_url or signed_url
    valid = checker.validate(url, body if body is not None else Multi(params), signature)
    v = {
        "name": name,
        "authToken": validate_token or token,
        "url": url,
        "signature": signature,
        "valid": bool(valid),
    }
    if computed_here:
        # What was signed, so that a signer can be checked against the SDK too.
        v["signedUrl"] = signed_url
        v["signedWith"] = token
    if body is not None:
        v["body"] = body
    else:
        v["params"] = pairs(params)
    vectors.append(v)


add("form params, URL as configured", TOKEN_A, BASE, CALL)
add("signed with :443, validated without", TOKEN_A, "https://trunkline.example.com:443/telephony/providers/twilio/voice", CALL, validate_url=BASE)
add("signed without port, validated with :443", TOKEN_A, BASE, CALL, validate_url="https://trunkline.example.com:443/telephony/providers/twilio/voice")
add("http signed with :80 port, validated without", TOKEN_A, "http://trunkline.example.com:80/telephony/providers/twilio/voice", CALL, validate_url="http://trunkline.example.com/telephony/providers/twilio/voice")
add("non-default port", TOKEN_A, "https://voice.example.net:8443/telephony/providers/twilio/voice", CALL)
add("query string in the URL", TOKEN_A, BASE + "?tenant=a&x=1", CALL)
add("repeated parameter", TOKEN_A, BASE, {**CALL, "StirVerstat": ["TN-Validation-Passed-A", "Alpha"]})
add("no parameters", TOKEN_A, BASE, {})
add("other account's token", TOKEN_A, BASE, CALL, validate_token=TOKEN_B)
add("tampered parameter", TOKEN_A, BASE, CALL, signature=RequestValidator(TOKEN_A).compute_signature(BASE, Multi({**CALL, "To": "+14155550111"})))
add("replayed to another URL", TOKEN_A, BASE, CALL, validate_url="https://attacker.example.org/telephony/providers/twilio/voice")
add("replayed to another path", TOKEN_A, BASE, CALL, validate_url="https://trunkline.example.com/telephony/providers/twilio/voice2")

body = json.dumps({"AccountSid": ACCOUNT, "To": "+14155550100"}, separators=(",", ":"))
h = RequestValidator(TOKEN_A).compute_hash(body)
add("bodySHA256", TOKEN_A, BASE + "?bodySHA256=" + h, None, body=body)
add("bodySHA256, body changed", TOKEN_A, BASE + "?bodySHA256=" + h, None, body=body.replace("0100", "0111"))

json.dump({"generator": "scripts/twilio-signature-vectors.py", "twilioPythonSdk": twilio.__version__, "vectors": vectors}, sys.stdout, indent=2, ensure_ascii=False)
sys.stdout.write("\n")
