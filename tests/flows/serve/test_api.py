"""The HTTP API of ``mnist-flow serve``: every endpoint, every refusal, corrections, hot swap."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import flows.serve.app as app_module
from flows.serve.app import MAX_BODY_BYTES
from tasks.images.classify import load_predictor, predict_files
from tests.flows.serve.conftest import register


def png(image: np.ndarray | Image.Image) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def dark_on_white(digit: np.ndarray, side: int = 280) -> Image.Image:
    """An MNIST digit rendered large, dark ink on white, as a canvas drawing looks."""
    big = Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BILINEAR)
    return big


def predict(client: TestClient, data: bytes, name: str = "digit.png"):
    return client.post("/api/predict", files={"image": (name, data, "image/png")})


@pytest.fixture
def client(served):
    with TestClient(served.app) as client:
        yield client


def test_predict_answers_label_probabilities_and_the_model(client, trained):
    response = predict(client, png(dark_on_white(trained.X_test[0])))
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["label"] == int(np.argmax(body["probabilities"]))
    assert body["class_name"] == str(body["label"])  # MNIST's classes are the digits
    assert body["model"] == {"version": "v0001", "dataset": "mnist", "test_accuracy": 0.95}


def test_api_agrees_with_predict_on_rendered_test_digits(client, trained, tmp_path):
    """Large dark-on-white PNGs of MNIST test digits: the API labels them as `predict` does."""
    files, labels = [], []
    for i in range(60):
        path = tmp_path / f"{i}.png"
        dark_on_white(trained.X_test[i], side=int(80 + 4 * i)).save(path)
        files.append(path)
        labels.append(int(trained.y_test[i]))
    expected = [p.label for p in predict_files(load_predictor(trained.first), files)]
    answered = [predict(client, f.read_bytes()).json()["label"] for f in files]
    assert answered == expected
    assert np.mean(np.array(answered) == np.array(labels)) >= 0.9


def test_model_info_and_health(client):
    info = client.get("/api/model").json()
    assert info["version"] == "v0001"
    assert info["class_names"] == [str(k) for k in range(10)]
    assert info["corrections_waiting"] == 0
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["model"]["version"] == "v0001"


def test_the_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "<canvas" in text and "/api/predict" in text and "/api/corrections/submit" in text
    assert "http://" not in text and "https://" not in text  # no CDN, font or script from outside
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/api/predict", "/api/corrections", "/api/corrections/submit", "/healthz"} <= set(paths)
    answer = paths["/api/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["$ref"].endswith("/Prediction")  # the answer's fields documented
    fields = schema["components"]["schemas"]["Prediction"]["properties"]
    assert set(fields) == {"label", "class_name", "probabilities", "model"}


def _blank() -> bytes:
    return png(np.full((100, 100), 255, np.uint8))


def _huge() -> bytes:
    """A PNG of 8000x6000 = 48 Mpx that compresses to a few kB."""
    return png(Image.new("L", (8000, 6000), 255))


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"not an image at all", 400, "not an image"),
        (b"", 400, "empty"),
        (_blank(), 400, "ink"),
        (_huge, 400, "Mpx limit"),  # drawn in its test, not at every collection
        (b"\x89PNG\r\n\x1a\n" + b"0" * (MAX_BODY_BYTES + 10), 413, "2 MB"),
    ],
    ids=["not-an-image", "empty", "blank", "over-the-pixel-limit", "over-2-MB"],
)
def test_bad_images_are_refused_and_the_server_keeps_answering(
    client, trained, data, status, words
):
    response = predict(client, data() if callable(data) else data)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert "/tmp" not in response.json()["error"]  # the upload's scratch file is not named
    assert predict(client, png(dark_on_white(trained.X_test[1]))).status_code == 200


def test_a_missing_field_is_a_400_naming_it(client):
    response = client.post("/api/predict", data={"picture": "x"})
    assert response.status_code == 400
    assert "image" in response.json()["error"]


def test_a_chunked_body_over_the_limit_is_refused(client):
    def chunks():
        for _ in range(5):
            yield b"x" * (MAX_BODY_BYTES // 4)

    response = client.post(
        "/api/predict", content=chunks(), headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 413


def test_no_champion_is_a_503_with_the_reason(trained, tmp_path):
    from flows.serve.app import create_app
    from flows.serve.model import ChampionSource
    from tasks.data.versions import DataStore
    from tasks.registry.store import Registry

    registry = Registry(tmp_path / "empty-registry")
    source = ChampionSource(registry, "mnist", interval=0.05)  # as `served`: no 1 s wait
    app = create_app(source, dataset="mnist", store=DataStore(tmp_path))
    with TestClient(app) as client:
        response = predict(client, png(dark_on_white(trained.X_test[0])))
        assert response.status_code == 503
        assert "no champion for mnist" in response.json()["error"]
        assert client.get("/healthz").status_code == 503
        assert client.get("/api/model").status_code == 503
        assert client.get("/").status_code == 200  # the page loads and says so
        register(registry, trained.first, 0.9)
        client.app  # noqa: B018 - the same server, no restart
        import time

        deadline = time.monotonic() + 10
        while predict(client, png(dark_on_white(trained.X_test[0]))).status_code != 200:
            assert time.monotonic() < deadline, "the new champion was never served"
            time.sleep(0.1)


def test_a_broken_champion_is_a_503_naming_it(served, trained):
    champion = served.registry.champion("mnist")
    champion.path.write_bytes(champion.path.read_bytes()[:100])  # truncated weights
    served.source.refresh(force=True)
    with TestClient(served.app) as client:
        response = predict(client, png(dark_on_white(trained.X_test[0])))
    assert response.status_code == 503
    assert "v0001" in response.json()["error"] and "cannot be loaded" in response.json()["error"]


def _correct(client, image: bytes, label: str, name: str = "digit.png"):
    return client.post(
        "/api/corrections", files={"image": (name, image, "image/png")}, data={"label": label}
    )


def test_corrections_are_recorded_listed_and_submitted_as_a_data_batch(served, client, trained):
    for k in range(3):
        response = _correct(client, png(dark_on_white(trained.X_test[k])), str(trained.y_test[k]))
        assert response.status_code == 201, response.text
        assert response.json()["waiting"] == k + 1
    listed = client.get("/api/corrections").json()
    assert listed["waiting"] == 3
    assert sorted(c["label"] for c in listed["corrections"]) == sorted(
        int(y) for y in trained.y_test[:3]
    )
    submitted = client.post("/api/corrections/submit")
    assert submitted.status_code == 201, submitted.text
    body = submitted.json()
    assert body["count"] == 3 and body["event"] == "e1"
    versions = served.store.versions("mnist")
    assert [v.id for v in versions] == [body["version"]]
    _, labels = versions[0].load()
    assert sorted(labels.tolist()) == sorted(int(y) for y in trained.y_test[:3])
    assert served.emitted[0][0].id == body["version"]
    assert served.emitted[0][1] == str(served.store.root)
    assert client.get("/api/corrections").json()["waiting"] == 0
    nothing = client.post("/api/corrections/submit")
    assert nothing.status_code == 400 and "no corrections waiting" in nothing.json()["error"]


def test_a_correction_never_uses_the_clients_file_name(served, client, trained):
    response = _correct(client, png(dark_on_white(trained.X_test[0])), "3", name="../../evil.png")
    assert response.status_code == 201
    files = [p for p in served.store.root.rglob("*") if p.is_file()]
    assert len(files) == 1
    assert files[0].parent.name == "3" and "evil" not in str(files[0])
    assert files[0].is_relative_to(served.store.root)


@pytest.mark.parametrize("label", ["10", "-1", "seven", ""])
def test_a_label_outside_the_classes_is_refused(client, trained, label):
    response = _correct(client, png(dark_on_white(trained.X_test[0])), label)
    assert response.status_code == 400
    assert "label" in response.json()["error"]
    assert client.get("/api/corrections").json()["waiting"] == 0


def test_a_correction_that_is_not_a_digit_image_is_refused(client):
    assert _correct(client, b"GIF89a broken", "1").status_code == 400
    assert _correct(client, _blank(), "1").status_code == 400
    assert client.get("/api/corrections").json()["waiting"] == 0


def test_many_clients_recording_at_once_lose_no_correction(served, client, trained):
    images = [png(dark_on_white(trained.X_test[i])) for i in range(40)]

    def post(i: int) -> int:
        return _correct(client, images[i], str(trained.y_test[i])).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(post, range(40)))
    assert codes == [201] * 40
    assert client.get("/api/corrections").json()["waiting"] == 40
    body = client.post("/api/corrections/submit").json()
    assert body["count"] + len(body["skipped"]) == 40


def test_a_new_champion_is_served_without_a_restart(served, client, trained):
    image = png(dark_on_white(trained.X_test[5]))
    assert predict(client, image).json()["model"]["version"] == "v0001"
    assert register(served.registry, trained.second, 0.99) == "v0002"
    import time

    deadline = time.monotonic() + 10
    while predict(client, image).json()["model"]["version"] != "v0002":
        assert time.monotonic() < deadline, "v0002 was never served"
        time.sleep(0.05)
    second = load_predictor(trained.second)
    expected = predict_files(second, [_save(image, served.store.root.parent / "x.png")])[0]
    assert predict(client, image).json()["label"] == expected.label


def _save(data: bytes, path):
    path.write_bytes(data)
    return path


def test_a_request_in_flight_finishes_on_the_model_it_started_with(
    served, client, trained, monkeypatch
):
    image = png(dark_on_white(trained.X_test[7]))
    started, release = threading.Event(), threading.Event()
    real = app_module.score_images
    first_call = [True]

    def slow_score(predictor, images):
        if first_call[0]:
            first_call[0] = False
            started.set()
            assert release.wait(20)
        return real(predictor, images)

    monkeypatch.setattr(app_module, "score_images", slow_score)
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(predict, client, image)
        assert started.wait(20)
        register(served.registry, trained.second, 0.99)
        served.source.refresh(force=True)
        assert predict(client, image).json()["model"]["version"] == "v0002"
        release.set()
        answer = in_flight.result(timeout=30).json()
    assert answer["model"]["version"] == "v0001"
    first = predict_files(
        load_predictor(trained.first), [_save(image, served.store.root.parent / "y.png")]
    )
    assert answer["label"] == first[0].label
