"""Series roles: perfusion stress / rest, AIF, scanner-derived, localizer, other.

Order of evidence: the user's choice; then SeriesDescription / ProtocolName keywords
(stress agents, rest, AIF, derived maps, localizers); then structure (a dynamic series with
one frame per heartbeat is perfusion; a low-resolution one beside it is the AIF); for
perfusion without stress/rest keywords, heart rate (stress is faster) and acquisition order
(the earlier perfusion is usually stress). Every series gets a ``role_reason``.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from functools import lru_cache

from qperf_viewer.dicom.group import is_mr_image
from qperf_viewer.dicom.layout import series_layout
from qperf_viewer.dicom.model import ROLES, Series, Study

_STRESS_SUBSTRINGS = (
    "stress", "adenosin", "regadenoson", "lexiscan", "dipyridamol", "persantin", "dobutamin",
    "vasodilat", "hyperaem", "hyperem", "belastung",
)  # fmt: skip
_STRESS_TOKENS = frozenset({"adeno", "ado", "rega", "dipy", "dobu"})
_REST_TOKENS = frozenset({"rest", "ruhe", "repos", "baseline", "rst"})
_PERF_PARTS = ("perf", "perfusion", "fpp", "aif")
_DERIVED_TOKENS = frozenset(
    {
        "moco", "mc", "mbf", "map", "maps", "gd", "t1map", "subtraction", "sub", "parametric",
        "upslope", "concentration", "quant", "quantitative", "mip", "mpr", "psmap", "flowmap",
        "corrected", "pixelmap", "derived",
    }
)  # fmt: skip
_DERIVED_IMAGE_TYPES = frozenset(
    {"DERIVED", "MOCO", "MIP", "SUBTRACTION", "SUB", "MPR", "PROJECTION IMAGE", "MAP", "MBF",
     "GD", "T1 MAP", "T1MAP", "PERFUSION_MAP", "PARAMETRIC"}
)  # fmt: skip
_NEGATIONS = frozenset({"off", "no", "none", "false", "0"})
_LOCALIZER_TOKENS = frozenset(
    {"localizer", "localiser", "loc", "scout", "survey", "pilot", "tripilot", "planscan",
     "localizers", "scouts"}
)  # fmt: skip
STRESS_AGENTS = {
    "adenosin": "adenosine",
    "regadenoson": "regadenoson",
    "lexiscan": "regadenoson",
    "dipyridamol": "dipyridamole",
    "persantin": "dipyridamole",
    "dobutamin": "dobutamine",
}

#: Smallest number of frames at one position for a dynamic (perfusion-like) series.
MIN_DYNAMIC_FRAMES = 8
#: Plausible frame interval of a perfusion series (s): one frame per heartbeat.
RR_RANGE_S = (0.25, 2.6)


def _split(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


@lru_cache(maxsize=1024)
def token_lists(text: str) -> tuple[list[str], list[str]]:
    """(words split at punctuation, words also split at camelCase and letter/digit
    boundaries), lower case, in order."""
    t = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    t = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", t)
    return _split(text), _split(t)


@lru_cache(maxsize=1024)
def _tokens(text: str) -> tuple[str, ...]:
    raw, fine = token_lists(text)
    return tuple(raw + [w for w in fine if w not in raw])


def tokens(text: str) -> list[str]:
    """All lower-case words of a description (both splittings of :func:`token_lists`)."""
    return list(_tokens(text))


def _found(words: list[str], text: str, substrings=(), toks=frozenset()) -> str | None:
    low = text.lower()
    for s in substrings:
        if s in low:
            return s
    for w in words:
        if w in toks:
            return w
    return None


def stress_keyword(text: str) -> str | None:
    """The stress keyword in ``text`` (e.g. 'adenosin'), else None."""
    return _found(tokens(text), text, _STRESS_SUBSTRINGS, _STRESS_TOKENS)


def rest_keyword(text: str) -> str | None:
    """The rest keyword in ``text``, else None."""
    for w in tokens(text):
        if w in _REST_TOKENS:
            return w
        for p in _PERF_PARTS:
            if w in (p + "rest", "rest" + p):
                return w
    return None


def condition_keyword(text: str) -> tuple[str | None, str | None]:
    """('stress' | 'rest' | None, the keyword found)."""
    s, r = stress_keyword(text), rest_keyword(text)
    if s and not r:
        return "stress", s
    if r and not s:
        return "rest", r
    return None, None


def stress_agent(text: str) -> str | None:
    """Stress agent named in a description (adenosine, regadenoson, ...), else None."""
    low = text.lower()
    for k, v in STRESS_AGENTS.items():
        if k in low:
            return v
    return None


def _is_aif(text: str) -> bool:
    words = tokens(text)
    if any(w == "aif" or w.startswith("aif") or w.endswith("aif") for w in words):
        return True
    low = text.lower()
    return "arterial input" in low


def _derived_reason(se: Series) -> str | None:
    from qperf_viewer.quant.gd import header_marks_gd

    if header_marks_gd(se.image_type, se.description):
        return None  # the documented Gd marker: a perfusion series in mmol/L, meant for analysis
    it = {x.upper() for x in se.image_type}
    if se.image_type and se.image_type[0].upper() == "DERIVED":
        return "ImageType DERIVED (made by the scanner from other images)"
    hit = it & _DERIVED_IMAGE_TYPES
    if hit:
        return f"ImageType {sorted(hit)[0]} (made by the scanner from other images)"
    for words in token_lists(se.text):
        for i, w in enumerate(words):
            if w not in _DERIVED_TOKENS:
                continue
            nxt = words[i + 1] if i + 1 < len(words) else ""
            prev = words[i - 1] if i > 0 else ""
            if nxt in _NEGATIONS or prev in ("no", "without", "non"):
                continue  # e.g. 'MoCo off': the original images
            return f"description says '{w}' (a scanner-derived series)"
    if "motion corr" in se.text.lower():
        return "description says 'motion corrected' (a scanner-derived series)"
    return None


def _localizer_reason(se: Series) -> str | None:
    if any(x.upper() == "LOCALIZER" for x in se.image_type):
        return "ImageType LOCALIZER"
    for w in tokens(se.text):
        if w in _LOCALIZER_TOKENS:
            return f"description says '{w}'"
    return None


# --------------------------------------------------------------------------- features
def analyse_series(se: Series) -> None:
    """Fill the series' position groups, times, heart rate and TS (idempotent)."""
    if se.groups:
        return
    se.groups = series_layout(se.frames)
    se.n_positions = len(se.groups)
    se.max_frames_per_position = max((g.n_frames for g in se.groups), default=0)
    times = [t for g in se.groups if g.times_abs for t in g.times_abs]
    se.first_time_s = min(times) if times else None
    se.last_time_s = max(times) if times else None
    rrs = [g.rr_s for g in se.groups if g.rr_s]
    rr = statistics.median(rrs) if rrs else None
    se.heart_rate_bpm = 60.0 / rr if rr and RR_RANGE_S[0] <= rr <= RR_RANGE_S[1] else None
    ts = [f.get("InversionTime") for f in se.frames if f.get("InversionTime")]
    se.ts_ms = float(statistics.median(ts)) if ts else None


def _is_dynamic(se: Series) -> bool:
    return se.max_frames_per_position >= MIN_DYNAMIC_FRAMES


def _approximate(se: Series) -> bool:
    return all(g.time_source == "approximate" for g in se.groups)


def _matrix(se: Series) -> int:
    geoms = [g.geometry for g in se.groups if g.geometry is not None]
    return max((g.shape[0] * g.shape[1] for g in geoms), default=0)


@dataclass(eq=False)
class _Acquisition:
    """Perfusion series acquired together (overlapping in time)."""

    series: list[Series] = field(default_factory=list)
    label: str | None = None
    label_reason: str = ""

    @property
    def first(self) -> float | None:
        ts = [s.first_time_s for s in self.series if s.first_time_s is not None]
        return min(ts) if ts else None

    @property
    def last(self) -> float | None:
        ts = [s.last_time_s for s in self.series if s.last_time_s is not None]
        return max(ts) if ts else None

    @property
    def heart_rate(self) -> float | None:
        hr = [s.heart_rate_bpm for s in self.series if s.heart_rate_bpm]
        return float(statistics.median(hr)) if hr else None

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.series)

    def sort_key(self) -> tuple:
        nums = [s.series_number for s in self.series if s.series_number is not None]
        return (self.first if self.first is not None else float("inf"), min(nums, default=0))


def _acquisitions(cands: list[Series]) -> list[_Acquisition]:
    timed = sorted((s for s in cands if s.first_time_s is not None), key=lambda s: s.first_time_s)
    acqs: list[_Acquisition] = []
    for s in timed:
        cur = acqs[-1] if acqs else None
        if cur is not None and cur.last is not None and s.first_time_s <= cur.last + 5.0:
            cur.series.append(s)
        else:
            acqs.append(_Acquisition([s]))
    by_label: dict[str, _Acquisition] = {}
    for s in sorted(
        (s for s in cands if s.first_time_s is None), key=lambda s: s.series_number or 0
    ):
        cond, _ = condition_keyword(s.text)
        key = cond or s.protocol_name or s.series_instance_uid
        if key not in by_label:
            by_label[key] = _Acquisition()
            acqs.append(by_label[key])
        by_label[key].series.append(s)
    return acqs


def _label(acq: _Acquisition) -> None:
    votes: dict[str, list[str]] = {"stress": [], "rest": []}
    for s in acq.series:
        cond, kw = condition_keyword(s.text)
        if cond:
            votes[cond].append(kw or "")
    ns, nr = len(votes["stress"]), len(votes["rest"])
    if ns != nr:
        cond = "stress" if ns > nr else "rest"
        acq.label = cond
        acq.label_reason = f"description says '{votes[cond][0]}'"


def _set(se: Series, role: str, reason: str, condition: str | None = None) -> None:
    se.role, se.role_reason = role, reason
    se.condition = condition if role == "aif" else (role if role in ("stress", "rest") else None)


def classify_study(study: Study, overrides: dict[str, str] | None = None) -> None:
    """Set ``role``, ``role_reason`` and ``condition`` of every series of ``study``.

    overrides: SeriesInstanceUID -> role chosen by the user: one of :data:`ROLES`, or
    'aif:stress' / 'aif:rest' to tie an AIF series to a condition.
    """
    overrides = overrides or {}
    perf: list[Series] = []
    aifs: list[Series] = []
    for se in study.series:
        analyse_series(se)
        se.role_set_by_user = False
        if se.series_instance_uid in overrides:
            role = overrides[se.series_instance_uid]
            cond = None
            if role.startswith("aif:"):
                role, cond = "aif", role.split(":", 1)[1]
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; use one of {ROLES}")
            _set(se, role, "set by the user", cond)
            se.role_set_by_user = True
            if role == "aif":
                aifs.append(se)
            continue
        if not is_mr_image(se):
            _set(se, "other", f"not an MR image (modality {se.modality or 'unknown'})")
            continue
        why = _localizer_reason(se)
        if why:
            _set(se, "localizer", why)
            continue
        why = _derived_reason(se)
        if why:
            _set(se, "derived", why + "; not used as a perfusion series")
            continue
        if _is_aif(se.text):
            _set(se, "aif", "description says 'AIF'")
            aifs.append(se)
            continue
        cond, kw = condition_keyword(se.text)
        perf_word = any(p in se.text.lower() for p in ("perf", "fpp", "first pass", "firstpass"))
        dynamic = _is_dynamic(se)
        rr_ok = se.heart_rate_bpm is not None
        if dynamic and (cond or perf_word):
            perf.append(se)
        elif dynamic and rr_ok and not _approximate(se) and se.max_frames_per_position >= 15:
            perf.append(se)
        elif cond or perf_word:
            _set(
                se,
                "other",
                f"description suggests perfusion but only {se.max_frames_per_position} frame(s) "
                "per slice position",
            )
        else:
            _set(se, "other", "not a perfusion series (no keyword, not one frame per heartbeat)")

    acqs = _acquisitions(perf)
    for acq in acqs:
        _split_structural_aif(acq, aifs)
    acqs = [a for a in acqs if a.series]
    for acq in acqs:
        _label(acq)
    taken = {
        se.role for se in study.series if se.role_set_by_user and se.role in ("stress", "rest")
    }
    _assign_conditions(acqs, taken)
    _assign_aifs(aifs, acqs, study)


def _split_structural_aif(acq: _Acquisition, aifs: list[Series]) -> None:
    """A low-resolution dynamic series acquired with a perfusion is its AIF series."""
    if len(acq.series) < 2:
        return
    biggest = max(_matrix(s) for s in acq.series)
    for s in list(acq.series):
        m = _matrix(s)
        if 0 < m <= 0.5 * biggest and s.n_positions == 1:
            acq.series.remove(s)
            _set(s, "aif", "low-resolution dynamic series acquired with the perfusion slices")
            aifs.append(s)


def _assign_conditions(acqs: list[_Acquisition], taken: set[str]) -> None:
    acqs.sort(key=_Acquisition.sort_key)
    chosen: dict[str, _Acquisition] = {}
    for acq in acqs:  # keyword-labelled first; a repeated label keeps the larger acquisition
        if acq.label is None:
            continue
        prev = chosen.get(acq.label)
        if prev is None or acq.n_frames >= prev.n_frames:
            if prev is not None:
                _demote(prev, f"another {acq.label} perfusion acquisition was chosen")
            chosen[acq.label] = acq
        else:
            _demote(acq, f"another {acq.label} perfusion acquisition was chosen")
    unl = [a for a in acqs if a.label is None]
    free = [c for c in ("stress", "rest") if c not in chosen and c not in taken]
    if unl and len(free) == 1:
        unl.sort(key=lambda a: -a.n_frames)
        other = "stress" if free[0] == "rest" else "rest"
        unl[0].label = free[0]
        unl[
            0
        ].label_reason = (
            f"no stress/rest keyword; the other perfusion is {other}, so this one is {free[0]}"
        )
        chosen[free[0]] = unl[0]
        unl = unl[1:]
    elif len(unl) >= 2 and len(free) == 2:
        two = sorted(sorted(unl, key=lambda a: -a.n_frames)[:2], key=_Acquisition.sort_key)
        a, b = two
        ha, hb = a.heart_rate, b.heart_rate
        if ha and hb and abs(ha - hb) >= max(8.0, 0.1 * min(ha, hb)):
            fast, slow = (a, b) if ha > hb else (b, a)
            fast.label, slow.label = "stress", "rest"
            hf, hs = fast.heart_rate, slow.heart_rate
            fast.label_reason = (
                f"no stress/rest keyword; faster heart rate ({hf:.0f} vs {hs:.0f} bpm)"
            )
            slow.label_reason = (
                f"no stress/rest keyword; slower heart rate ({hs:.0f} vs {hf:.0f} bpm)"
            )
        else:
            hr = "similar heart rates" if ha and hb else "heart rate unknown"
            a.label, b.label = "stress", "rest"
            a.label_reason = f"no stress/rest keyword, {hr}; acquired first (usually stress)"
            b.label_reason = f"no stress/rest keyword, {hr}; acquired second (usually rest)"
        chosen["stress"], chosen["rest"] = (a, b) if a.label == "stress" else (b, a)
        unl = [u for u in unl if u not in two]
    elif len(unl) == 1 and len(free) == 2:
        a = unl[0]
        a.label = "stress"
        a.label_reason = (
            "the only perfusion acquisition and no stress/rest keyword: assumed stress "
            "(change it if this was rest)"
        )
        chosen["stress"] = a
        unl = []
    for a in unl:
        _demote(a, "perfusion-like series, but stress and rest were already found")
    for cond, acq in chosen.items():
        for se in acq.series:
            _set(se, cond, acq.label_reason)


def _demote(acq: _Acquisition, reason: str) -> None:
    acq.label = None
    for se in acq.series:
        _set(se, "other", reason)
    acq.series = []


def _assign_aifs(aifs: list[Series], acqs: list[_Acquisition], study: Study) -> None:
    conds = {}
    for se in study.series:
        if se.role in ("stress", "rest"):
            conds.setdefault(se.role, []).append(se)

    def span(ss: list[Series]) -> tuple[float | None, float | None]:
        f = [s.first_time_s for s in ss if s.first_time_s is not None]
        last = [s.last_time_s for s in ss if s.last_time_s is not None]
        return (min(f) if f else None, max(last) if last else None)

    used: dict[str, Series] = {}
    for se in aifs:
        if se.condition is None:
            cond, kw = condition_keyword(se.text)
            reason = f"description also says '{kw}'" if cond else ""
            if cond is None and se.first_time_s is not None:
                best = None
                for c, ss in conds.items():
                    a, b = span(ss)
                    if a is None or b is None:
                        continue
                    gap = max(a - se.last_time_s, se.first_time_s - b, 0.0)  # type: ignore[operator]
                    if best is None or gap < best[0]:
                        best = (gap, c)
                if best is not None and best[0] < 60.0:
                    cond = best[1]
                    reason = f"acquired with the {cond} perfusion"
            if cond is None and len(conds) == 1:
                cond = next(iter(conds))
                reason = f"the only perfusion condition is {cond}"
            if cond is None:
                _set(se, "other", "AIF series that matches no stress or rest perfusion")
                continue
            _set(se, "aif", f"{se.role_reason}; {reason}", cond)
        if se.condition in used and not se.role_set_by_user:
            _set(se, "other", f"another AIF series was chosen for {se.condition}")
            continue
        used[se.condition] = se
