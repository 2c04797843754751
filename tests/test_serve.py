"""The web API (`fpga-gan serve`): answers equal the cpu backend's, bad requests get a 4xx that
names the problem, large bodies are refused before they are read, the queue is bounded."""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import sys
import threading

import anyio
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from fpga_gan.serve import ServeConfig, create_app
from fpga_gan.serve.catalogue import Catalogue
from fpga_gan.serve.engine import Busy, Engine

from fpga_gan.serve import running_server


@pytest.fixture(scope="module")
def catalogue(small_dataset):
    return Catalogue(small_dataset)


@pytest.fixture(scope="module")
def client(zoo_artifacts, catalogue):
    config = ServeConfig(backend="cpu", artifacts=zoo_artifacts["tryon"].parent)
    with TestClient(create_app(config, catalogue=catalogue)) as c:
        yield c


def _decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def _data_url(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_health_and_catalogue_list_the_models_and_the_test_split(client, catalogue):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and set(health["models"]) == {"tryon", "editor", "designer"}
    assert all(m["loaded"] and m["backend"] == "cpu" for m in health["models"].values())
    listing = client.get("/api/catalogue").json()
    assert [p["id"] for p in listing["persons"]] == catalogue.persons
    assert "dress" in listing["edit"]["choices"]["kind"]
    image = client.get(listing["garments"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_tryon_answers_the_cpu_backends_codes(client, catalogue, zoo_artifacts):
    from fpga_gan.app import run_tryon
    from fpga_gan.runtime import Accelerator

    person, garment = catalogue.persons[0], catalogue.garments[1]
    answer = client.post("/api/tryon", json={"person": person, "garment": garment}).json()
    with Accelerator.open(zoo_artifacts["tryon"], backend="cpu") as acc:
        expected = run_tryon(acc, catalogue.root, [(person, garment)])[0].result
    assert np.array_equal(_decode(answer["image"]), expected)
    assert answer["backend"] == "cpu" and answer["timings_ms"]["accelerator_ms"] > 0
    room = client.post("/api/fitting-room", json={"person": person, "garment": garment}).json()
    assert np.array_equal(_decode(room["image"]), expected)
    assert len(room["keypoints"]) == 18 and room["pose_source"] == "ground truth"


def test_an_uploaded_garment_is_dressed_with_its_non_white_pixels_as_mask(client, catalogue):
    garment = np.asarray(Image.open(catalogue.image_path("garment", catalogue.garments[2])).convert("RGB"))
    by_upload = client.post("/api/tryon", json={"person": catalogue.persons[0], "garment_upload": _data_url(garment)})
    assert by_upload.status_code == 200
    assert _decode(by_upload.json()["image"]).shape == garment.shape


def test_design_edit_and_sample_answer_the_cpu_backends_codes(client, catalogue, zoo_artifacts):
    from fpga_gan.app import run_designer, run_edits
    from fpga_gan.data.design import sample_designs
    from fpga_gan.runtime import Accelerator

    garment = catalogue.garments[0]
    answer = client.post("/api/design/edit", json={"garment": garment, "edit": {"colour": "#aa3300", "sleeve": "short"}})
    assert answer.status_code == 200, answer.json()
    with Accelerator.open(zoo_artifacts["editor"], backend="cpu") as acc:
        source = catalogue.garment(garment, (64, 64))
        expected = run_edits(acc, source[None], [{"colour": (170, 51, 0), "sleeve": "short"}])[0]
    assert np.array_equal(_decode(answer.json()["image"]), expected)
    assert np.array_equal(_decode(answer.json()["source"]), source)

    samples = client.get("/api/design/sample", params={"n": 3, "seed": 4, "kind": "dress"}).json()
    with Accelerator.open(zoo_artifacts["designer"], backend="cpu") as acc:
        expected = run_designer(acc, sample_designs(3, seed=4, fixed={"kind": "dress"}))
    assert np.array_equal(np.stack([_decode(u) for u in samples["images"]]), expected)


@pytest.mark.parametrize("path, body, status, message", [
    ("/api/tryon", {"person": "../../etc/passwd", "garment": "x"}, 404, "no garment 'x'"),
    ("/api/tryon", {"person": "nobody.png", "garment": None}, 404, "no garment None"),
    ("/api/tryon", {"garment": "x", "person_upload": "data:image/png;base64,AAAA"}, 422, "fitting-room pipeline"),
    ("/api/tryon", {"person": "p"}, 422, "give a garment"),
    ("/api/tryon", {"person": "p", "garment_upload": "data:text/plain;base64,aGVsbG8="}, 422, "not an image"),
    ("/api/tryon", {"person": "p", "garment_upload": "%%%"}, 422, "not valid base64"),
    ("/api/tryon", [1, 2], 400, "JSON object"),
    ("/api/design/edit", {"garment": "x", "edit": {}}, 422, "give 'edit'"),
    ("/api/design/edit", {"garment": "x", "edit": {"sleeve": "wings"}}, 422, "choose one of"),
    ("/api/design/edit", {"garment": "x", "edit": {"shoulder": 3}}, 422, "unknown attribute"),
])
def test_bad_requests_get_a_4xx_that_names_the_problem(client, path, body, status, message):
    answer = client.post(path, json=body)
    assert answer.status_code == status and message in answer.json()["error"]


def test_bad_queries_files_and_paths_are_refused(client, catalogue):
    assert client.post("/api/tryon", content=b"{not json").status_code == 400
    for query, message in (({"n": 0}, "n must be 1 to"), ({"n": "x"}, "integers"), ({"kind": "hat"}, "choose one of")):
        answer = client.get("/api/design/sample", params=query)
        assert answer.status_code == 422 and message in answer.json()["error"]
    huge = Image.new("RGB", (5000, 10), "white")
    buf = io.BytesIO()
    huge.save(buf, format="PNG")
    answer = client.post("/api/design/edit", json={"garment_upload": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
                                                   "edit": {"colour": "#000000"}})
    assert answer.status_code == 422 and "5000x10" in answer.json()["error"]
    for path in ("/api/catalogue/person/..%2F..%2Fetc%2Fpasswd", "/api/catalogue/person/" + catalogue.garments[0] + "x",
                 "/api/catalogue/shoes/a.png", "/static/..%2Fapp.py", "/static/../app.py"):
        answer = client.get(path)
        assert answer.status_code == 404, path


def test_a_bug_is_a_500_with_a_message_not_a_traceback(zoo_artifacts, catalogue, monkeypatch):
    config = ServeConfig(backend="cpu", artifacts=zoo_artifacts["tryon"].parent, open_models=False)
    with TestClient(create_app(config, catalogue=catalogue), raise_server_exceptions=False) as c:
        monkeypatch.setattr(Catalogue, "item", lambda *a, **k: 1 / 0)
        answer = c.post("/api/tryon", json={"person": catalogue.persons[0], "garment": catalogue.garments[0]})
    assert answer.status_code == 500
    assert answer.json()["error"].startswith("internal error (ZeroDivisionError)") and "Traceback" not in answer.text


def test_a_50_mb_upload_is_refused_before_it_is_read(zoo_artifacts, catalogue):
    config = ServeConfig(backend="cpu", artifacts=zoo_artifacts["tryon"].parent, max_body=1 << 20,
                         open_models=False)   # the accelerators open on first use
    with running_server(create_app(config, catalogue=catalogue)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            # Announce 50 MB and send 4 KB of it: the answer must come without the rest.
            s.sendall(b"POST /api/design/edit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 52428800\r\n\r\n" + b"{" * 4096)
            reply = b""
            while b"limit is" not in reply:             # the headers and the body may come apart
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
            reply = reply.decode()
        assert reply.startswith("HTTP/1.1 413") and "limit is 1,048,576" in reply

        import httpx

        def chunks():                                 # no Content-Length: cut off past the limit
            for _ in range(64):
                yield b" " * 65536
        answer = httpx.post(url + "/api/design/edit", content=chunks(), timeout=30)
        assert answer.status_code == 413 and "larger than the limit" in answer.json()["error"]


def test_the_queue_in_front_of_an_accelerator_is_bounded(zoo_artifacts):
    engine = Engine("cpu", zoo_artifacts["tryon"].parent, max_waiting=1)
    release, holding = threading.Event(), threading.Event()
    order: list[str] = []

    def hold(acc):
        holding.set()
        release.wait(10)
        order.append("first")

    async def scenario():
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run, "designer", hold)
            await anyio.to_thread.run_sync(holding.wait)
            tg.start_soon(engine.run, "designer", lambda acc: order.append("second"))
            await anyio.sleep(0.2)
            with pytest.raises(Busy, match="1 requests already wait for the designer"):
                await engine.run("designer", lambda acc: order.append("third"))
            release.set()

    anyio.run(scenario)
    engine.close()
    assert order == ["first", "second"]


def test_serve_refuses_a_port_in_use_and_imports_no_torch(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "fpga_gan.cli", "serve", "--port", str(port), "--backend", "cpu"],
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in run.stderr and "Traceback" not in run.stderr
    check = ("import sys, fpga_gan.serve; heavy = [m for m in sys.modules if m.split('.')[0] in "
             "('torch', 'finn', 'brevitas', 'qonnx', 'onnxruntime')]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", check], check=True, timeout=120)
