"""The device answers as the server would: the same token ids, the same model (ONNX exported from the eager model,
equal to the served TorchScript in fp32, within the quantization bound in int8), calibrated on validation only."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from bench.reviews import load_reviews
from edge.device import BUNDLE_FILES, DeviceModel
from edge.device import pad as device_pad
from handler.codec import Instance, decode
from model import calibration
from model.ece import expected_calibration_error
from model.export import load_eager
from model.infer import load_scorer
from model.onnx_export import DeviceNet, logit_error_bound
from model.onnx_export import pad as build_pad
from model.platt import CALIBRATION_FILE, Calibration
from model.text import pack, token_ids
from serving.build.bundle import ARTIFACTS, evaluation_splits
from tests.catalogue import CASES, LIMITS
from tests.conftest import EDGE_BUNDLE

REVIEWS = 3000  # real IMDB reviews (unsup split), every length up to far beyond max_tokens


@pytest.fixture(scope="module")
def device(edge_bundle):
    return DeviceModel(edge_bundle)


@pytest.fixture(scope="module")
def served():
    return load_scorer(ARTIFACTS)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Real reviews, one of them 20 times over, and every valid text of the bad-input catalogue (emoji, scripts,
    control characters, NUL, a review at the character cap)."""
    reviews = load_reviews(REVIEWS)
    valid = [
        item.text
        for case in CASES
        if case.status == 200 and not case.server_only
        for item in decode(case.body, case.content_type, LIMITS).items
        if isinstance(item, Instance)
    ]
    return [reviews[0] * 20, *reviews, *dict.fromkeys(valid)]


@pytest.fixture(scope="module")
def ids(served, texts) -> list[list[int]]:
    return token_ids(served.tokenizer, texts)  # the server's path (model/text.py)


def test_device_token_ids_equal_the_servers(device, texts, ids):
    assert len(texts) > REVIEWS
    assert device.token_ids(texts) == ids


def test_bundle_settings_are_the_served_models(device, served):
    s = device.settings
    assert (s.max_tokens, s.unk_id, s.limits) == (served.max_tokens, served.unk_id, LIMITS)
    assert s.slope > 0 and 0.5 <= s.threshold <= 1.0


def test_padded_fp32_model_equals_the_served_torchscript(served, ids):
    """The device's padded formulation computes what the served ragged one does: the export's only change of
    shape is exact."""
    padded = DeviceNet(load_eager(ARTIFACTS), quantize=False).eval()
    for start in range(0, 512, 128):
        chunk = ids[start : start + 128]
        with torch.no_grad():
            expected = served.model(*pack(chunk))
            actual = padded(*(torch.from_numpy(a) for a in build_pad(chunk)))
        assert (expected - actual).abs().max().item() < 1e-5


def test_onnx_equals_the_eager_int8_model(device, ids):
    quantized = DeviceNet(load_eager(ARTIFACTS), quantize=True).eval()
    chunk = ids[:256]
    with torch.no_grad():
        expected = quantized(*(torch.from_numpy(a) for a in build_pad(chunk))).numpy()
    assert np.abs(device.logits(chunk) - expected).max() < 1e-4


def test_int8_logits_are_within_the_quantization_bound_of_the_torchscript_model(device, served, ids):
    eager = load_eager(ARTIFACTS)
    scale = DeviceNet(eager, quantize=True).scale
    with torch.no_grad():
        expected = torch.cat([served.model(*pack(ids[s : s + 256])) for s in range(0, len(ids), 256)]).numpy()
        bound = logit_error_bound(eager, scale, ids).numpy()
    actual = device.logits(ids)
    assert np.all(np.abs(actual - expected) <= bound + 1e-4)
    assert np.mean((actual >= 0) != (expected >= 0)) < 0.005  # labels flip only next to the boundary


def test_the_two_pad_functions_agree():
    batch = [[5, 6, 7], [], [8]]
    for a, b in zip(device_pad(batch), build_pad(batch), strict=True):
        assert np.array_equal(a, b)
    assert device_pad(batch)[0].tolist() == [[5, 6, 7], [0, 0, 0], [8, 0, 0]]


@pytest.fixture(scope="module")
def validation(device):
    """The validation split as the device sees it (its own tokenizer and ONNX logits), and the bundle's record."""
    val, _ = evaluation_splits()
    how = json.loads((EDGE_BUNDLE / "settings.json").read_text())["how"]
    return val, device.logits(device.token_ids(val.texts)), how


def test_the_device_is_calibrated_by_the_served_models_calibration(device, validation):
    """calibration.json, fitted on the validation split's served logits, calibrates the int8 logits as well."""
    val, logits, how = validation
    fitted = Calibration.load(ARTIFACTS / CALIBRATION_FILE)
    assert (device.settings.slope, device.settings.intercept) == (fitted.slope, fitted.intercept)
    assert fitted.fitted_on == how["calibration"]["reviews"] == len(val.texts) == 6250
    calibrated = calibration.sigmoid(fitted.slope * logits + fitted.intercept)
    assert expected_calibration_error(calibrated, val.labels) == pytest.approx(
        how["calibration"]["ece_after"], abs=1e-4
    )
    assert how["calibration"]["fitted_on"].startswith("IMDB validation split")
    assert how["calibration"]["ece_after"] <= how["calibration"]["ece_before"]


def test_int8_accuracy_is_within_two_tenths_of_a_point_of_fp32(validation):
    val, logits, how = validation
    assert how["quantization"]["accuracy_int8"] == pytest.approx(np.mean((logits >= 0) == val.labels), abs=1e-4)
    assert abs(how["quantization"]["accuracy_fp32"] - how["quantization"]["accuracy_int8"]) <= 0.002


def test_the_bundle_is_at_most_one_megabyte_gzipped(edge_bundle):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        for name in BUNDLE_FILES:
            tar.add(edge_bundle / name, arcname=name)
    assert len(buffer.getvalue()) <= 1_000_000
    assert sorted(p.name for p in edge_bundle.iterdir()) == sorted(BUNDLE_FILES)  # plain files, nothing else


def test_the_bundle_is_built_from_committed_files_and_refuses_a_stale_calibration(tmp_path):
    """`make edge` (and so `make serve`) needs no data: the calibration is committed, with the digests of the model
    files it was fitted to; after a retrain the build refuses until `make calibrate` refits it."""
    from serving.build import bundle

    fitted = json.loads(bundle.CALIBRATION.read_text())
    assert fitted["fitted_to"] == bundle.fitted_to(bundle.ARTIFACTS, bundle.BIGRAM_ARTIFACTS)
    stale = tmp_path / "device.json"
    stale.write_text(json.dumps({**fitted, "fitted_to": {**fitted["fitted_to"], "weights": "0" * 64}}))
    with pytest.raises(ValueError, match="make calibrate"):
        bundle.build(tmp_path / "edge", calibrated=stale)
    assert not (tmp_path / "edge").exists()
