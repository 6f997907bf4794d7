"""GET /imports, GET /imports/{id} and GET /imports/{id}/errors.csv."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

Client = httpx.AsyncClient

HEADER = ["barcode", "name", "price", "quantity", "last_updated", "note"]


def csv_bytes(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def read_csv(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


async def put_file(
    client: Client, headers: dict[str, str], name: str, content: bytes, **params: str
) -> Any:
    return await client.put(
        "/products", files={"file": (name, content)}, params=params, headers=headers
    )


async def test_history_newest_first_and_report(
    client: Client, auth_headers: dict[str, str]
) -> None:
    for i in range(3):
        response = await put_file(
            client, auth_headers, f"f{i}.csv", csv_bytes([[str(i), "n", "1", "1", "", ""]])
        )
        assert response.status_code == 200, response.text
    page = (await client.get("/imports", params={"limit": 2}, headers=auth_headers)).json()
    assert page["total"] == 3
    assert [item["filename"] for item in page["items"]] == ["f2.csv", "f1.csv"]
    newest = page["items"][0]
    assert newest["status"] == "applied"
    assert (newest["rows"], newest["created"], newest["errors_csv"]) == (1, 1, None)

    report = (await client.get(f"/imports/{newest['id']}", headers=auth_headers)).json()
    assert report["warnings"] == ["unknown column ignored: note"]
    assert report["errors"] == []

    missing = await client.get("/imports/999999", headers=auth_headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/imports/999999/errors.csv", headers=auth_headers)).status_code == 404


async def test_errors_csv_fix_and_upload_again(
    client: Client, auth_headers: dict[str, str]
) -> None:
    rows = [
        ["0001", "Good, one", "1.50", "2", "2025-07-01T12:00:00", "keep"],
        ["12a", "Bad barcode", "abc", "1", "", "x"],
        ["0003", 'Bad "price"\nsecond line', "-4", "1", "", ""],
        ["0004", "Good two", "2", "3", "", ""],
        ["0001", "Duplicate of row 2", "9", "9", "", "dup"],
        ["0005", "Short row"],
    ]
    rejected = await put_file(client, auth_headers, "upload.csv", csv_bytes(rows))
    assert rejected.status_code == 422, rejected.text
    import_id = rejected.json()["import_id"]

    report = (await client.get(f"/imports/{import_id}", headers=auth_headers)).json()
    assert report["status"] == "rejected"
    assert report["errors_csv"] == f"/imports/{import_id}/errors.csv"

    response = await client.get(f"/imports/{import_id}/errors.csv", headers=auth_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    lines = read_csv(response.content)
    assert lines[0] == [*HEADER, "error"]
    body = lines[1:]
    assert [line[:6] for line in body] == [
        ["12a", "Bad barcode", "abc", "1", "", "x"],
        ["0003", 'Bad "price"\nsecond line', "-4", "1", "", ""],
        ["0001", "Duplicate of row 2", "9", "9", "", ""],
        ["0005", "Short row", "", "", "", ""],
    ]
    errors = [line[6] for line in body]
    assert "barcode" in errors[0]
    assert "price" in errors[0]
    assert "price" in errors[1]
    assert "row 2" in errors[2]
    assert "price" in errors[3]
    assert "quantity" in errors[3]

    # Fix the rows in the error file and upload it: the error column is ignored.
    fixed = [["0002", "Bad barcode", "3", "1", ""], ["0003", "Fixed price", "4", "1", ""]]
    retry = await put_file(
        client, auth_headers, "fixed.csv", csv_bytes(fixed, [*HEADER[:5], "error"])
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["created"] == 2
    assert retry.json()["warnings"] == []  # the error column is expected, not unknown


async def test_errors_csv_of_an_xlsx_upload(client: Client, auth_headers: dict[str, str]) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet: Any = workbook.active
    sheet.append(["name", "barcode", "price", "quantity"])
    sheet.append(["ok", "0011", 1.5, 2])
    sheet.append(["bad", "1e12", 1.5, 2])
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = await put_file(client, auth_headers, "book.xlsx", buffer.getvalue(), on_error="skip")
    assert response.status_code == 200, response.text
    import_id = response.json()["import_id"]
    lines = read_csv(
        (await client.get(f"/imports/{import_id}/errors.csv", headers=auth_headers)).content
    )
    assert lines[0] == ["name", "barcode", "price", "quantity", "error"]
    assert lines[1][:4] == ["bad", "1e12", "1.5", "2"]
    assert "barcode" in lines[1][4]
