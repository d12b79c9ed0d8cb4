"""Checks IAM policies with parliament (AWS's Service Authorization Reference).

Reads JSON lines {"name": ..., "policy": {...}} on stdin; prints one JSON array of
findings {"policy", "issue", "severity", "detail"} on stdout (severity from parliament's
own configuration: INFO, LOW, MEDIUM, HIGH, CRITICAL).
"""

import json
import sys

import parliament
from parliament import analyze_policy_string

findings = []
for line in sys.stdin:
    if not line.strip():
        continue
    item = json.loads(line)
    policy = analyze_policy_string(json.dumps(item["policy"]), include_community_auditors=False)
    for f in policy.findings:
        severity = parliament.config.get(f.issue, {}).get("severity", "UNKNOWN")
        findings.append({"policy": item["name"], "issue": f.issue, "severity": severity, "detail": f.detail})
json.dump(findings, sys.stdout, default=str)
