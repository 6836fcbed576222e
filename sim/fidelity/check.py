#!/usr/bin/env python3
"""Fidelity check: validates hubspot-sim responses against HubSpot's OpenAPI schemas and parses
them with HubSpot's official Python client (hubspot-api-client).

Usage: SIM_URL=http://127.0.0.1:PORT python3 check.py
The specs are read from $HUBSPOT_OPENAPI_DIR (default: <repo>/../shared/reference/openapi) and are
never copied: HubSpot does not license them for redistribution.
"""
import copy
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = Path(os.environ.get("HUBSPOT_OPENAPI_DIR", REPO / ".." / "shared" / "reference" / "openapi"))
SIM = os.environ.get("SIM_URL", "http://127.0.0.1:8089").rstrip("/")
TOKEN = "pat-na1-fidelity-check"

results = []  # (name, ok, detail)


def record(name, ok, detail=""):
    results.append((name, ok, detail))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)


def http(method, path, body=None, token=TOKEN):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(SIM + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, dict(e.headers), json.loads(raw) if raw else None


def search(path, body):
    """POST a search, waiting out the 5-per-second search limit as a client must."""
    for _ in range(5):
        res = http("POST", path, body)
        if res[0] != 429:
            return res
        time.sleep(1.1)
    return res


def widen_nulls(components):
    """Real HubSpot returns null for requested properties without a value; the specs type them
    as plain strings. Allow null in memory (the files are never edited)."""
    comps = copy.deepcopy(components)
    for schema in comps.get("schemas", {}).values():
        props = schema.get("properties", {})
        ap = props.get("properties", {}).get("additionalProperties")
        if isinstance(ap, dict) and ap.get("type") == "string":
            ap["type"] = ["string", "null"]
    # docs/hubspot.md §3.5: PublicOwner.userId is null for archived/deactivated owners, although the
    # spec types it as a plain integer.
    owner = comps.get("schemas", {}).get("PublicOwner", {}).get("properties", {})
    if owner.get("userId", {}).get("type") == "integer":
        owner["userId"]["type"] = ["integer", "null"]
    return comps


def main():
    if not SPEC_DIR.is_dir():
        print(f"fidelity check skipped: {SPEC_DIR} not found (HubSpot's OpenAPI specs are not redistributable)")
        return 0
    import jsonschema

    checker = jsonschema.FormatChecker()
    if "date-time" not in checker.checkers:
        @checker.checks("date-time", raises=ValueError)
        def _dt(v):
            return not isinstance(v, str) or bool(datetime.fromisoformat(v.replace("Z", "+00:00")))

    specs = {}
    for f in sorted(SPEC_DIR.glob("*.json")):
        specs[f.stem] = widen_nulls(json.loads(f.read_text())["components"])

    def validate(name, spec, schema_name, instance):
        comps = specs[spec]
        if schema_name not in comps.get("schemas", {}):
            record(f"{name} [{spec}#{schema_name}]", False, "schema missing from spec")
            return
        schema = {"$ref": f"#/components/schemas/{schema_name}", "components": comps}
        errs = sorted(jsonschema.Draft4Validator(schema, format_checker=checker).iter_errors(instance), key=str)
        record(f"{name} [{spec}#{schema_name}]", not errs, "; ".join(f"{list(e.path)}: {e.message}" for e in errs[:3]))

    def expect(name, cond, detail=""):
        record(name, bool(cond), detail)

    objects = [("contacts", "contacts", "contacts"), ("deals", "0-3", "deals"), ("calls", "calls", "calls")]
    for version, obj_prefix, owner_path, prop_prefix in [
        ("v3", "/crm/v3/objects", "/crm/v3/owners", "/crm/v3/properties"),
        ("2026-03", "/crm/objects/2026-03", "/crm/owners/2026-03", "/crm/properties/2026-03"),
    ]:
        for spec_obj, path_type, name in objects:
            spec = f"{spec_obj}.{version}"
            generic = f"crm-objects.{version}"
            base = f"{obj_prefix}/{path_type}"
            s, h, b = http("GET", f"{base}?limit=5")
            expect(f"{version} list {name} status", s == 200, s)
            for sp in (spec, generic):
                validate(f"{version} list {name}", sp, "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging", b)
            s, _, arch = http("GET", f"{base}?limit=5&archived=true&properties=hs_object_id")
            validate(f"{version} list archived {name}", spec, "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging", arch)
            expect(f"{version} list archived {name} only archived", arch["results"] and all(r["archived"] and "archivedAt" in r for r in arch["results"]))
            one = b["results"][0]["id"]
            s, _, r = http("GET", f"{base}/{one}?properties=hubspot_owner_id,hs_lastmodifieddate")
            validate(f"{version} read {name}", spec, "SimplePublicObjectWithAssociations", r)
            ids = [x["id"] for x in b["results"]]
            s, _, r = http("POST", f"{base}/batch/read", {"properties": ["hs_object_id"], "propertiesWithHistory": [], "inputs": [{"id": i} for i in ids]})
            expect(f"{version} batch read {name} 200", s == 200, s)
            validate(f"{version} batch read {name} 200", spec, "BatchResponseSimplePublicObject", r)
            s, _, r = http("POST", f"{base}/batch/read", {"properties": [], "propertiesWithHistory": ["hs_lastmodifieddate"], "inputs": [{"id": ids[0]}, {"id": "424242424242"}]})
            expect(f"{version} batch read {name} 207", s == 207, s)
            validate(f"{version} batch read {name} 207", spec, "BatchResponseSimplePublicObjectWithErrors", r)
            for e in r.get("errors", []):
                validate(f"{version} batch read {name} 207 error item", spec, "StandardError", e)
            lastmod = "lastmodifieddate" if name == "contacts" else "hs_lastmodifieddate"
            s, h, r = search(f"{base}/search", {
                "filterGroups": [{"filters": [{"propertyName": lastmod, "operator": "GTE", "value": "0"}]}],
                "sorts": [{"propertyName": lastmod, "direction": "ASCENDING"}], "properties": [lastmod], "limit": 3, "after": "0"})
            expect(f"{version} search {name} status", s == 200, f"{s} {r}")
            validate(f"{version} search {name}", spec, "CollectionResponseWithTotalSimplePublicObject", r)
            expect(f"{version} search {name} has no rate-limit headers", not any(k.lower().startswith("x-hubspot-ratelimit") for k in h))
            s, _, r = http("GET", f"{prop_prefix}/{path_type}")
            expect(f"{version} properties {name}", s == 200 and all({"name", "label", "type", "fieldType", "groupName", "options"} <= set(p) for p in r["results"]))
        owners_spec = f"owners.{version}"
        s, _, r = http("GET", f"{owner_path}?limit=5")
        validate(f"{version} owners list", owners_spec, "CollectionResponsePublicOwnerForwardPaging", r)
        s, _, a = http("GET", f"{owner_path}?archived=true")
        validate(f"{version} owners archived", owners_spec, "CollectionResponsePublicOwnerForwardPaging", a)
        s, _, o = http("GET", f"{owner_path}/{r['results'][0]['id']}")
        validate(f"{version} owner", owners_spec, "PublicOwner", o)

    # Associations: the v4 batch read and its dated form, 200 (paged per input) and 207.
    s, _, b = http("GET", "/crm/v3/objects/contacts?limit=20")
    contact_ids = [x["id"] for x in b["results"]]
    for spec, prefix in [("associations.v4", "/crm/v4/associations"), ("associations.2026-03", "/crm/associations/2026-03")]:
        for frm, to in [("contacts", "deals"), ("0-1", "0-48"), ("contacts", "companies"), ("0-48", "0-1"), ("deals", "contacts")]:
            ids = contact_ids if frm in ("contacts", "0-1") else None
            if ids is None:
                kind = "calls" if frm == "0-48" else frm
                s, _, b = http("GET", f"/crm/v3/objects/{kind}?limit=20")
                ids = [x["id"] for x in b["results"]]
            s, _, r = http("POST", f"{prefix}/{frm}/{to}/batch/read", {"inputs": [{"id": i} for i in ids]})
            expect(f"{spec} batch read {frm}->{to} 200", s == 200, f"{s} {r}")
            validate(f"{spec} batch read {frm}->{to} 200", spec, "BatchResponsePublicAssociationMultiWithLabel", r)
            expect(f"{spec} batch read {frm}->{to} has edges", any(x["to"] for x in r.get("results", [])), r)
            paged = [x for x in r.get("results", []) if "paging" in x]
            if paged:
                x = paged[0]
                s, _, r2 = http("POST", f"{prefix}/{frm}/{to}/batch/read", {"inputs": [{"id": x["from"]["id"], "after": x["paging"]["next"]["after"]}]})
                validate(f"{spec} batch read {frm}->{to} next page", spec, "BatchResponsePublicAssociationMultiWithLabel", r2)
        s, _, r = http("POST", f"{prefix}/contacts/deals/batch/read", {"inputs": [{"id": contact_ids[0]}, {"id": "424242424242"}]})
        expect(f"{spec} batch read 207", s == 207, s)
        validate(f"{spec} batch read 207", spec, "BatchResponsePublicAssociationMultiWithLabelWithErrors", r)
        for e in r.get("errors", []):
            validate(f"{spec} batch read 207 error item", spec, "StandardError", e)
        s, _, r = http("POST", f"{prefix}/contacts/deals/batch/read", {"inputs": [{"id": str(i)} for i in range(101)]})
        expect(f"{spec} batch read >100 status", s == 400, s)
        validate(f"{spec} batch read >100 body", spec, "Error", r)

    # Error bodies, validated against the Error schema of every object spec.
    errors = {}
    errors["401"] = http("GET", "/crm/v3/objects/contacts", token=None)
    errors["404"] = http("GET", "/crm/v3/objects/contacts/999999999999")
    errors["400 batch >100"] = http("POST", "/crm/v3/objects/contacts/batch/read", {"properties": [], "propertiesWithHistory": [], "inputs": [{"id": str(i)} for i in range(101)]})
    errors["400 search 10,000 cap"] = search("/crm/v3/objects/contacts/search", {"limit": 200, "after": "9900"})
    errors["414"] = http("GET", "/crm/v3/objects/contacts?properties=" + "x" * 9000)
    time.sleep(1.1)
    burst = [http("POST", "/crm/v3/objects/deals/search", {"limit": 1}) for _ in range(8)]
    errors["429 secondly (search)"] = next((x for x in burst if x[0] == 429), (None, {}, None))
    http("POST", "/_sim/faults", {"fail_next": 1, "status": 429, "retry_after": 1}, token=None)
    errors["429 ten_secondly (injected)"] = http("GET", "/crm/v3/objects/contacts")
    http("DELETE", "/_sim/faults", token=None)
    for name, (s, h, b) in errors.items():
        expect(f"{name} status", s == int(name[:3]), s)
        for sp in ("contacts.v3", "crm-objects.2026-03", "owners.v3"):
            validate(f"{name} body", sp, "Error", b)
    expect("401 X-HubSpot-Auth-Failure header", any(k.lower() == "x-hubspot-auth-failure" for k in errors["401"][1]))
    expect("429 ten_secondly policyName", errors["429 ten_secondly (injected)"][2].get("policyName") == "TEN_SECONDLY_ROLLING")
    expect("429 secondly policyName", (errors["429 secondly (search)"][2] or {}).get("policyName") == "SECONDLY")

    official_client()

    failed = [r for r in results if not r[1]]
    print(f"\nfidelity: {len(results) - len(failed)}/{len(results)} checks passed against {SPEC_DIR.resolve()}")
    for name, _, detail in failed:
        print(f"  FAILED {name}: {detail}")
    return 1 if failed else 0


def official_client():
    """Call the sim through HubSpot's own Python client: every response must deserialize."""
    try:
        import hubspot
        from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, PublicObjectSearchRequest, SimplePublicObjectId
        from hubspot.crm.contacts.exceptions import ApiException
    except ImportError as e:
        record("official client import", False, str(e))
        return
    client = hubspot.Client.create(access_token=TOKEN, host=SIM)

    def attempt(name, fn, check=lambda r: True):
        for _ in range(5):
            try:
                r = fn()
                record(f"hubspot-api-client {name}", check(r), repr(r)[:200])
                return r
            except ApiException as e:
                if e.status == 429:  # search is limited to 5/s: wait and retry, as clients must
                    time.sleep(1.1)
                    continue
                record(f"hubspot-api-client {name}", False, f"{e.status} {e.body}")
                return None
            except Exception as e:  # noqa: BLE001 - any parse error is a fidelity failure
                record(f"hubspot-api-client {name}", False, f"{type(e).__name__}: {e}")
                return None

    page = attempt("contacts.basic_api.get_page", lambda: client.crm.contacts.basic_api.get_page(limit=10, properties=["email", "phone", "hubspot_owner_id"]),
                   lambda r: len(r.results) == 10 and r.paging.next.after)
    attempt("contacts.basic_api.get_page archived", lambda: client.crm.contacts.basic_api.get_page(limit=5, archived=True), lambda r: all(x.archived for x in r.results))
    if page:
        ids = [r.id for r in page.results]
        attempt("contacts.basic_api.get_by_id", lambda: client.crm.contacts.basic_api.get_by_id(ids[0], properties=["email"]), lambda r: r.id == ids[0])
        attempt("contacts.batch_api.read 200", lambda: client.crm.contacts.batch_api.read(
            batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(properties=["email"], properties_with_history=[], inputs=[SimplePublicObjectId(id=i) for i in ids])),
            lambda r: r.status == "COMPLETE" and len(r.results) == 10)
        attempt("contacts.batch_api.read 207", lambda: client.crm.contacts.batch_api.read(
            batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(properties=["email"], properties_with_history=["email"], inputs=[SimplePublicObjectId(id=ids[0]), SimplePublicObjectId(id="31337000")])),
            lambda r: r.num_errors == 1 and r.errors[0].category == "OBJECT_NOT_FOUND")
    for obj in ("contacts", "deals"):
        api = getattr(client.crm, obj)
        attempt(f"{obj}.search_api.do_search", lambda api=api: api.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "0"}]}], sorts=["hs_object_id"], properties=[], limit=100, after="0")),
            lambda r: r.total > 0 and len(r.results) > 0)
    attempt("deals.basic_api.get_page", lambda: client.crm.deals.basic_api.get_page(limit=100, properties=["amount", "dealstage", "hs_is_closed_won"]), lambda r: len(r.results) == 100)
    attempt("objects.calls.basic_api.get_page", lambda: client.crm.objects.calls.basic_api.get_page(limit=20, properties=["hs_call_duration", "hs_call_disposition"]), lambda r: len(r.results) == 20)
    attempt("owners.owners_api.get_page", lambda: client.crm.owners.owners_api.get_page(limit=50), lambda r: len(r.results) > 0)
    attempt("owners.owners_api.get_page archived", lambda: client.crm.owners.owners_api.get_page(archived=True), lambda r: all(o.user_id is None for o in r.results))
    attempt("properties.core_api.get_all", lambda: client.crm.properties.core_api.get_all(object_type="contacts"), lambda r: any(p.name == "email" for p in r.results))
    bad = hubspot.Client.create(access_token="", host=SIM)
    try:
        bad.crm.contacts.basic_api.get_page(limit=1)
        record("hubspot-api-client 401 raises", False, "no exception")
    except ApiException as e:
        body = json.loads(e.body)
        record("hubspot-api-client 401 raises", e.status == 401 and body["category"] == "INVALID_AUTHENTICATION", e.body)
    except Exception as e:  # noqa: BLE001
        record("hubspot-api-client 401 raises", False, repr(e))


if __name__ == "__main__":
    sys.exit(main())
