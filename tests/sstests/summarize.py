"""Reads results/<suite>/*.xml (pytest junit) and prints the results table (markdown).

A failure is matched against the causes analysed so far (KNOWN); anything else is printed with
its first failure line as "UNEXPLAINED", and a known failure that now passes is flagged."""

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# category: product = our node answers differently from session-storage-server;
#           exception = cannot pass through an HTTP(S) shim / on a devnet (legitimate);
#           upstream = the test itself is inconsistent; shim = the shim lacks something.
KNOWN = {
    "test_batch::test_batch_bt": (
        "exception",
        "bt-encoded `storage.batch` request and bt reply: OxenMQ-only (session-storage-server's "
        "`/storage_rpc/v1` is JSON-only too); the shim refuses it (`RuntimeError: Request failed: "
        "... bt-encoded ... has no HTTP(S) form`).",
    ),
    "test_monitor::test_monitor_reg_ed": (
        "exception",
        "`monitor.messages` is a bt-encoded OxenMQ-only endpoint (no HTTP(S) route in the storage "
        "server); the shim answers `UNKNOWNCOMMAND`.",
    ),
    "test_monitor::test_monitor_reg_session": ("exception", "as test_monitor_reg_ed."),
    "test_monitor::test_monitor_reg_subaccount": ("exception", "as test_monitor_reg_ed."),
    "test_monitor::test_monitor_push": (
        "exception",
        "needs OxenMQ server push (`notify.message` on the client's own OMQ connection, "
        "`o.add_category`); no HTTP(S) equivalent (shim raises NotImplementedError).",
    ),
    "test_monitor::test_monitor_multi": ("exception", "as test_monitor_push."),
    "test_ifelse::test_ifelse": (
        "exception",
        "needs a live testnet's chain height: `{'height_before': 1234}` must be false (height >= "
        "1234) and `height_at_least: 100` true; a fresh devnet is at a few dozen blocks, so r[1] "
        "takes the `then` branch (`assert not r[1]['condition']` fails). With the heights scaled "
        "to the devnet (suite `diag`) the whole test passes.",
    ),
    "test_expire::test_expire": (
        "product",
        "`expire` (neither shorten nor extend): session-storage-server lists in `updated` every "
        "matching message, including msgs[6] whose expiry already equals the requested one "
        "(`update_expiry` has no expiry condition without shorten/extend); our node leaves it "
        "out: `updated` has 5 of the 6 hashes (and the signed string lacks it too).",
    ),
    "test_expire::test_expire_shorten_extend": (
        "upstream",
        "every assertion passes up to the last one, which is inconsistent with the test's own "
        "earlier ones: sub-request 8 extends msgs[0..7] to now+45 s and sub-request 9 (retrieve) "
        "asserts they are at now+45 s, then sub-request 10 (`get_expiries` of msgs[0]) expects "
        "now+30 s. Our node answers now+45 s, which is what the storage server's own SQL "
        "(`SELECT hash, expiry ... WHERE hash = ?`) returns. Upstream test bug (added in "
        "8db2a72), not a product gap.",
    ),
}

SWARM_RE = re.compile(r"assert (?:(\d+) >= 5|5 <= (\d+))")
# ss.py is not a test module, so pytest does not rewrite its asserts: its message is a bare
# AssertionError; the traceback names the line (`assert len(m['store']['swarm']) >= 5`).
SS_SWARM_LINE = re.compile(
    r">\s+assert len\(m\['store'\]\['swarm'\]\) >= (?:5|SWARM_MIN)\s*\n(?:[ ^]*\n)?E\s+AssertionError"
)


def load(suite_dir: Path):
    out = {}
    for xml in sorted(suite_dir.glob("*.xml")):
        for tc in ET.parse(xml).getroot().iter("testcase"):
            mod = tc.get("classname").split(".")[-1]
            key = f"{mod}::{tc.get('name')}"
            fail = tc.find("failure")
            if fail is None:
                fail = tc.find("error")
            if tc.find("skipped") is not None:
                out[key] = ("skip", "", "")
            elif fail is None:
                out[key] = ("pass", "", "")
            else:
                first = ((fail.get("message") or "").splitlines() or [""])[0][:200]
                out[key] = ("FAIL", first, fail.text or "")
    return out


def cause(key, status, msg, text, nodes):
    if status != "FAIL":
        return ""
    m = SWARM_RE.search(msg)
    if m or SS_SWARM_LINE.search(text):
        n = (m.group(1) or m.group(2)) if m else f"fewer than 5 (all {nodes} nodes)"
        where = "`5 <= len(swarm) <= 10`" if m else "`ss.store_n`: `len(store['swarm']) >= 5`"
        return f"**devnet size**: the swarm has {n} members, the test asserts at least 5 ({where})"
    if key in KNOWN:
        cat, text = KNOWN[key]
        return f"**{cat}**: {text}"
    return f"UNEXPLAINED: `{msg}`"


def main():
    res = Path(sys.argv[1])
    nodes = sys.argv[2] if len(sys.argv) > 2 else "?"
    suites = {s: load(res / s) for s in ("strict", "relaxed", "diag") if (res / s).is_dir()}
    keys = sorted(
        {k for r in suites.values() for k in r if not k.startswith("diag")},
        key=lambda k: (k.split("::")[0], k),
    )
    strict = suites.get("strict", {})
    relaxed = suites.get("relaxed", {})
    diag = suites.get("diag", {})
    print(f"# network-tests (session-storage-server 8616387) against a {nodes}-node appchain devnet\n")
    for name, r in (("strict (unmodified tests)", strict), ("relaxed (swarm floor = devnet size)", relaxed)):
        if r:
            n_pass = sum(1 for v in r.values() if v[0] == "pass")
            no_mon = {k: v for k, v in r.items() if not k.startswith("test_monitor")}
            p2 = sum(1 for v in no_mon.values() if v[0] == "pass")
            print(
                f"- {name}: **{n_pass} of {len(r)}** pass; without test_monitor.py: **{p2} of {len(no_mon)}**"
            )
    if diag:
        for k, v in diag.items():
            print(f"- diag (test_ifelse with heights 1234/100 scaled to 1/1): {k} **{v[0]}**")
    print()
    print("| test | strict | relaxed | cause of failure |")
    print("|---|---|---|---|")
    for k in keys:
        s = strict.get(k, ("-", "", ""))
        r = relaxed.get(k, ("-", "", ""))
        c_r = cause(k, *r, nodes)
        c_s = cause(k, *s, nodes)
        if s[0] == "FAIL" and r[0] == "FAIL" and c_s != c_r:
            c = f"strict: {c_s}; relaxed: {c_r}"
        else:
            c = c_r or c_s
        if r[0] == "pass" and k in KNOWN:
            c += " (a known cause no longer applies: update summarize.py)"
        print(f"| {k} | {s[0]} | {r[0]} | {c} |")


if __name__ == "__main__":
    main()
