"""Anatomy of the synthetic exams: a 3D thorax in patient coordinates (LPS, mm), cut by
oblique short-axis planes and rendered with partial-volume edges.

The heart lives in its own frame: origin ``O`` (LV centre in the basal plane), unit axes
``e1`` (towards the septum / RV), ``e2 = axis x e1`` and ``axis`` (base -> apex), so heart
angles ``phi = atan2(y, x)`` are right-handed about the base-to-apex axis with 0 on the
septum. The RV insertion points sit at ``phi_ant < 0 < phi_inf``; rotating right-handed from
the anterior insertion crosses the septum to the inferior one (the AHA convention).

The body (chest wall, subcutaneous fat, spine, descending aorta, lungs, liver below the
diaphragm) is defined by cylinders along the patient's superior axis, so oblique cuts give
natural elliptic cross-sections. Rendering supersamples each pixel (2x2 over the field of
view, 4x4 around the heart) and averages class indicators into fraction maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qperf_viewer.geometry import SliceGeometry

#: Tissue classes. Static ones (first) do not move with respiration; moving ones (heart,
#: liver, upper abdomen, mediastinal tissue) do.
CLASS_NAMES = (
    "air",
    "sc_fat",
    "muscle",
    "marrow",
    "cortex",
    "lung",
    "aorta_blood",
    "lung_vessel",
    "liver",
    "abdomen",
    "mediastinum",
    "atrium",
    "lv_blood",
    "lv_myo",
    "papillary",
    "rv_blood",
    "rv_wall",
    "epi_fat",
)
C = {name: i for i, name in enumerate(CLASS_NAMES)}
N_STATIC = C["liver"]  # classes [0, N_STATIC) are static
HEART_CLASSES = ("lv_blood", "lv_myo", "papillary", "rv_blood", "rv_wall", "epi_fat")


@dataclass
class HeartModel:
    """Heart geometry (mm, degrees) in patient coordinates."""

    origin: np.ndarray  # (3,) LV centre in the basal plane
    axis: np.ndarray  # (3,) base -> apex unit vector
    e1: np.ndarray  # (3,) towards the septum
    e2: np.ndarray  # (3,) axis x e1
    length_mm: float
    r_endo_mm: float  # endocardial radius at the base (diastole)
    wall_mm: float
    cavity_harm: np.ndarray  # (K, 3): order, relative amplitude, phase (rad)
    wall_harm: np.ndarray  # (K, 3)
    septal_extra: float  # relative extra septal thickness (asymmetric hypertrophy)
    phi_ant_deg: float
    phi_inf_deg: float
    rv_width_mm: float
    rv_wall_mm: float
    rv_skew: float  # > 0: RV wider anteriorly
    papillary: np.ndarray  # (2, 3): AHA-like angle from phi_ant (deg), radius (mm), rel. pos
    trabeculae: np.ndarray  # (M, 3): phi (deg), depth (mm), width (deg)
    fat_harm: np.ndarray  # (K, 3) epicardial fat thickness harmonics (mm)
    fat_groove_mm: float
    atrium_centre: np.ndarray  # (3,) patient mm (left atrium, posterior-superior to the base)
    atrium_radii_mm: np.ndarray  # (3,) along e1, e2, axis

    def to_heart(self, p: np.ndarray, shift_mm: np.ndarray | None = None):
        """Heart-frame coordinates (x, y, z) of patient points ``p`` (..., 3)."""
        d = p - self.origin if shift_mm is None else p - self.origin - shift_mm
        return d @ self.e1, d @ self.e2, d @ self.axis

    def to_patient(self, x, y, z) -> np.ndarray:
        return (
            self.origin
            + np.asarray(x)[..., None] * self.e1
            + np.asarray(y)[..., None] * self.e2
            + np.asarray(z)[..., None] * self.axis
        )


@dataclass
class BodyModel:
    """Torso (LPS mm): elliptic cylinders along z."""

    centre_xy: np.ndarray  # (2,)
    semi_lr_mm: float
    semi_ap_mm: float
    sc_fat_mm: float
    wall_mm: float
    spine_xy: np.ndarray
    spine_r_mm: float
    aorta_xy: np.ndarray
    aorta_r_mm: float
    diaphragm_z_mm: float  # dome height on the right
    diaphragm_slope: float
    liver_left_x_mm: float
    wall_harm: np.ndarray  # (K, 3) relative thickness harmonics of fat and muscle layers
    vessels: np.ndarray  # (V, 4): x, y, z, radius of pulmonary vessel spheres


@dataclass
class Anatomy:
    heart: HeartModel
    body: BodyModel
    texture_seed: int = 0
    extra: dict = field(default_factory=dict)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotate(v: np.ndarray, axis: np.ndarray, ang_rad: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about unit ``axis``."""
    return (
        v * np.cos(ang_rad)
        + np.cross(axis, v) * np.sin(ang_rad)
        + axis * (axis @ v) * (1 - np.cos(ang_rad))
    )


def sample_anatomy(rng: np.random.Generator, *, hypertrophy: bool = False) -> Anatomy:
    """Random but plausible anatomy (sizes of adult hearts and torsos)."""
    u = rng.uniform
    apex = _unit(np.array([1.0, -1.0, -1.0]))
    tilt_axis = _unit(np.cross(apex, rng.normal(size=3)))
    axis = _rotate(apex, tilt_axis, np.radians(u(0, 18)))
    # Septal direction: right and anterior, projected into the short-axis plane.
    sept = np.array([-1.0, -0.6, u(-0.2, 0.3)])
    sept = _unit(sept - (sept @ axis) * axis)
    sept = _rotate(sept, axis, np.radians(u(-12, 12)))
    e2 = np.cross(axis, sept)

    body_c = np.array([u(-10, 10), u(-5, 10)])
    semi_lr, semi_ap = u(170, 210), u(125, 150)
    origin = np.array(
        [body_c[0] + u(10, 30), body_c[1] - semi_ap + u(75, 95), u(-10, 10)], dtype=float
    )
    wall = u(13, 18) if hypertrophy else u(7.5, 10.5)
    span = u(95, 140)
    centre = u(-8, 8)
    heart = HeartModel(
        origin=origin,
        axis=axis,
        e1=sept,
        e2=e2,
        length_mm=u(78, 96),
        r_endo_mm=u(20, 28) * (0.9 if hypertrophy else 1.0),
        wall_mm=wall,
        cavity_harm=np.array([[k, u(0, 0.06) / k, u(0, 2 * np.pi)] for k in (2, 3, 4)]),
        wall_harm=np.array([[k, u(0, 0.12), u(0, 2 * np.pi)] for k in (1, 2, 3)]),
        septal_extra=u(0.15, 0.45) if hypertrophy and rng.random() < 0.5 else u(0, 0.12),
        phi_ant_deg=centre - span / 2,
        phi_inf_deg=centre + span / 2,
        rv_width_mm=u(16, 30),
        rv_wall_mm=u(2.5, 4.0),
        rv_skew=u(-0.3, 0.6),
        papillary=np.array(
            [
                [u(270, 300), u(3.5, 6.0), u(0.45, 0.7)],
                [u(190, 215), u(3.5, 6.5), u(0.45, 0.7)],
            ]
        ),
        trabeculae=np.column_stack([u(0, 360, 14), u(0.8, 3.0, 14), u(4, 12, 14)]),
        fat_harm=np.array([[k, u(0, 2.2), u(0, 2 * np.pi)] for k in (1, 2, 3, 5)]),
        fat_groove_mm=u(3, 9),
        atrium_centre=np.zeros(3),
        atrium_radii_mm=np.array([u(18, 26), u(16, 24), u(18, 26)]),
    )
    post = np.array([0.0, 1.0, 0.15])
    post = _unit(post - (post @ axis) * axis)
    heart.atrium_centre = origin - u(22, 32) * axis + u(28, 40) * post
    spine = np.array([body_c[0] + u(-5, 5), body_c[1] + semi_ap - u(45, 60)])
    n_ves = 400
    vessels = np.column_stack(
        [
            body_c[0] + u(-semi_lr, semi_lr, n_ves),
            body_c[1] + u(-semi_ap, semi_ap, n_ves),
            origin[2] + u(-90, 40, n_ves),
            u(1.2, 4.0, n_ves),
        ]
    )
    body = BodyModel(
        centre_xy=body_c,
        semi_lr_mm=semi_lr,
        semi_ap_mm=semi_ap,
        sc_fat_mm=u(6, 28),
        wall_mm=u(18, 40),
        spine_xy=spine,
        spine_r_mm=u(15, 19),
        aorta_xy=spine + np.array([u(18, 30), u(-30, -20)]),
        aorta_r_mm=u(10, 13.5),
        diaphragm_z_mm=origin[2] + u(-15, 15),
        diaphragm_slope=u(0.003, 0.006),
        liver_left_x_mm=body_c[0] + u(20, 60),
        wall_harm=np.array([[k, u(0, 0.35), u(0, 2 * np.pi)] for k in (1, 2, 3, 4)]),
        vessels=vessels,
    )
    _fit_heart_in_cavity(heart, body)
    _clear_aorta(heart, body)
    return Anatomy(heart=heart, body=body, texture_seed=int(rng.integers(2**31)))


def _fit_heart_in_cavity(heart: HeartModel, body: BodyModel) -> None:
    """Move the heart posteriorly until its outer surface (incl. RV and fat) stays behind the
    anterior chest wall (the apex then lies close to the wall, as in patients)."""
    z = np.linspace(0.0, 0.9, 10)[:, None] * heart.length_mm
    ang = np.linspace(-np.pi, np.pi, 72, endpoint=False)[None, :]
    in_rv = (np.degrees(ang) > heart.phi_ant_deg) & (np.degrees(ang) < heart.phi_inf_deg)
    taper = np.sqrt(np.clip(1.0 - (z / heart.length_mm / 0.93) ** 2, 0.0, None))
    rad = heart.r_endo_mm * taper + heart.wall_mm * 1.4 + 4.0
    rad = rad + np.where(
        in_rv, heart.rv_width_mm * (1.0 + abs(heart.rv_skew)) + heart.rv_wall_mm, 0.0
    )
    pts = heart.to_patient(rad * np.cos(ang), rad * np.sin(ang), np.broadcast_to(z, rad.shape))
    # Inner boundary of the anterior wall (thickest case of the layer-thickness harmonics).
    layers = (body.sc_fat_mm + body.wall_mm) * 1.5 / 1.1
    y_wall = body.centre_xy[1] - body.semi_ap_mm + layers + 3.0
    move = y_wall - float(pts[..., 1].min())
    if move > 0:
        heart.origin = heart.origin + np.array([0.0, move, 0.0])
        heart.atrium_centre = heart.atrium_centre + np.array([0.0, move, 0.0])


#: Least distance (mm) between the descending aorta and the heart's outer surface (LV
#: epicardium, RV), as behind the pericardium and the left atrium.
AORTA_CLEARANCE_MM = 4.0


def _heart_outline_xy(heart: HeartModel) -> np.ndarray:
    """Axial-plane points (N, 2) (x, y, mm) of the heart's outer surface (diastole; LV
    epicardium with the largest wall harmonic, RV crescent), base to near the apex."""
    z = np.linspace(0.0, 0.95, 20)[:, None] * heart.length_mm
    ang = np.linspace(-np.pi, np.pi, 144, endpoint=False)[None, :]
    in_rv = (np.degrees(ang) > heart.phi_ant_deg) & (np.degrees(ang) < heart.phi_inf_deg)
    taper = np.sqrt(np.clip(1.0 - (z / heart.length_mm / 0.93) ** 2, 0.0, None))
    rad = heart.r_endo_mm * taper * 1.06 + heart.wall_mm * (1.12 + heart.septal_extra) + 2.0
    rv = heart.rv_width_mm * (1.0 + abs(heart.rv_skew)) + heart.rv_wall_mm
    rad = rad + np.where(in_rv, rv, 0.0)
    pts = heart.to_patient(rad * np.cos(ang), rad * np.sin(ang), np.broadcast_to(z, rad.shape))
    return pts[..., :2].reshape(-1, 2)


def _clear_aorta(heart: HeartModel, body: BodyModel) -> None:
    """Keep the descending aorta and the spine out of the heart.

    The posterior shift of :func:`_fit_heart_in_cavity` could push the base of the heart into
    the aorta (a static vertical cylinder beside the spine), which then carved a hole into the
    LV cavity and wall of basal slices and into the LV pool of the AIF series. The aorta moves
    along its anatomical place, left anterolateral of the vertebral body (from straight
    anterior to straight left of it), to the position nearest its sampled one that clears the
    heart by ``AORTA_CLEARANCE_MM``. When none does (a heart too deep for the chest), the
    chest is made deeper: spine and aorta move back, and the body's posterior wall with them.
    No random draws: exams whose heart clears the aorta are unchanged."""
    a0 = np.asarray(body.aorta_xy, dtype=float)
    outline = _heart_outline_xy(heart)

    def clearance(xy: np.ndarray) -> np.ndarray:  # (K, 2) -> (K,) mm from the heart
        return np.sqrt(((xy[:, None, :] - outline[None, :, :]) ** 2).sum(axis=2)).min(axis=1)

    if clearance(a0[None])[0] - body.aorta_r_mm >= AORTA_CLEARANCE_MM:
        return
    ang = np.radians(np.arange(-90.0, 0.1, 5.0))  # -90: anterior (-y); 0: patient left (+x)
    unit = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    for _ in range(40):
        spine = np.asarray(body.spine_xy, dtype=float)
        dist = body.spine_r_mm + body.aorta_r_mm + np.arange(2.0, 10.1, 2.0)
        cand = (spine + dist[:, None, None] * unit[None]).reshape(-1, 2)
        ok = clearance(cand) - body.aorta_r_mm >= AORTA_CLEARANCE_MM
        spine_gap = clearance(spine[None])[0] - body.spine_r_mm
        if ok.any() and spine_gap >= AORTA_CLEARANCE_MM:
            near = np.where(ok, np.hypot(*(cand - a0).T), np.inf)
            body.aorta_xy = cand[int(np.argmin(near))]
            return
        # a deeper chest: everything posterior moves back by 2 mm
        back = np.array([0.0, 2.0])
        body.spine_xy = spine + back
        a0 = a0 + back
        body.centre_xy = np.asarray(body.centre_xy, dtype=float) + back / 2.0
        body.semi_ap_mm = float(body.semi_ap_mm) + 1.0
    body.aorta_xy = a0


# --------------------------------------------------------------------------- heart shape


def _harm(phi: np.ndarray, harm: np.ndarray) -> np.ndarray:
    out = np.zeros_like(phi)
    for k, a, ph in harm:
        out += a * np.cos(k * phi - ph)
    return out


def heart_radii(heart: HeartModel, phi: np.ndarray, z: np.ndarray, phase: float):
    """Endo- and epicardial radius (mm) at heart angle ``phi`` (rad) and depth ``z`` (mm).

    phase: cavity scale of the cardiac phase (1 diastole, ~0.7 end systole); the myocardial
    cross-section area is conserved.
    """
    zeta = np.clip(z / heart.length_mm, -0.2, 1.2)
    taper = np.sqrt(np.clip(1.0 - (np.clip(zeta, 0, None) / 0.93) ** 2, 0.0, None))
    r_en0 = heart.r_endo_mm * taper * (1.0 + _harm(phi, heart.cavity_harm))
    sept = heart.septal_extra * np.exp(-((np.angle(np.exp(1j * phi)) / 0.9) ** 2))
    w0 = heart.wall_mm * (1.0 + _harm(phi, heart.wall_harm) + sept) * (1.0 - 0.3 * zeta)
    w0 = np.maximum(w0, 3.0)
    # Apical cap: the wall closes the cavity near the apex.
    r_ep0 = np.where(
        zeta < 0.93,
        r_en0 + w0,
        (heart.r_endo_mm * 0.35 + w0) * np.sqrt(np.clip(1 - (zeta - 0.93) / 0.1, 0, None)),
    )
    r_en = r_en0 * phase
    r_ep = np.sqrt(np.maximum(r_en**2 + np.maximum(r_ep0**2 - r_en0**2, 0.0), 0.0))
    return r_en, r_ep


def _wrap_deg(a: np.ndarray) -> np.ndarray:
    return (np.asarray(a) + 180.0) % 360.0 - 180.0


def classify_heart(
    heart: HeartModel, p: np.ndarray, phase: float, shift_mm: np.ndarray, *, classes: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heart class (index into CLASS_NAMES, -1 none), heart angle (rad) and transmural depth
    (0 endocardium .. 1 epicardium) of patient points ``p`` (M, 3).

    classes=False skips the classification (angle and depth only)."""
    x, y, z = heart.to_heart(p, shift_mm)
    r = np.hypot(x, y)
    cls = np.full(p.shape[0], -1, dtype=np.int16)
    if not classes:
        phi = np.arctan2(y, x)
        r_en, r_ep = heart_radii(heart, phi, z, phase)
        depth = np.clip((r - r_en) / np.maximum(r_ep - r_en, 1e-3), 0.0, 1.0)
        return cls, phi, depth
    # Cheap bound first: only points near the heart are classified.
    zeta_all = z / heart.length_mm
    bound = (
        heart.r_endo_mm * 1.3
        + heart.wall_mm * 2.0
        + heart.rv_width_mm * (1.0 + abs(heart.rv_skew))
        + heart.rv_wall_mm
        + 25.0
    )
    da = p - heart.atrium_centre - shift_mm
    in_atrium = np.sum(da * da, axis=1) < np.max(heart.atrium_radii_mm) ** 2
    near = np.flatnonzero(((zeta_all > -0.05) & (zeta_all < 1.05) & (r < bound)) | in_atrium)
    if near.size == 0:
        return cls, np.zeros(0), np.zeros(0)
    x, y, r, zeta = x[near], y[near], r[near], zeta_all[near]
    phi_n = np.arctan2(y, x)
    r_en, r_ep = heart_radii(heart, phi_n, z[near], phase)
    sub = np.full(near.size, -1, dtype=np.int16)

    # LV blood and myocardium.
    cav = r < r_en
    myo = (r >= r_en) & (r < r_ep)
    phid = np.degrees(phi_n)
    # Trabeculae: myocardial tissue protruding into the cavity (labelled LV).
    edge = np.flatnonzero(cav & (r > r_en - 4.0 * phase) & (zeta < 0.85))
    trab = np.zeros_like(cav)
    if edge.size:
        tdep = np.zeros(edge.size)
        for ph, dep, wid in heart.trabeculae:
            tdep += dep * np.exp(-((_wrap_deg(phid[edge] - ph) / wid) ** 2))
        trab[edge] = r[edge] >= r_en[edge] - tdep * phase
    # Papillary muscles: ellipsoids attached to the lateral wall, mid-ventricle.
    pap = np.zeros_like(cav)
    for ang, rad, rel in heart.papillary:
        phi_p = np.radians(heart.phi_ant_deg + ang)
        size = np.maximum(rad * np.exp(-(((zeta - 0.5) / 0.22) ** 2)) * np.sqrt(phase), 1e-3)
        pr = r_en * rel + size * 0.6
        ux, uy = np.cos(phi_p), np.sin(phi_p)
        along = x * ux + y * uy
        across = -x * uy + y * ux
        d2 = ((along - pr) ** 2 + across**2) / size**2
        pap |= cav & ((d2 < 1.0) | ((along > pr) & (np.abs(across) < 0.45 * size)))
    sub[cav] = C["lv_blood"]
    sub[trab | pap] = C["papillary"]
    sub[myo] = C["lv_myo"]

    # RV crescent between the insertion points, outside the LV epicardium.
    a0, a1 = heart.phi_ant_deg, heart.phi_inf_deg
    d0 = _wrap_deg(phid - a0)
    d1 = _wrap_deg(phid - a1)
    uu = d0 / (a1 - a0)
    in_span = (uu >= 0) & (uu <= 1)
    prof = np.sin(np.pi * np.clip(uu, 0, 1)) ** 0.35 * (1.0 + heart.rv_skew * (0.5 - uu))
    w_rv = heart.rv_width_mm * prof * np.clip(1.0 - 0.75 * zeta, 0.2, 1.0)
    rv_out = r_ep + w_rv
    free = sub < 0
    sub[in_span & free & (r >= r_ep) & (r < rv_out)] = C["rv_blood"]
    sub[in_span & free & (r >= rv_out) & (r < rv_out + heart.rv_wall_mm)] = C["rv_wall"]

    # Left atrium (posterior-superior to the base): blood, not labelled.
    rel = p[near] - heart.atrium_centre - shift_mm
    ax = np.stack([heart.e1, heart.e2, heart.axis])
    q = (rel @ ax.T) / heart.atrium_radii_mm
    sub[(sub < 0) & (np.sum(q * q, axis=1) < 1.0)] = C["atrium"]

    # Epicardial fat: a thin, patchy layer, thicker in the interventricular grooves.
    groove = heart.fat_groove_mm * (np.exp(-((d0 / 12.0) ** 2)) + np.exp(-((d1 / 12.0) ** 2)))
    fat_t = np.clip(_harm(phi_n, heart.fat_harm) + 0.6, 0.0, None) + groove
    base_r = np.where(in_span, rv_out + heart.rv_wall_mm, r_ep)
    sub[(sub < 0) & (r >= base_r) & (r < base_r + fat_t)] = C["epi_fat"]
    cls[near] = sub
    return cls, np.zeros(0), np.zeros(0)


# --------------------------------------------------------------------------- body


def classify_body(
    anat: Anatomy,
    p: np.ndarray,
    shift_mm: np.ndarray,
    plane: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Static class and moving non-heart class (liver/abdomen/-1) of points ``p`` (M, 3),
    and whether each point lies in the thoracic/abdominal cavity (where moving tissue shows).

    plane: (point, unit normal) of the plane holding all points, to skip distant vessels.
    """
    b = anat.body
    x = p[:, 0] - b.centre_xy[0]
    y = p[:, 1] - b.centre_xy[1]
    rho = np.sqrt((x / b.semi_lr_mm) ** 2 + (y / b.semi_ap_mm) ** 2)
    # Approximate distance inside the outline (mm).
    depth = (1.0 - rho) * np.minimum(b.semi_lr_mm, b.semi_ap_mm) * 1.1
    theta = np.arctan2(y / b.semi_ap_mm, x / b.semi_lr_mm)
    var = 1.0 + _harm(theta, b.wall_harm)
    fat_t = b.sc_fat_mm * np.clip(var, 0.3, None)
    wall_t = b.wall_mm * np.clip(2.0 - var, 0.3, None)
    static = np.full(p.shape[0], C["air"], dtype=np.int16)
    body = rho < 1.0
    static[body & (depth < fat_t)] = C["sc_fat"]
    wall = body & (depth >= fat_t) & (depth < fat_t + wall_t)
    static[wall] = C["muscle"]
    cavity = body & (depth >= fat_t + wall_t)
    # Spine and paraspinal muscles (posterior), descending aorta.
    ds = np.hypot(p[:, 0] - b.spine_xy[0], p[:, 1] - b.spine_xy[1])
    post = p[:, 1] > b.spine_xy[1]
    para = body & post & (np.abs(p[:, 0] - b.spine_xy[0]) < 70) & (depth >= fat_t)
    static[para] = C["muscle"]
    cavity &= ~(post & (np.abs(p[:, 0] - b.spine_xy[0]) < 70))
    spine = ds < b.spine_r_mm + 8
    static[spine] = C["muscle"]
    static[ds < b.spine_r_mm + 1.5] = C["cortex"]
    static[ds < b.spine_r_mm] = C["marrow"]
    cavity &= ~spine
    da = np.hypot(p[:, 0] - b.aorta_xy[0], p[:, 1] - b.aorta_xy[1])
    static[da < b.aorta_r_mm + 1.5] = C["muscle"]
    static[da < b.aorta_r_mm] = C["aorta_blood"]
    cavity &= da >= b.aorta_r_mm + 1.5
    static[cavity] = C["lung"]
    # Pulmonary vessels (spheres) inside the lungs.
    if b.vessels.size and np.any(cavity):
        idx = np.flatnonzero(cavity)
        q = p[idx]
        lo, hi = q.min(axis=0), q.max(axis=0)
        hit = np.zeros(idx.size, dtype=bool)
        for vx, vy, vz, vr in b.vessels:
            c = np.array([vx, vy, vz])
            if np.any(c + vr < lo) or np.any(c - vr > hi):
                continue
            if plane is not None and abs(float((c - plane[0]) @ plane[1])) >= vr:
                continue
            d2 = (q[:, 0] - vx) ** 2 + (q[:, 1] - vy) ** 2 + (q[:, 2] - vz) ** 2
            hit |= d2 < vr * vr
        static[idx[hit]] = C["lung_vessel"]
    # Moving: liver / upper abdomen below the diaphragm (dome higher on the right).
    q = p - shift_mm
    xr = q[:, 0] - b.centre_xy[0]
    dome = b.diaphragm_z_mm - b.diaphragm_slope * (xr + 50.0) ** 2
    dome = dome - 0.002 * (q[:, 1] - b.centre_xy[1]) ** 2
    below = q[:, 2] < dome
    moving = np.full(p.shape[0], -1, dtype=np.int16)
    liver_edge = (
        b.liver_left_x_mm
        - 0.4 * (dome - q[:, 2])
        + 25.0 * np.sin((q[:, 1] - b.centre_xy[1]) / 45.0 + b.wall_harm[0, 2])
    )
    moving[below & (q[:, 0] < liver_edge)] = C["liver"]
    moving[below & (q[:, 0] >= liver_edge)] = C["abdomen"]
    return static, moving, cavity


# --------------------------------------------------------------------------- rendering


@dataclass
class SliceRender:
    """Fraction maps of one slice at the reference position.

    static_frac: (N_STATIC, Y, X) fractions of the static classes (the cavity filled with lung).
    moving_frac: (len(CLASS_NAMES) - N_STATIC, Y, X) fractions of the moving classes, already
        confined to the cavity.
    phi_deg / depth: heart angle (deg, from the anterior insertion, right-handed about the
        LV axis) and transmural depth at pixel centres (Y, X).
    labels: (Y, X) uint8 truth labels (0 bg, 1 LV incl. papillary, 2 myocardium, 3 RV).
    lv_centre: (row, col) centroid of label 1; rv_ant / rv_inf: insertion points (row, col).
    """

    static_frac: np.ndarray
    moving_frac: np.ndarray
    phi_deg: np.ndarray
    depth: np.ndarray
    zeta: np.ndarray
    labels: np.ndarray
    lv_centre: tuple[float, float]
    rv_ant: tuple[float, float]
    rv_inf: tuple[float, float]


def _points(geom: SliceGeometry, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return geom.pixel_to_patient(rows, cols).reshape(-1, 3)


def _supersample(shape: tuple[int, int], r0: int, c0: int, ss: int):
    """Row/col coordinates of ss x ss sub-pixel samples of a pixel block."""
    ny, nx = shape
    off = (np.arange(ss) + 0.5) / ss - 0.5
    rr = (r0 + np.arange(ny))[:, None] + off[None, :]
    cc = (c0 + np.arange(nx))[:, None] + off[None, :]
    R = np.broadcast_to(rr[:, :, None, None], (ny, ss, nx, ss))
    Cc = np.broadcast_to(cc[None, None, :, :], (ny, ss, nx, ss))
    return R, Cc


def _fractions(cls: np.ndarray, shape4: tuple[int, int, int, int], n_cls: int, offset: int):
    """Average class indicators over the sub-samples -> (n_cls, ny, nx)."""
    ny, ss, nx, _ = shape4
    c = cls.reshape(ny, ss, nx, ss).transpose(0, 2, 1, 3).reshape(ny * nx, ss * ss)
    k = c.astype(np.int64) - offset
    valid = (k >= 0) & (k < n_cls)
    pix = np.broadcast_to(np.arange(ny * nx)[:, None], k.shape)
    counts = np.bincount((k * (ny * nx) + pix)[valid], minlength=n_cls * ny * nx)
    return (counts.reshape(n_cls, ny, nx) / float(ss * ss)).astype(np.float32)


def _classify_all(anat, pts, phase, shift, plane, heart: bool = True):
    """Static and moving class of each point (moving confined to the cavity)."""
    static, mov_body, cavity = classify_body(anat, pts, shift, plane)
    moving = mov_body
    if heart:
        hcls, _, _ = classify_heart(anat.heart, pts, phase, shift)
        moving = np.where(hcls >= 0, hcls, mov_body)
    moving = np.where(cavity, moving, -1)
    return static, moving.astype(np.int16)


def render_slice(
    anat: Anatomy,
    geom: SliceGeometry,
    *,
    phase: float = 1.0,
    shift_mm: np.ndarray | None = None,
    ss: int = 2,
    heart_ss: int = 4,
) -> SliceRender:
    """Render fraction maps and truth of one slice (see :class:`SliceRender`).

    Pixel centres are classified first; pixels on a class boundary (any of their 8
    neighbours differs) are re-rendered with ``max(ss, heart_ss)``^2 sub-samples and
    averaged (partial volume).

    phase: cardiac-phase cavity scale; shift_mm: (3,) rigid displacement of heart and liver
    (breath-hold position of the condition).
    """
    shift = np.zeros(3) if shift_mm is None else np.asarray(shift_mm, dtype=float)
    ny, nx = geom.shape
    n_mov = len(CLASS_NAMES) - N_STATIC
    plane = (np.asarray(geom.origin_mm, dtype=float), geom.normal)
    h = anat.heart
    o = h.origin + shift
    n = geom.normal
    t = ((np.asarray(geom.origin_mm) - o) @ n) / (h.axis @ n)
    centre = geom_point_to_pixel(geom, o + t * h.axis)

    # Classify pixel centres; refine pixels on a class boundary with ss x ss sub-samples.
    rr, cc = np.mgrid[0:ny, 0:nx]
    pc = _points(geom, rr, cc)
    st0, mv0 = _classify_all(anat, pc, phase, shift, plane)
    st0, mv0 = st0.reshape(ny, nx), mv0.reshape(ny, nx)
    key = st0.astype(np.int32) * 64 + (mv0.astype(np.int32) + 1)
    mixed = np.zeros((ny, nx), dtype=bool)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = key[max(dr, 0) :, max(dc, 0) : nx + min(dc, 0)]
        b = key[: ny - dr, max(-dc, 0) : nx - max(dc, 0)]
        d = a != b
        mixed[max(dr, 0) :, max(dc, 0) : nx + min(dc, 0)] |= d
        mixed[: ny - dr, max(-dc, 0) : nx - max(dc, 0)] |= d
    sf = np.zeros((N_STATIC, ny, nx), dtype=np.float32)
    mf = np.zeros((n_mov, ny, nx), dtype=np.float32)
    yy, xx = np.nonzero(~mixed)
    sf[st0[yy, xx], yy, xx] = 1.0
    mv = mv0[yy, xx]
    keep = mv >= 0
    mf[mv[keep] - N_STATIC, yy[keep], xx[keep]] = 1.0
    rc = np.argwhere(mixed)
    if rc.size:
        sub = max(ss, heart_ss)
        off = (np.arange(sub) + 0.5) / sub - 0.5
        sr = rc[:, 0:1, None] + off[None, :, None] + 0.0 * off[None, None, :]
        sc = rc[:, 1:2, None] + 0.0 * off[None, :, None] + off[None, None, :]
        st_h, mv_h = _classify_all(anat, _points(geom, sr, sc), phase, shift, plane)
        shp = (rc.shape[0], sub, 1, sub)
        sf[:, rc[:, 0], rc[:, 1]] = _fractions(st_h, shp, N_STATIC, 0)[:, :, 0]
        mf[:, rc[:, 0], rc[:, 1]] = _fractions(mv_h, shp, n_mov, N_STATIC)[:, :, 0]

    # Pixel-centre heart coordinates.
    _, phi, depth = classify_heart(h, pc, phase, shift, classes=False)
    x, y, z = h.to_heart(pc, shift)
    phi_deg = np.mod(np.degrees(phi) - h.phi_ant_deg, 360.0).reshape(ny, nx)

    # Labels by the largest fraction among bg / LV / myo / RV.
    idx = lambda name: C[name] - N_STATIC  # noqa: E731
    lv = mf[idx("lv_blood")] + mf[idx("papillary")]
    myo = mf[idx("lv_myo")]
    rv = mf[idx("rv_blood")]
    bg = 1.0 - lv - myo - rv
    labels = np.argmax(np.stack([bg, lv, myo, rv]), axis=0).astype(np.uint8)
    lv_rc = np.argwhere(labels == 1)
    lv_centre = tuple(float(v) for v in lv_rc.mean(axis=0)) if lv_rc.size else centre

    # RV insertion points: on the LV epicardium at the insertion angles, in this plane.
    ins = []
    for ang in (h.phi_ant_deg, h.phi_inf_deg):
        ins.append(_insertion_point(geom, h, np.radians(ang), phase, shift))
    return SliceRender(
        static_frac=sf,
        moving_frac=mf,
        phi_deg=phi_deg.astype(np.float32),
        depth=depth.reshape(ny, nx).astype(np.float32),
        zeta=(z / h.length_mm).reshape(ny, nx).astype(np.float32),
        labels=labels,
        lv_centre=lv_centre,
        rv_ant=ins[0],
        rv_inf=ins[1],
    )


def geom_point_to_pixel(geom: SliceGeometry, p: np.ndarray) -> tuple[float, float]:
    """(row, col) of the projection of patient point ``p`` onto the slice plane."""
    d = np.asarray(p, dtype=float) - np.asarray(geom.origin_mm, dtype=float)
    dy, dx = geom.pixel_spacing_mm
    return float(d @ geom.col_dir / dy), float(d @ geom.row_dir / dx)


def _insertion_point(geom, h: HeartModel, phi: float, phase: float, shift) -> tuple[float, float]:
    """March along the in-plane ray from the LV centre at heart angle ``phi`` until the
    epicardium; returns (row, col)."""
    o = h.origin + shift
    n = geom.normal
    t = ((np.asarray(geom.origin_mm) - o) @ n) / (h.axis @ n)
    c = o + t * h.axis
    # In-plane direction closest to the heart-frame direction phi.
    d3 = np.cos(phi) * h.e1 + np.sin(phi) * h.e2
    d3 = d3 - (d3 @ n) * n
    d3 /= np.linalg.norm(d3)
    s = np.arange(0.0, 80.0, 0.1)
    pts = c + s[:, None] * d3
    x, y, z = h.to_heart(pts, shift)
    r = np.hypot(x, y)
    ph = np.arctan2(y, x)
    _, r_ep = heart_radii(h, ph, z, phase)
    k = int(np.argmax(r >= r_ep))
    return geom_point_to_pixel(geom, pts[k])
