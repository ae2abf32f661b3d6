import json
import os
import sys
import urllib.request


def send_feedback(trace_id, thumbs_up, comment=None):
    """Records a user's thumbs up or down on one interaction (its trace id, hex)."""
    score = {"trace_id": trace_id, "name": "user_feedback", "value": thumbs_up, "source": "app"}
    if comment:
        score["comment"] = comment
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    request = urllib.request.Request(
        base + "/api/v1/scores",
        data=json.dumps(score).encode(),
        headers={
            "authorization": "Bearer " + os.environ["SPANHOUSE_TOKEN"],
            "content-type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["ids"][0]


if __name__ == "__main__":
    print(send_feedback(sys.argv[1], False, "wrong city"))
