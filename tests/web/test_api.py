"""The REST API v1 (docs/api.md) on a real SoftHSM2 token and SQLite (PostgreSQL too for idempotency): problem
documents for 401/403/404/422, tenant isolation, idempotency, an ordered service whose operation progresses
when its job runs against an in-process card, responses checked against the OpenAPI document's schemas."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from tsm_core.apikeys import service as apikeys
from tsm_core.jobs import engine
from tsm_core.transport.local import LocalTransport

PROBLEM = "application/problem+json"
BATCH = {"vendor": "acme",
         "profiles": {"acme-p1": {"scp": "03", "i": "70", "diversification": "none", "isd_aid": "A000000151000000"}},
         "secure_elements": [{"kdd": "00112233445566778899", "profile": "acme-p1", "isd_key": ["vendor-isd"],
                              "cin": "0102030405060708",
                              "cplc": "47905040" + "00" * 8 + "A0B1C2D3" + "00" * 26}]}


def spec(world):
    return world.client.get("/api/openapi.json").get_json()


def check_schema(world, response, path: str, method: str) -> None:
    """The response matches what the OpenAPI document says for its status."""
    document = spec(world)
    declared = document["paths"][path][method]["responses"][str(response.status_code)]
    media, content = next(iter(declared["content"].items()))
    assert response.mimetype == media
    schema = {**content["schema"], "components": document["components"]}
    Draft202012Validator(schema).validate(response.get_json())


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["code"] == code and body["status"] == status and body["type"].endswith(code)
    assert body["category"] in ("SYSTEM", "SE", "APP", "SD", "APDU", "USER", "SECURITY")
    assert isinstance(body["retryable"], bool)
    return body


def test_the_openapi_document_is_3_1_and_every_error_is_a_problem(world):
    document = spec(world)
    assert document["openapi"] == "3.1.0"
    assert "/api/v1/secure-elements" in document["paths"] and "/api/v1/operations/{operation_id}" in document["paths"]
    for operations in document["paths"].values():
        for operation in operations.values():
            assert operation["security"] == [{"ApiKey": []}]
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM]
    page = world.client.get("/api/docs")
    assert page.status_code == 200 and b"/api/v1/services" in page.data and b"<script" not in page.data


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer tsm_000000000000_" + "A" * 43])
def test_no_valid_key_is_401(world, header):
    headers = {"Authorization": header} if header else {}
    body = problem(world.client.get("/api/v1/apps", headers=headers), 401, "unauthenticated")
    assert body["category"] == "SECURITY" and body["retryable"] is False


def test_a_revoked_key_is_401_and_a_wrong_secret_too(world):
    key_id = world.keys["sp"].split("_")[1]
    wrong = world.keys["sp"][:-4] + ("AAAA" if not world.keys["sp"].endswith("AAAA") else "BBBB")
    problem(world.client.get("/api/v1/apps", headers={"Authorization": f"Bearer {wrong}"}), 401, "unauthenticated")
    apikeys.revoke(world.lab.tsm, key_id)
    problem(world.client.get("/api/v1/apps", headers=world.headers("sp")), 401, "unauthenticated")


def test_security_headers_and_metrics(world):
    response = world.client.get("/api/v1/apps", headers=world.headers("sp"))
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    metrics = world.client.get("/metrics").get_data(as_text=True)
    assert 'tsm_http_requests_total{method="GET",route="/api/v1/apps",status="200"} 1.0' in metrics
    assert world.keys["sp"] not in metrics


def test_a_vendor_registers_its_batch_and_sees_only_its_ses(world):
    created = world.client.post("/api/v1/secure-elements", json=BATCH, headers=world.headers("vendor"))
    assert created.status_code == 201, created.get_json()
    check_schema(world, created, "/api/v1/secure-elements", "post")
    (se_id,) = created.get_json()["ids"]
    listed = world.client.get("/api/v1/secure-elements", headers=world.headers("vendor"))
    check_schema(world, listed, "/api/v1/secure-elements", "get")
    assert [s["id"] for s in listed.get_json()["items"]] == [se_id]
    by_cin = world.client.get("/api/v1/secure-elements?cin=0102030405060708", headers=world.headers("vendor"))
    assert [s["id"] for s in by_cin.get_json()["items"]] == [se_id]
    for query, found in (("cplc_field=ic_serial_number&cplc_value=a0b1c2d3", [se_id]),
                         ("cplc_field=ic_fabricator&cplc_value=4790", [se_id]),
                         ("cplc_field=ic_fabricator&cplc_value=4791", [])):
        by_cplc = world.client.get(f"/api/v1/secure-elements?{query}", headers=world.headers("vendor"))
        assert [s["id"] for s in by_cplc.get_json()["items"]] == found, query
    problem(world.client.get("/api/v1/secure-elements?cplc_field=ic_fabricator&cplc_value=A0B1C2D3",
                             headers=world.headers("vendor")), 400, "invalid_request")  # 2 bytes, not 4
    shown = world.client.get(f"/api/v1/secure-elements/{se_id}", headers=world.headers("vendor"))
    check_schema(world, shown, "/api/v1/secure-elements/{se_id}", "get")
    problem(world.client.get(f"/api/v1/secure-elements/{world.se_id}", headers=world.headers("vendor")), 404,
            "not_found")
    other = dict(BATCH, vendor="someone-else")
    problem(world.client.post("/api/v1/secure-elements", json=other, headers=world.headers("vendor")), 400,
            "invalid_request")
    problem(world.client.post("/api/v1/secure-elements", json=BATCH, headers=world.headers("sp")), 403,
            "scope_missing")


def test_validation_errors_are_422_problems_naming_the_field(world):
    body = problem(world.client.post("/api/v1/services", json={"se_id": world.se_id},
                                     headers=world.headers("sp")), 422, "validation_failed")
    assert "app_id" in str(body["errors"])
    problem(world.client.get("/api/v1/apps?limit=0", headers=world.headers("sp")), 422, "validation_failed")
    problem(world.client.get("/api/v1/apps?cursor=%%%", headers=world.headers("sp")), 400, "invalid_request")
    for query in ("cin=0A0Bzz", "se_id=se-1%20junk", "cin=0A0B%0A"):  # a pattern matches the whole value
        problem(world.client.get(f"/api/v1/secure-elements?{query}", headers=world.headers("vendor")), 422,
                "validation_failed")


def order(world, who: str = "sp", **headers: str):
    return world.client.post("/api/v1/services", json={"se_id": world.se_id, "app_id": world.app_id},
                             headers=world.headers(who, **headers))


def test_an_ordered_service_is_202_and_its_operation_progresses_when_the_job_runs(world):
    ordered = order(world)
    assert ordered.status_code == 202, ordered.get_json()
    check_schema(world, ordered, "/api/v1/services", "post")
    body = ordered.get_json()
    operation = body["operation"]
    assert operation["state"] == "PENDING" and operation["progress"] == 0
    assert ordered.headers["Location"] == f"/api/v1/operations/{operation['id']}"
    service = world.client.get(f"/api/v1/services/{body['service_id']}", headers=world.headers("sp"))
    check_schema(world, service, "/api/v1/services/{service_id}", "get")
    assert service.get_json()["state"] == "ordered"
    with LocalTransport(world.card) as transport:
        assert engine.run(world.lab.tsm, operation["id"], transport).state == "done"
    for who in ("sp", "device"):
        done = world.client.get(ordered.headers["Location"], headers=world.headers(who))
        check_schema(world, done, "/api/v1/operations/{operation_id}", "get")
        assert done.get_json()["state"] == "SUCCEEDED" and done.get_json()["progress"] == 100
    shown = world.client.get(f"/api/v1/services/{body['service_id']}", headers=world.headers("device"))
    assert shown.get_json()["state"] == "active"
    jobs = world.client.get("/api/v1/jobs", headers=world.headers("sp"))
    check_schema(world, jobs, "/api/v1/jobs", "get")
    assert operation["id"] in [j["id"] for j in jobs.get_json()["items"]]
    lock = world.client.post(f"/api/v1/services/{body['service_id']}/actions", json={"action": "lock"},
                             headers=world.headers("device"))
    assert lock.status_code == 202, lock.get_json()
    check_schema(world, lock, "/api/v1/services/{service_id}/actions", "post")
    assert lock.get_json()["service"]["state"] == "locked_lost"
    assert lock.get_json()["operation"]["state"] == "WAITING_DEVICE"
    again = world.client.post(f"/api/v1/services/{body['service_id']}/actions", json={"action": "unlock"},
                              headers=world.headers("sp"))
    assert again.get_json()["service"]["state"] == "active" and again.get_json()["operation"] is None


def test_another_sp_sees_nothing_of_an_sps_service(world):
    body = order(world).get_json()
    service_id, job_id = body["service_id"], body["operation"]["id"]
    problem(world.client.get(f"/api/v1/services/{service_id}", headers=world.headers("other")), 404, "not_found")
    problem(world.client.get(f"/api/v1/operations/{job_id}", headers=world.headers("other")), 404, "not_found")
    problem(world.client.post(f"/api/v1/services/{service_id}/actions", json={"action": "lock"},
                              headers=world.headers("other")), 404, "not_found")
    assert world.client.get("/api/v1/services", headers=world.headers("other")).get_json()["items"] == []
    assert world.client.get("/api/v1/jobs", headers=world.headers("other")).get_json()["items"] == []
    assert world.client.get("/api/v1/apps", headers=world.headers("other")).get_json()["items"] == []
    problem(order(world, "other"), 404, "not_found")  # another SP's app is not there for it


def test_a_device_sees_only_its_own_se(world):
    created = world.client.post("/api/v1/secure-elements", json=BATCH, headers=world.headers("vendor"))
    (other_se,) = created.get_json()["ids"]
    listed = world.client.get("/api/v1/secure-elements", headers=world.headers("device")).get_json()
    assert [s["id"] for s in listed["items"]] == [world.se_id]
    problem(world.client.get(f"/api/v1/secure-elements/{other_se}", headers=world.headers("device")), 404,
            "not_found")
    apps = world.client.get("/api/v1/apps", headers=world.headers("device")).get_json()["items"]
    assert [a["id"] for a in apps] == [world.app_id]
    refused = world.client.post("/api/v1/services", json={"se_id": other_se, "app_id": world.app_id},
                                headers=world.headers("device"))
    problem(refused, 404, "not_found")


def test_pagination_follows_next_links(world):
    batch = dict(BATCH, secure_elements=[{"kdd": f"{n:020X}", "profile": "acme-p1", "isd_key": ["vendor-isd"]}
                                         for n in range(1, 6)])
    ids = world.client.post("/api/v1/secure-elements", json=batch, headers=world.headers("vendor")).get_json()["ids"]
    seen, url = [], "/api/v1/secure-elements?limit=2"
    while url:
        page = world.client.get(url, headers=world.headers("vendor"))
        assert page.status_code == 200
        seen += [s["id"] for s in page.get_json()["items"]]
        url = page.get_json()["next"]
        assert (url is None) == ("Link" not in page.headers)
    assert seen == sorted(ids)


def test_idempotency_key_replays_the_same_request_and_refuses_another(any_db_world):
    world = any_db_world
    first = order(world, **{"Idempotency-Key": "order-1"})
    assert first.status_code == 202
    second = order(world, **{"Idempotency-Key": "order-1"})
    assert second.status_code == 202 and second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true" and second.headers["Location"] == first.headers["Location"]
    assert len(world.client.get("/api/v1/services", headers=world.headers("sp")).get_json()["items"]) == 1
    other = world.client.post("/api/v1/services", json={"se_id": world.se_id, "app_id": "another"},
                              headers=world.headers("sp", **{"Idempotency-Key": "order-1"}))
    problem(other, 422, "idempotency_key_reused")
    # the key is the credential's: the device's same key is its own, and fails on its own merits (a conflict)
    problem(order(world, "device", **{"Idempotency-Key": "order-1"}), 409, "conflict")
    problem(order(world, **{"Idempotency-Key": "order-2"}), 409, "conflict")  # a failure is not stored
