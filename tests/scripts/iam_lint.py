"""Lints IAM policy documents with parliament, as IAM would read them.

Usage: iam_lint.py < policies.json   (a JSON array of {"source", "kind", "document"}, the
`policies` of moto_inventory.py). Prints {"findings": [...], "justified": [...]}: every finding
parliament reports, split into the ones JUSTIFIED below and the rest. The apply-against-moto
test requires the rest to be empty.

Trust policies (`kind` = "trust") are not given to parliament: it reads every policy as an
identity policy and reports their missing `Resource`, which a trust policy must not have. The
test checks them itself (service principal, `sts:AssumeRole` only).

JUSTIFIED is the one list of findings we keep on purpose, each with its reason.
"""
import json
import sys

from parliament import analyze_policy_string

JUSTIFIED = [
    {
        "issue": "UNKNOWN_CONDITION_FOR_ACTION",
        "detail_contains": "ec2:SourceInstanceARN",
        "reason": "ec2:SourceInstanceARN is a global condition key (the ARN of the instance whose role "
        "credentials signed the request), valid for every action; parliament only knows service keys. "
        "It is how an instance is limited to its own token parameter and its own tags.",
    },
    {
        "issue": "UNKNOWN_CONDITION_FOR_ACTION",
        "detail_contains": "aws:ARN",
        "reason": "aws:ARN (the ARN of the resource acted on) compared with ${ec2:SourceInstanceARN} limits "
        "CreateTags/TerminateInstances to the calling instance itself. IAM evaluates it although it is not "
        "in the documented key list; without it a job on one runner could tag or terminate any other runner.",
    },
]


def justification(finding):
    text = f"{finding.issue} {finding.detail}"
    for rule in JUSTIFIED:
        if finding.issue == rule["issue"] and rule["detail_contains"] in text:
            return rule["reason"]
    return None


def main():
    policies = json.load(sys.stdin)
    findings, justified = [], []
    for policy in policies:
        if policy.get("kind") == "trust":
            continue
        analyzed = analyze_policy_string(json.dumps(policy["document"]), ignore_private_auditors=True)
        for finding in analyzed.findings:
            entry = {
                "source": policy["source"],
                "issue": finding.issue,
                "severity": str(finding.severity),
                "detail": str(finding.detail),
            }
            reason = justification(finding)
            if reason:
                justified.append({**entry, "reason": reason})
            else:
                findings.append(entry)
    json.dump({"linted": len([p for p in policies if p.get("kind") != "trust"]), "findings": findings,
               "justified": justified}, sys.stdout)


main()
