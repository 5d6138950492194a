"""Verifies webhook deliveries recorded by tests/webhooks.rs with the `standardwebhooks`
package, an independent implementation of the Standard Webhooks specification.

Input: a JSON file of [{"secret": "whsec_...", "headers": {...}, "body": "...",
"expect": "valid" | "invalid"}]. Exits non-zero if any case disagrees with its expectation.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)
    failures = 0
    for n, case in enumerate(cases):
        try:
            payload = Webhook(case["secret"]).verify(case["body"], case["headers"])
            outcome = "valid"
            if payload != json.loads(case["body"]):
                print(f"case {n}: verified payload differs from the body", file=sys.stderr)
                failures += 1
        except WebhookVerificationError as error:
            outcome = "invalid"
            reason = str(error)
        if outcome != case["expect"]:
            failures += 1
            detail = "" if outcome == "valid" else f" ({reason})"
            print(f"case {n}: expected {case['expect']}, got {outcome}{detail}", file=sys.stderr)
    print(f"{len(cases) - failures}/{len(cases)} cases as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
