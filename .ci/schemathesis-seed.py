"""Create one record of each kind on a fresh Herald node and write a schemathesis config that points the
operations on one record (`/v1/endpoints/{id}`, `/v1/jobs/{id}`, ...) at them, so the fuzzer reaches the
handlers' logic instead of only their 404s. Usage: schemathesis-seed.py BASE_URL TOKEN CONFIG_PATH"""

import json
import sys
import urllib.request

base, token, config_path = sys.argv[1], sys.argv[2], sys.argv[3]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


# Targets on a reserved documentation domain: the SSRF guard stays on, and attempts fail without harm.
endpoint = call("POST", "/v1/endpoints", {"url": "https://example.com/hook"})
event = call("POST", "/v1/events", {"event_type": "seed.created", "payload": {"n": 1}})
delivery = call("POST", "/v1/deliveries", {"url": "https://example.com/direct", "payload": {}})
call("PUT", "/v1/routes/seed", {"kind": "notify", "url": "https://example.com/worker"})
job = call("POST", "/v1/jobs", {"route": "seed", "payload": {"n": 1}})
call("POST", "/v1/tenants", {"id": "seed"})
token_id = call("GET", "/v1/tenants/seed/tokens")["data"][0]["id"]
webhook = call("POST", "/test-webhook?webhook_url=https://example.com/status", {})
call("POST", "/api/v0/webhooks", {"eventName": "seed.broker", "webhookUrl": "https://example.com/b"})

bindings = [
    (r"^/v1/endpoints/\{id\}", {"id": endpoint["id"], "since": "2020-01-01T00:00:00Z"}),
    (r"^/v1/events/\{id\}", {"id": event["id"]}),
    (r"^/v1/deliveries/\{id\}", {"id": delivery["id"]}),
    (r"^/v1/jobs/\{id\}", {"id": job["id"]}),
    (r"^/v1/routes/\{name\}", {"name": "seed"}),
    (r"^/v1/tenants/\{id\}", {"id": "seed", "token_id": token_id}),
    (r"^/webhook-status/", {"webhook_id": webhook["webhook_id"]}),
    (r"^/api/v0/(webhooks|trigger-event)/\{eventName\}", {"eventName": "seed.broker"}),
]
with open(config_path, "w") as out:
    for regex, parameters in bindings:
        out.write("[[operations]]\n")
        out.write("include-path-regex = %s\n" % json.dumps(regex))
        values = ", ".join("%s = %s" % (json.dumps(k), json.dumps(v)) for k, v in parameters.items())
        out.write("parameters = { %s }\n\n" % values)
print("seeded: endpoint %s, delivery %s, job %s" % (endpoint["id"], delivery["id"], job["id"]))
