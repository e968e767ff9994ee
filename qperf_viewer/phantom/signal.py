"""MR signal of the phantom: tissue properties, saturation recovery, coil sensitivity,
k-space resolution and Rician noise.

Signal contract (docs/CONVENTIONS.md): proton-density frames ``S_pd = M0 * C(x, y)``;
saturation-recovery frames ``S = M0 * C * (1 - exp(-TS * R1))`` with
``R1 = 1/T1_native + r1 * [Gd]``. ``M0`` is the tissue's proton density times a global scale,
``C`` a smooth coil sensitivity. Images are ``(T, Y, X)``.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from qperf_viewer.phantom.anatomy import CLASS_NAMES

#: Native T1 (ms) at 1.5 T and 3 T, and relative proton density, per tissue class.
#: Myocardium and blood follow CONVENTIONS.md; others from the literature (Stanisz et al.,
#: MRM 2005; de Bazelaire et al., Radiology 2004), rounded.
TISSUE = {
    #            T1 1.5T, T1 3T, PD
    "air": (1000.0, 1000.0, 0.0),
    "sc_fat": (260.0, 380.0, 0.9),
    "muscle": (1000.0, 1400.0, 0.72),
    "marrow": (550.0, 650.0, 0.8),
    "cortex": (1000.0, 1200.0, 0.06),
    "lung": (1200.0, 1300.0, 0.12),
    "aorta_blood": (1550.0, 1850.0, 1.0),
    "lung_vessel": (1550.0, 1850.0, 1.0),
    "liver": (580.0, 810.0, 0.78),
    "abdomen": (900.0, 1250.0, 0.7),
    "mediastinum": (900.0, 1200.0, 0.7),
    "atrium": (1550.0, 1850.0, 1.0),
    "lv_blood": (1550.0, 1850.0, 1.0),
    "lv_myo": (1000.0, 1200.0, 0.75),
    "papillary": (1000.0, 1200.0, 0.75),
    "rv_blood": (1550.0, 1850.0, 1.0),
    "rv_wall": (1000.0, 1200.0, 0.75),
    "epi_fat": (260.0, 380.0, 0.9),
}


def native_t1_ms(field_strength_t: float) -> np.ndarray:
    """(n_classes,) native T1 in ms for the field strength (1.5 or 3 T: nearest)."""
    col = 0 if field_strength_t < 2.25 else 1
    return np.array([TISSUE[n][col] for n in CLASS_NAMES])


def proton_density() -> np.ndarray:
    """(n_classes,) relative proton density."""
    return np.array([TISSUE[n][2] for n in CLASS_NAMES])


def saturation_recovery(
    m0: np.ndarray, t1_ms: np.ndarray, gd_mmol_l: np.ndarray, ts_ms: float, r1: float = 4.5
) -> np.ndarray:
    """Ideal saturation-recovery signal ``M0 (1 - exp(-TS (1/T1 + r1 Gd)))`` (broadcasting)."""
    r1_s = 1000.0 / np.asarray(t1_ms) + r1 * np.asarray(gd_mmol_l)
    return np.asarray(m0) * (1.0 - np.exp(-ts_ms / 1000.0 * r1_s))


def coil_sensitivity(
    shape: tuple[int, int], rng: np.random.Generator, centre_rc: tuple[float, float]
) -> np.ndarray:
    """Smooth receive sensitivity (Y, X), 1 at ``centre_rc``: root sum of squares of a few
    anterior/posterior coil elements placed around the field of view."""
    ny, nx = shape
    rr, cc = np.mgrid[0:ny, 0:nx].astype(float)
    ang0 = rng.uniform(0, 2 * np.pi)
    n_el = int(rng.integers(4, 9))
    total = np.zeros(shape)
    rad = 0.55 * np.hypot(ny, nx)
    for k in range(n_el):
        a = ang0 + 2 * np.pi * k / n_el + rng.uniform(-0.3, 0.3)
        er = centre_rc[0] + rad * np.sin(a) * rng.uniform(0.7, 1.1)
        ec = centre_rc[1] + rad * np.cos(a) * rng.uniform(0.7, 1.1)
        size = rng.uniform(0.35, 0.6) * rad
        d2 = ((rr - er) ** 2 + (cc - ec) ** 2) / size**2
        total += rng.uniform(0.6, 1.0) / (1.0 + d2) ** 1.5
    sens = np.sqrt(total)
    r0 = int(np.clip(round(centre_rc[0]), 0, ny - 1))
    c0 = int(np.clip(round(centre_rc[1]), 0, nx - 1))
    return (sens / sens[r0, c0]).astype(np.float32)


def gfactor_map(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth noise amplification of parallel imaging (Y, X), 1 .. ~1.6, larger centrally."""
    ny, nx = shape
    rr, cc = np.mgrid[0:ny, 0:nx].astype(float)
    d2 = ((rr - ny / 2) / (0.45 * ny)) ** 2 + ((cc - nx / 2) / (0.45 * nx)) ** 2
    return (1.0 + rng.uniform(0.1, 0.6) * np.exp(-d2)).astype(np.float32)


def kspace_window(
    shape: tuple[int, int], fraction: tuple[float, float], hamming: float
) -> np.ndarray:
    """Acquisition window in k-space (Y, X) (fft order): the acquired fraction of k-space per
    axis (zero beyond: blur and Gibbs ringing, e.g. dark-rim artefacts) and a partial
    Hamming apodisation (0 none .. 1 full)."""
    win = np.ones(shape, dtype=np.float32)
    for axis, (n, f) in enumerate(zip(shape, fraction, strict=True)):
        k = np.abs(np.fft.fftfreq(n))  # 0 .. 0.5
        kmax = 0.5 * f
        w = 1.0 - hamming * 0.46 * (1.0 - np.cos(np.pi * np.clip(k / kmax, 0.0, 1.0)))
        w = np.where(k <= kmax, w, 0.0)
        win *= w[:, None] if axis == 0 else w[None, :]
    return win


def acquire(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    sigma: float,
    gfactor: np.ndarray,
    window: np.ndarray | None,
) -> np.ndarray:
    """Complex Gaussian noise (std ``sigma * gfactor``) on the clean magnitude images
    (T, Y, X), finite k-space sampling (``window``), magnitude: Rician statistics with
    spatially correlated noise, like a reconstructed clinical image."""
    noise = rng.standard_normal(clean.shape, dtype=np.float32) + 1j * rng.standard_normal(
        clean.shape, dtype=np.float32
    )
    z = clean.astype(np.complex64) + noise * (sigma * gfactor)[None]
    if window is not None:
        z = sfft.ifft2(sfft.fft2(z, axes=(-2, -1)) * window[None], axes=(-2, -1))
    return np.abs(z).astype(np.float32)
