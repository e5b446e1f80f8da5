#!/usr/bin/env python3
"""Writes fuzz/corpus (seed inputs) and fuzz/regressions (inputs that broke bosun once).

Run by hand after changing the API or the formats: `python3 fuzz/make_seeds.py`. RPC
inputs are one selector byte (the method's index in bosun_fuzz::RPCS) and a body.
"""
import os, pathlib, shutil, struct

root = pathlib.Path(__file__).resolve().parent
repo = root.parent
RPCS = ["RegisterNode", "Heartbeat", "ReportHealth", "PollCommands", "AckCommand",
        "ListNodes", "GetNode", "DeleteNode", "IssueCommand", "ListCommands", "GetCommand",
        "CancelCommand", "ListInstances", "GetInstance", "GetHealthHistory", "ListEvents",
        "WatchEvents", "ListPools", "GetPool", "ScalePool", "ReportPoolDemand", "InjectFault",
        "GetPolicy", "SetPolicy", "TestPolicy"]

def write(kind, target, name, data):
    d = root / kind / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())

def rpc(kind, target, method, name, body):
    write(kind, target, f"{method}-{name}", bytes([RPCS.index(method)]) + (body if isinstance(body, bytes) else body.encode()))

for d in ["corpus", "regressions"]:
    shutil.rmtree(root / d, ignore_errors=True)

# Seeds: the documents bosun ships.
for f in [repo / "examples/quickstart.yaml", *sorted((repo / "crates/bosun-config/tests/data").glob("*.yaml"))]:
    write("corpus", "config", f.name, f.read_bytes())
write("corpus", "policy", "default_policy.yaml", (repo / "crates/bosun-policy/src/default_policy.yaml").read_bytes())
write("corpus", "policy", "strict.yaml", "version: 1\nmetadata: {name: strict}\nrules:\n  - name: warm\n    condition: 'event.event_type == \"thermal\" && event.metrics.temperature >= 70'\n    result: unhealthy\n  - name: loops\n    condition: '[1, 2, 3].exists(x, x > 2)'\n    result: degraded\n")
for f in sorted((repo / "scenarios").glob("*.yaml")):
    write("corpus", "scenario", f.name, f.read_bytes())

json_seeds = {
    "RegisterNode": ['{"nodeId": "n1", "gpus": [{"index": 0, "uuid": "GPU-0", "memoryBytes": "85899345920"}], "labels": {"tier": "prod"}}'],
    "Heartbeat": ['{"nodeId": "n1", "metrics": {"cpuUsagePercent": 10, "gpuMetrics": [{"gpuIndex": 0, "temperature": 60, "memoryUsed": "1024"}]}}'],
    "ReportHealth": ['{"nodeId": "n1", "events": [{"timestamp": "2026-01-01T00:00:00Z", "eventType": "HEALTH_EVENT_TYPE_XID", "metrics": {"xid_code": "79"}}]}'],
    "PollCommands": ['{"nodeId": "n1", "waitSeconds": 1}'],
    "AckCommand": ['{"nodeId": "n1", "commandId": "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6071", "outcome": "ACK_OUTCOME_SUCCEEDED"}'],
    "ListNodes": ['{}', '{"status": "NODE_STATUS_ACTIVE", "labelSelector": "tier=prod", "pageSize": 10}'],
    "GetNode": ['{"nodeId": "n1"}'],
    "DeleteNode": ['{"nodeId": "n1", "force": true}'],
    "IssueCommand": ['{"nodeId": "n1", "type": "COMMAND_TYPE_CORDON", "ttlSeconds": 60}'],
    "ListCommands": ['{"states": ["COMMAND_STATE_PENDING"]}'],
    "GetCommand": ['{"commandId": "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6071"}'],
    "CancelCommand": ['{"commandId": "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6071"}'],
    "ListInstances": ['{}'],
    "GetInstance": ['{"instanceId": "i-1"}'],
    "GetHealthHistory": ['{"nodeId": "n1", "limit": 5}'],
    "ListEvents": ['{"afterSeq": "0", "limit": 10}'],
    "WatchEvents": ['{}'],
    "ListPools": ['{}'],
    "GetPool": ['{"name": "p"}'],
    "ScalePool": ['{"name": "p", "target": 3}'],
    "ReportPoolDemand": ['{"pool": "p", "queueDepth": 5}'],
    "InjectFault": ['{"nodeId": "n1", "fault": "xid", "gpu": 0}'],
    "GetPolicy": ['{}'],
    "SetPolicy": ['{"yaml": "rules:\\n  - {name: r, condition: \'true\', result: healthy}\\n"}'],
    "TestPolicy": ['{"events": [{"eventType": "HEALTH_EVENT_TYPE_THERMAL", "metrics": {"temperature": "97"}}]}'],
}
for method, bodies in json_seeds.items():
    for i, body in enumerate(bodies):
        rpc("corpus", "rpc_json", method, f"{i}.json", body)

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def field(number, wire, payload):
    key = varint((number << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload

def string(number, text):
    return field(number, 2, text.encode())

for method in RPCS:
    rpc("corpus", "rpc_proto", method, "empty", b"")
for method in ["RegisterNode", "Heartbeat", "ReportHealth", "GetNode", "DeleteNode", "GetHealthHistory", "PollCommands"]:
    rpc("corpus", "rpc_proto", method, "n1", string(1, "n1"))

# Regressions: what the attack of issue 11 sent, and what fuzzing found since.
nested = "rules: " + "{a: " * 10000 + "}" * 10000 + "\n"
write("regressions", "policy", "nested-flow-mappings.yaml", nested)
write("regressions", "policy", "deep-addition-chain.yaml", "rules:\n  - {name: deep, condition: '" + "1 + " * 4000 + "1 > 0', result: unhealthy}\n")
write("regressions", "policy", "many-brackets-in-strings.yaml", "rules:\n  - {name: r, condition: '\"" + "[" * 5000 + "\" == \"\"', result: healthy}\n")
write("regressions", "config", "nested-flow-mappings.yaml", "server: " + "{a: " * 10000 + "}" * 10000 + "\n")
write("regressions", "config", "deep-block-nesting.yaml", "".join(" " * i + f"k{i}:\n" for i in range(200)))
write("regressions", "scenario", "nested-flow-sequences.yaml", "name: x\nfleet: " + "[" * 10000 + "]" * 10000 + "\n")
rpc("regressions", "rpc_json", "RegisterNode", "array-body.json", '["n1"]')
rpc("regressions", "rpc_json", "RegisterNode", "string-body.json", '"n1"')
rpc("regressions", "rpc_json", "RegisterNode", "memory-above-i64.json", '{"nodeId": "n2", "gpus": [{"index": 0, "memoryBytes": "18446744073709551615"}]}')
rpc("regressions", "rpc_json", "Heartbeat", "memory-used-above-i64.json", '{"nodeId": "n1", "metrics": {"gpuMetrics": [{"memoryUsed": "18446744073709551615"}]}}')
rpc("regressions", "rpc_json", "ReportHealth", "year-zero.json", '{"nodeId": "n1", "events": [{"timestamp": "0000-01-01T00:00:00Z"}]}')
rpc("regressions", "rpc_json", "TestPolicy", "nested-policy.json", '{"yaml": "rules: ' + "{a: " * 5000 + "}" * 5000 + '"}')
rpc("regressions", "rpc_json", "ListEvents", "after-seq-max.json", '{"afterSeq": "18446744073709551615"}')
rpc("regressions", "rpc_json", "WatchEvents", "unary-content-type.json", '{}')
gpu = field(8, 2, field(1, 0, varint(0)) + field(5, 0, varint(2**64 - 1)))
rpc("regressions", "rpc_proto", "RegisterNode", "memory-above-i64", string(1, "n3") + gpu)
timestamp = field(1, 0, varint(2**63 - 1))
event = field(1, 2, timestamp)
rpc("regressions", "rpc_proto", "ReportHealth", "timestamp-seconds-max", string(1, "n1") + field(3, 2, event))
bad_nanos = field(1, 0, varint(0)) + field(2, 0, varint(2**64 - 5))
rpc("regressions", "rpc_proto", "ReportHealth", "negative-nanos", string(1, "n1") + field(3, 2, field(1, 2, bad_nanos)))
print("seeds written under", root)
