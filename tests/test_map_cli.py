"""``qperf-viewer map``: arrays in, MBF map out (like the published mapping tool)."""

from __future__ import annotations

import numpy as np
import pytest

from qperf_viewer.cli import main
from qperf_viewer.phantom import kinetics as K

FINE = np.arange(-5.0, 80.0, 0.02)


@pytest.fixture()
def arrays(tmp_path):
    dt = 0.8
    times = np.arange(50) * dt
    aif_fine = K.aif_curve(FINE, arrival_s=7.0, peak_gd_mmol_l=5.0)
    aif = np.interp(times, FINE, aif_fine)
    mbf = np.linspace(0.6, 3.2, 12).reshape(3, 4)
    tissue = K.tissue_curves(times, FINE, aif_fine, mbf.reshape(-1), 1.3, 0.1, 0.22)
    tissue = tissue.reshape(3, 4, -1)  # (..., T), time last
    np.save(tmp_path / "aif.npy", aif)
    np.save(tmp_path / "tissue.npy", tissue)
    np.save(tmp_path / "times.npy", times)
    return tmp_path, dt, mbf


def test_map_npy_with_dt(arrays, capsys):
    d, dt, mbf = arrays
    out = d / "mbf.npy"
    rc = main(["map", "--aif", str(d / "aif.npy"), "--tissue", str(d / "tissue.npy"),
               "--dt", str(dt), "-o", str(out)])  # fmt: skip
    assert rc == 0
    got = np.load(out)
    assert got.shape == (3, 4) and got.dtype == np.float32
    assert np.all(np.abs(got / mbf - 1) < 0.15)
    assert "reliable" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["fermi", "btex"])
def test_map_npz_with_times_and_all_maps(arrays, model):
    d, _, mbf = arrays
    out = d / f"maps_{model}.npz"
    rc = main(["map", "--aif", str(d / "aif.npy"), "--tissue", str(d / "tissue.npy"),
               "--times-s", str(d / "times.npy"), "--model", model, "--hematocrit", "0.45",
               "-o", str(out)])  # fmt: skip
    assert rc == 0
    z = np.load(out)
    for key in ("mbf_ml_min_g", "delay_s", "r2", "residual_rms", "reliable", "status"):
        assert z[key].shape == (3, 4), key
    assert "flags" in z.files
    assert str(z["model"]) == model and float(z["hematocrit"]) == pytest.approx(0.45)
    assert z["reliable"].all()
    if model == "btex":
        assert {"ps_ml_min_g", "vb", "ve"} <= set(z.files)
    assert np.all(np.abs(z["mbf_ml_min_g"] / mbf - 1) < 0.15)


def test_map_rejects_bad_input(arrays, capsys):
    d, _, _ = arrays
    base = ["map", "--aif", str(d / "aif.npy"), "--tissue", str(d / "tissue.npy")]
    out = ["-o", str(d / "x.npy")]
    assert main([*base, "--dt", "6", *out]) == 2
    assert "above 5.0 s" in capsys.readouterr().err
    assert main([*base, "--dt", "-1", *out]) == 2
    np.save(d / "wrong.npy", np.zeros((50, 3, 4)))  # time first: wrong
    assert main(["map", "--aif", str(d / "aif.npy"), "--tissue", str(d / "wrong.npy"),
                 "--dt", "0.5", *out]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "time on its last axis" in err and "moveaxis" in err
    np.save(d / "aif2d.npy", np.zeros((2, 50)))
    assert main(["map", "--aif", str(d / "aif2d.npy"), "--tissue", str(d / "tissue.npy"),
                 "--dt", "0.5", *out]) == 2  # fmt: skip
    assert main([*base, "--dt", "0.5", "-o", str(d / "x.txt")]) == 2
    assert main(["map", "--aif", str(d / "missing.npy"), "--tissue", str(d / "tissue.npy"),
                 "--dt", "0.5", *out]) == 2  # fmt: skip
    np.save(d / "times_ms.npy", np.arange(50) * 800.0)
    assert main([*base, "--times-s", str(d / "times_ms.npy"), *out]) == 2
    assert main([*base, "--dt", "0.5", "--hematocrit", "1.5", *out]) == 2
    with pytest.raises(SystemExit):  # argparse: exactly one of --dt / --times-s
        main([*base, *out])


def test_map_on_garbage_values_still_writes_finite_map(arrays):
    d, dt, _ = arrays
    junk = np.full((2, 50), np.nan)
    np.save(d / "junk.npy", junk)
    out = d / "junk_mbf.npy"
    rc = main(["map", "--aif", str(d / "aif.npy"), "--tissue", str(d / "junk.npy"),
               "--dt", str(dt), "-o", str(out)])  # fmt: skip
    assert rc == 1  # finished, but nothing reliable
    got = np.load(out)
    assert got.shape == (2,) and np.all(np.isfinite(got)) and np.all(got == 0)
