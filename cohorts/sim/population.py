"""Simulated MC-MED population: patients, visits, diagnosis codes and each visit's physiology.

Ground truth (written to ``truth.json``):

* Four phecodes change the waveform (``INJECTED``); the waveform sees each only at visits on or
  after the disease's onset. Their risk depends on age, sex and a shared cardiovascular factor.
* Every other phecode is drawn from age, sex and a latent health factor that is independent of
  the cardiovascular factor, so given age and sex it is independent of the waveform: any adjusted
  association there is a false discovery.
* Age stiffens the artery in everyone (simulated confounding: age-related diseases look
  "detectable" from PPG until age is adjusted for).
* ``hard=True`` breaks the easy assumptions that an analysis could share with this
  simulator: half of the background phecodes' risks follow age non-linearly (a sigmoid rise or
  a mid-life hump), the artery's "vascular age" saturates with age, a patient-level factor
  shared by all of a patient's stays moves heart rate and stiffness twice as much, 12% of
  patients are frequent visitors (6 visits on average), and 10% of monitored stays have no
  usable PPG: a sensor that keeps dropping out (8%; the cohort keeps the stay, with no valid
  window) or a record shorter than a window (2%; the cohort counts the stay as without PPG).
* ``race_effect > 0`` adds a confounder beyond age and sex: a race per patient (``Race``; 55%
  White, 20% Black, 15% Asian, 10% Other) that lowers the pulse amplitude of the Black group
  (x ``1 - 0.4 race_effect``, against the sensor's noise: a simulated stand-in for oximetry reading
  differently with skin pigmentation) and raises the risk of a fifth of the background phecodes in
  that group (logit + ``race_effect``). Those phecodes are null given age, sex and race, not
  given age and sex alone (``truth.json``'s ``race``).
* Phecodes tied to an injected one through the map (rollup ancestors, or exclusion ranges that
  name an injected phecode) are listed as ``related`` and left out of both groups.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from cohorts.phecodes import load_phecode_map
from phewas.base.settings import check_settings, setting

# field: the Physiology attribute the disease drives; effect: its size at a diseased visit.
INJECTED = {
    "427.21": {"field": "af", "effect": 1.0, "prevalence": 0.06, "age": 1.0,
               "what": "irregularly irregular beat intervals, pulse amplitude following the "
                       "preceding interval, no P wave, fibrillatory ECG baseline"},
    "428.1": {"field": "hf", "effect": 0.8, "prevalence": 0.045, "age": 0.9,
              "what": "heart rate +12 bpm x effect, pulse amplitude -45%, narrower systolic wave, "
                      "weaker dicrotic wave, pulsus alternans"},
    "401.1": {"field": "stiffness", "effect": 0.7, "prevalence": 0.25, "age": 0.8,
              "what": "arterial stiffness +1.5 x effect: earlier, larger reflected wave, weaker "
                      "dicrotic notch"},
    "285": {"field": "anemia", "effect": 0.7, "prevalence": 0.07, "age": 0.3,
            "what": "heart rate +15 bpm x effect, hyperdynamic pulse (+20% amplitude)"},
}
RACES, RACE_SHARES = np.array(["White", "Black", "Asian", "Other"]), [0.55, 0.2, 0.15, 0.1]
RACE_GROUP = "Black"  # the simulated race effects act in this group
RACE_PHECODES = 0.2  # share of background phecodes whose risk the race raises


def race_phecodes(cfg, background: list[str]) -> list[str]:
    """The background phecodes whose risk the simulated race raises (none without race_effect)."""
    if cfg.race_effect <= 0:
        return []
    pick = np.random.default_rng([cfg.seed if cfg.world_seed is None else cfg.world_seed, 2])
    return sorted(pick.choice(background, size=int(round(RACE_PHECODES * len(background))), replace=False))


ACUTE_CHAPTERS = {"symptoms", "injuries & poisonings", "infectious diseases"}
UNMAPPED_ICD10 = ["U07.1", "Z99.999", "XX1"]
VISIT_COLUMNS = [
    "MRN", "CSN", "Visit_no", "Visits", "Age", "Gender", "Race", "Ethnicity", "Means_of_arrival",
    "Triage_Temp", "Triage_HR", "Triage_RR", "Triage_SpO2", "Triage_SBP", "Triage_DBP",
    "Triage_acuity", "CC", "ED_dispo", "Hours_to_next_visit", "Dispo_class_next_visit", "ED_LOS",
    "Hosp_LOS", "DC_dispo", "Payor_class", "Admit_service", "Dx_ICD9", "Dx_ICD10", "Dx_name",
    "Arrival_time", "Roomed_time", "Dispo_time", "Admit_time", "Departure_time",
]
EPOCH = dt.datetime(1970, 1, 1)
DAY = 86400


# the knobs of the harder population, against the standard one's
STANDARD = {"age_shapes": 0.0, "vascular_age": "linear", "patient_sd": 1.0, "frequent_visitors": 0.0,
            "unusable_ppg": 0.0}
HARD = {"age_shapes": 0.5, "vascular_age": "saturating", "patient_sd": 2.0, "frequent_visitors": 0.12,
        "unusable_ppg": 0.10}


@dataclass
class PopulationConfig:
    """Settings of ``simulate``: fields with help text are flags of the same name, every field a
    key of ``run-all``'s ``[simulate]`` table."""

    patients: int = setting(2000, "patients to simulate")
    seed: int = setting(0, "seed of the patients, their visits and waveforms")
    # phecode-level parameters (which background phecodes, their prevalence, age and sex risk)
    # from this seed instead of ``seed``: replicate studies of one disease world, and a large
    # reference population of it (bench_fdr's true AUCs). None: the patients' seed draws them too.
    world_seed: int | None = setting(None, "draw the phecodes' parameters from this seed (replicate studies "
                                     "of one disease world)")
    minutes: float = setting(4.0, "monitored minutes per visit")
    n_background: int = 250
    noise_codes_per_patient: float = 3.0
    # capped at 0.5; recorded in truth.json
    injected_prevalence_scale: float = setting(1.0, "multiply the injected phecodes' prevalences (small "
                                               "test studies)")
    # patterns of real rows that the labels must handle: the share of history rows
    # without a date, and of revisits on the same calendar day. Visits are dual-coded (ICD-9 and
    # ICD-10 of one disease) 60% of the time, and 12% of chronic diseases have no history row,
    # first seen when a visit codes them.
    undated_history: float = 0.03
    same_day_revisits: float = 0.06
    # the harder population: ``hard`` gives each knob left None its HARD value, else STANDARD's
    hard: bool = setting(False, "the harder population: non-linear age risks, saturating vascular age, a "
                         "stronger patient factor, frequent visitors, stays without usable PPG")
    age_shapes: float | None = None  # share of background phecodes with non-linear age risk
    vascular_age: str | None = None  # "linear" or "saturating" stiffness with age
    patient_sd: float | None = None  # scale of the per-patient heart rate and stiffness offsets
    frequent_visitors: float | None = None  # share of patients with 6 visits on average
    unusable_ppg: float | None = None  # share of monitored stays without a usable PPG window
    race_effect: float = setting(0.0, "simulate a race that lowers the pulse amplitude in one group and "
                                 "raises some phecodes' risk there (a confounder beyond age and sex); 0: off")

    def __post_init__(self):
        for key, value in (HARD if self.hard else STANDARD).items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        check_settings(
            self,
            (self.patients >= 1, "patients", "at least 1"),
            (self.minutes > 0, "minutes", "more than 0"),
            (self.n_background >= 0, "n_background", "0 or more"),
            (self.noise_codes_per_patient >= 0, "noise_codes_per_patient", "0 or more"),
            (self.injected_prevalence_scale > 0, "injected_prevalence_scale", "more than 0"),
            (0 <= self.undated_history <= 1, "undated_history", "a share between 0 and 1"),
            (0 <= self.same_day_revisits <= 1, "same_day_revisits", "a share between 0 and 1"),
            (0 <= self.age_shapes <= 1, "age_shapes", "a share between 0 and 1"),
            (self.vascular_age in ("linear", "saturating"), "vascular_age", "linear or saturating"),
            (self.patient_sd >= 0, "patient_sd", "0 or more"),
            (0 <= self.frequent_visitors <= 1, "frequent_visitors", "a share between 0 and 1"),
            (0 <= self.unusable_ppg <= 1, "unusable_ppg", "a share between 0 and 1"),
            (0 <= self.race_effect <= 2, "race_effect", "between 0 and 2"),
        )


def _logit(p):
    return np.log(p / (1 - p))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _iso(seconds: np.ndarray, with_ms=None) -> list[str]:
    """Seconds since 1970 (float) to ISO-8601 with ``Z``; numpy copes with years past 2262."""
    us = np.round(np.asarray(seconds) * 1e6).astype("int64").astype("datetime64[us]")
    text = np.datetime_as_string(us, unit="s") if with_ms is None else np.datetime_as_string(us, unit="ms")
    return [t + "Z" for t in text]


def code_tables(pmap=None):
    """Per leaf phecode, the ICD-9 and ICD-10 codes whose own phecode it is."""
    pmap = pmap or load_phecode_map()
    from cohorts.phecodes import map_path
    raw = pl.read_csv(map_path(), infer_schema_length=0).filter(
        pl.col("phecode") == pl.col("phecode_unrolled"))
    by = raw.group_by("phecode", "flag").agg(pl.col("ICD").unique().sort())
    out: dict = {}
    for phe, flag, codes in by.iter_rows():
        out.setdefault(phe, {})[flag] = codes
    return out


def related_phecodes(pmap) -> set[str]:
    """Phecodes tied to an injected one by rollup (ancestors) or by an exclusion range."""
    lineage = set()
    icd = pmap.icd
    for phe in INJECTED:
        codes = icd.filter(pl.col("phecode") == phe).select("system", "code")
        lineage |= set(icd.join(codes, on=["system", "code"])["phecode"].to_list())
    related = set(lineage)
    for phe, rng in pmap.phecodes.select("phecode", "exclude_range").iter_rows():
        rng = set(rng or ())
        if lineage & rng:
            related.add(phe)
        if phe in lineage:
            related |= rng
    return related - set(INJECTED)


def _variant(code: str, u: float, undotted_share: float) -> str:
    """Real-world spellings: dotted or not, mixed case, stray spaces."""
    if u < undotted_share:
        code = code.replace(".", "")
    elif u > 0.97:
        code = f" {code} "
    if 0.9 < u <= 0.97:
        code = code.lower()
    return code


def _age_shapes(age: np.ndarray, phecodes: list[str], share: float, rng: np.random.Generator):
    """Non-linear age terms (logit scale) for a ``share`` of ``phecodes``: half a sigmoid rise
    (onset in later life), half a mid-life hump. Returns ``(shaped [phecodes], term [patients,
    phecodes], {phecode: shape})``."""
    k = len(phecodes)
    shaped, hump = rng.random(k) < share, rng.random(k) < 0.5
    amp = rng.uniform(2.0, 3.5, k)
    centre = np.where(hump, rng.uniform(30, 55, k), rng.uniform(50, 75, k))
    width = np.where(hump, rng.uniform(6, 12, k), rng.uniform(3, 7, k))
    z = (age[:, None] - centre[None, :]) / width[None, :]
    term = amp * np.where(hump, np.exp(-0.5 * z**2) - 0.3, _sigmoid(z) - 0.5)
    shapes = {p: {"shape": "hump" if h else "sigmoid", "centre": round(float(c), 1),
                  "width": round(float(w), 1), "amplitude": round(float(a), 2)}
              for p, s_, h, c, w, a in zip(phecodes, shaped, hump, centre, width, amp) if s_}
    return shaped, term, shapes


@dataclass
class _People:
    """Per-patient draws: sex, age at the first visit, latent factors, visits, first arrival."""

    sex: np.ndarray
    age0: np.ndarray
    z_age: np.ndarray
    health: np.ndarray  # latent factor shared by background phecodes
    cardio: np.ndarray  # independent factor shared by the injected phecodes
    n_visits: np.ndarray
    first: np.ndarray
    sync_prop: np.ndarray
    mrn: np.ndarray
    race: np.ndarray | None = None  # with race_effect only


def _choose_phecodes(cfg: PopulationConfig, world, codes, info, related) -> tuple[list[str], list[str]]:
    """The world's background (chronic) and acute phecodes."""
    usable = [p for p, c in codes.items()
              if p not in related and p not in INJECTED and "9" in c and "10" in c]
    acute_pool = sorted(p for p in usable if info[p]["chapter"] in ACUTE_CHAPTERS)
    chronic_pool = sorted(p for p in usable if info[p]["chapter"] not in ACUTE_CHAPTERS)
    sex_specific = [p for p in chronic_pool if info[p]["sex"] != "Both"]
    chosen = list(world.choice(sex_specific, size=min(10, len(sex_specific)), replace=False))
    rest = [p for p in chronic_pool if p not in chosen]
    chosen += list(world.choice(rest, size=min(cfg.n_background, len(rest)), replace=False))
    background = sorted(chosen)
    acute = list(world.choice(acute_pool, size=min(80, len(acute_pool)), replace=False))

    return background, acute


def _patients(cfg: PopulationConfig, rng) -> _People:
    n = cfg.patients
    sex = rng.choice(np.array(["F", "M", "U"]), size=n, p=[0.53, 0.465, 0.005])
    age0 = np.clip(rng.normal(52, 19, n), 18, 95)
    z_age = (age0 - 52) / 19
    health = rng.normal(size=n)
    cardio = rng.normal(size=n)
    n_visits = np.minimum(1 + rng.geometric(0.55, n) - 1, 8)
    if cfg.frequent_visitors > 0:  # the emergency department's frequent visitors
        frequent = rng.random(n) < cfg.frequent_visitors
        n_visits = np.where(frequent, np.minimum(1 + rng.geometric(0.2, n), 20), n_visits)
    base_year = rng.uniform(2150, 2290, n)
    first = (np.array([(dt.datetime(int(y), 1, 1) - EPOCH).total_seconds() for y in base_year])
             + rng.uniform(0, 365 * DAY, n))
    sync_prop = np.where(rng.random(n) < 0.7, 0.62, 0.04)
    mrn = rng.choice(np.arange(1_000_000, 9_999_999), size=n, replace=False)

    race = None
    if cfg.race_effect > 0:  # its own stream: the other draws stay those of race_effect = 0
        race = np.random.default_rng([cfg.seed, 1]).choice(RACES, size=n, p=RACE_SHARES)
    return _People(sex, age0, z_age, health, cardio, n_visits, first, sync_prop, mrn, race)


def _diseases(cfg: PopulationConfig, rng, world, people: _People, names: list[str], info):
    """Presence and onset per (patient, phecode): risk from age (linear or shaped), sex and a
    latent factor. Returns ``(present, onset, age shapes)``."""
    background = names[len(INJECTED):]
    sex, age0, z_age, first, n_visits = people.sex, people.age0, people.z_age, people.first, people.n_visits
    cardio, health = people.cardio, people.health
    prev = np.array([min(0.5, INJECTED[p]["prevalence"] * cfg.injected_prevalence_scale) for p in INJECTED]
                    + list(np.exp(world.uniform(np.log(0.004), np.log(0.15), len(background)))))
    age_slope = np.array([INJECTED[p]["age"] for p in INJECTED]
                         + list(world.normal(0.4, 0.5, len(background))))
    sex_eff = world.normal(0, 0.3, len(names))
    latent = np.concatenate([np.full(len(INJECTED), 0.6), np.zeros(len(background))])[None, :] * cardio[:, None] \
        + np.concatenate([np.zeros(len(INJECTED)), np.full(len(background), 0.7)])[None, :] * health[:, None]
    age_risk = age_slope[None, :] * z_age[:, None]
    shapes = {}
    if cfg.age_shapes > 0:  # these replace the linear slope
        shaped, term, shapes = _age_shapes(age0, background, cfg.age_shapes, world)
        age_risk[:, len(INJECTED) + np.flatnonzero(shaped)] = term[:, shaped]
    logit = (_logit(prev)[None, :] + age_risk
             + sex_eff[None, :] * np.where(sex == "F", 0.5, -0.5)[:, None] + latent)
    if people.race is not None:
        raised = np.isin(names, race_phecodes(cfg, background))
        logit += cfg.race_effect * np.outer(people.race == RACE_GROUP, raised)
    present = rng.random(logit.shape) < _sigmoid(logit)
    rules = np.array([info[p]["sex"] for p in names])
    present &= ~((rules == "F")[None, :] & (sex != "F")[:, None])
    present &= ~((rules == "M")[None, :] & (sex != "M")[:, None])
    span = (n_visits - 1) * 120.0 * DAY
    before = rng.random(present.shape) < 0.8
    onset = np.where(before, first[:, None] - rng.exponential(3 * 365 * DAY, present.shape),
                     first[:, None] + rng.uniform(0, 1, present.shape) * (span[:, None] + 180 * DAY))
    return present, onset, shapes


def _history_rows(cfg: PopulationConfig, rng, i: int, has, names, onset, people: _People, codes, info,
                  acute, background) -> list[tuple]:
    """One patient's history rows: chronic diseases (some never recorded, some first seen at a
    visit), stray codes of other phecodes, and now and then an unmapped code."""
    mrn, sex, first = people.mrn, people.sex, people.first
    pmh_rows = []
    for j in has:  # history, mostly undotted ICD-10, some ICD-9 (older records)
        phe = names[j]
        u = rng.random()
        if u > 0.92:
            continue  # never recorded: the waveform still shows it
        if u > 0.80:
            continue  # no history row: first seen when a visit codes it (below)
        n_rows = 1 + int(rng.random() < 0.4)
        for k in range(n_rows):
            noted = onset[i, j] + (0 if k == 0 else rng.uniform(0, 400) * DAY)
            system = "9" if rng.random() < 0.15 else "10"
            code = str(rng.choice(codes[phe][system]))
            if rng.random() < cfg.undated_history:
                noted = np.nan  # real exports hold history rows without a date
            pmh_rows.append((str(mrn[i]), noted, "Dx9" if system == "9" else "Dx10",
                             _variant(code, rng.random(), 0.7), info[phe]["description"]))
    for _ in range(rng.poisson(cfg.noise_codes_per_patient)):
        phe = acute[int(rng.integers(len(acute)))] if rng.random() < 0.5 else \
            background[int(rng.integers(len(background)))]
        if info[phe]["sex"] not in ("Both", sex[i]):
            continue
        pmh_rows.append((str(mrn[i]), first[i] + rng.uniform(-5 * 365, 2 * 365) * DAY, "Dx10",
                         _variant(str(rng.choice(codes[phe]["10"])), rng.random(), 0.7),
                         info[phe]["description"]))
    if rng.random() < 0.1:
        pmh_rows.append((str(mrn[i]), first[i] - 30 * DAY, "Dx10", rng.choice(UNMAPPED_ICD10), ""))
    return pmh_rows


def _visits(cfg: PopulationConfig, rng, i: int, has, names, onset, people: _People, codes, info, acute,
            csn_next: int) -> tuple[list[dict], list[dict], int]:
    """One patient's visit rows and waveform plans; returns them and the next free CSN."""
    mrn, sex, first, age0, n_visits, sync_prop = (people.mrn, people.sex, people.first, people.age0,
                                                  people.n_visits, people.sync_prop)
    visit_rows, plans = [], []
    gaps = rng.exponential(120 * DAY, n_visits[i] - 1) + DAY
    same_day = rng.random(n_visits[i] - 1) < cfg.same_day_revisits
    gaps[same_day] = rng.uniform(1, 6, same_day.sum()) * 3600  # back within hours
    arrivals = first[i] + np.concatenate([[0], np.cumsum(gaps)])
    arrivals = np.floor(arrivals)
    hr_patient = rng.normal(0, 7 * cfg.patient_sd)  # the patient-level factor of all stays
    stiff_patient = rng.normal(0, 0.2 * cfg.patient_sd)
    for v, arrival in enumerate(arrivals):
        csn = csn_next
        csn_next += int(rng.integers(1, 50))
        age_v = int(np.clip(round(age0[i] + (arrival - first[i]) / (365.25 * DAY) + rng.integers(-2, 3)),
                            18, 90))
        active = {names[j]: onset[i, j] <= arrival for j in has}
        eff = {INJECTED[p]["field"]: INJECTED[p]["effect"] if active.get(p) else 0.0 for p in INJECTED}
        # visit diagnosis: an active chronic disease, or an acute problem
        chronic_active = [p for p, a in active.items() if a]
        if chronic_active and rng.random() < 0.3:
            phe = chronic_active[int(rng.integers(len(chronic_active)))]
        else:
            phe = acute[min(int(rng.zipf(1.6)) - 1, len(acute) - 1)]
        dx10 = [str(rng.choice(codes[phe]["10"]))]
        dx9 = [str(rng.choice(codes[phe]["9"]))]
        if rng.random() < 0.15:
            extra = acute[int(rng.integers(len(acute)))]
            dx10.append(str(rng.choice(codes[extra]["10"])))
            dx9.append(str(rng.choice(codes[extra]["9"])))
        if rng.random() < 0.01:
            dx10.append(str(rng.choice(UNMAPPED_ICD10)))
        u = rng.random()
        cell10 = ", ".join(_variant(c, u, 0.1) for c in dx10)
        cell9 = ", ".join(_variant(c, u, 0.1) for c in dx9) if rng.random() < 0.6 else ""
        hr = (72 + 3 * (sex[i] == "F") - 0.08 * (age_v - 50) + hr_patient + rng.normal(0, 4)
              + 12 * eff["hf"] + 15 * eff["anemia"] + 8 * eff["af"])
        vascular = (age_v - 50) / 25 if cfg.vascular_age == "linear" else 1.4 * np.tanh((age_v - 45) / 12)
        stiffness = vascular + 1.5 * eff["stiffness"] + stiff_patient
        roomed = arrival + rng.uniform(5, 90) * 60
        los = rng.uniform(2, 12) * 3600
        admit = rng.random() < 0.3
        sbp = 125 + 0.4 * (age_v - 50) + 15 * eff["stiffness"] + rng.normal(0, 15)
        race = rng.choice(["White", "Asian", "Black", "Other"])  # drawn either way: the same stream after it
        if people.race is not None:
            race = people.race[i]
        visit_rows.append({
            "MRN": str(mrn[i]), "CSN": str(csn), "Visit_no": v + 1, "Visits": int(n_visits[i]),
            "Age": age_v, "Gender": sex[i], "Race": race,
            "Ethnicity": rng.choice(["Non-Hispanic", "Hispanic"]),
            "Means_of_arrival": rng.choice(["Walk-in", "Ambulance"]),
            "Triage_Temp": round(rng.normal(36.9, 0.5), 1), "Triage_HR": int(round(hr)),
            "Triage_RR": int(rng.integers(12, 24)), "Triage_SpO2": int(rng.integers(92, 101)),
            "Triage_SBP": int(round(sbp)), "Triage_DBP": int(round(sbp * 0.6)),
            "Triage_acuity": rng.choice(["2-Emergent", "3-Urgent", "4-Semi-Urgent"]),
            "CC": info[phe]["description"], "ED_dispo": "Admit" if admit else "Discharge",
            "Hours_to_next_visit": None, "Dispo_class_next_visit": None,
            "ED_LOS": round(los / 3600, 2), "Hosp_LOS": round(rng.uniform(1, 6), 1) if admit else None,
            "DC_dispo": "Home", "Payor_class": rng.choice(["Commercial", "Medicare", "Medicaid"]),
            "Admit_service": "Medicine" if admit else None,
            "Dx_ICD9": cell9, "Dx_ICD10": cell10, "Dx_name": info[phe]["description"],
            "_arrival": arrival, "_roomed": roomed, "_dispo": roomed + los * 0.8,
            "_departure": roomed + los,
        })
        u = rng.random()
        modality = ("none" if u < 0.08 else "ppg_only" if rng.random() > sync_prop[i]
                    else rng.choice(["sync", "partial", "nonoverlap"], p=[0.88, 0.06, 0.06]))
        if modality != "none":
            unusable = None
            if cfg.unusable_ppg > 0 and rng.random() < cfg.unusable_ppg:
                unusable = "short" if rng.random() < 0.2 else "dropout"
            plans.append({
                "csn": str(csn), "modality": str(modality),
                "origin": float(np.floor(roomed + rng.uniform(60, 1800))),
                "ms_headers": bool(rng.random() < 0.5),
                "seconds": float(cfg.minutes * 60 * rng.uniform(0.85, 1.25)),
                "phys": {"hr": float(np.clip(hr, 40, 160)), "resp_hz": float(rng.uniform(0.2, 0.33)),
                         "af": eff["af"], "hf": eff["hf"], "anemia": eff["anemia"],
                         "stiffness": float(stiffness), "ptt": float(0.24 - 0.02 * stiffness),
                         **({} if people.race is None else
                            {"amplitude": 1.0 - 0.4 * cfg.race_effect * (people.race[i] == RACE_GROUP)})},
                "seed": int(rng.integers(2**62)),
                "unusable": unusable,
            })
    return visit_rows, plans, csn_next


def simulate_population(cfg: PopulationConfig):
    """Return ``(visits, pmh, plans, truth)``; ``plans`` has one dict per visit with waveforms."""
    rng = np.random.default_rng(cfg.seed)
    world = rng if cfg.world_seed is None else np.random.default_rng(cfg.world_seed)
    pmap = load_phecode_map()
    codes = code_tables(pmap)
    info = {r["phecode"]: r for r in pmap.phecodes.select("phecode", "description", "chapter", "sex")
            .iter_rows(named=True)}
    related = related_phecodes(pmap)
    background, acute = _choose_phecodes(cfg, world, codes, info, related)
    people = _patients(cfg, rng)
    n = cfg.patients
    names = list(INJECTED) + background
    present, onset, shapes = _diseases(cfg, rng, world, people, names, info)

    visit_rows, pmh_rows, plans = [], [], []
    csn_next = int(rng.integers(10_000_000, 20_000_000))
    for i in range(n):
        has = np.flatnonzero(present[i])
        pmh_rows += _history_rows(cfg, rng, i, has, names, onset, people, codes, info, acute, background)
        rows, visit_plans, csn_next = _visits(cfg, rng, i, has, names, onset, people, codes, info, acute, csn_next)
        visit_rows += rows
        plans += visit_plans

    visits = pl.DataFrame(visit_rows, infer_schema_length=None)
    visits = visits.with_columns(
        Arrival_time=pl.Series(_iso(visits["_arrival"].to_numpy())),
        Roomed_time=pl.Series(_iso(visits["_roomed"].to_numpy())),
        Dispo_time=pl.Series(_iso(visits["_dispo"].to_numpy())),
        Departure_time=pl.Series(_iso(visits["_departure"].to_numpy())),
        Admit_time=pl.when(pl.col("ED_dispo") == "Admit").then(
            pl.Series(_iso(visits["_dispo"].to_numpy()))),
    ).with_columns(
        Hours_to_next_visit=((pl.col("_arrival").shift(-1).over("MRN") - pl.col("_arrival")) / 3600).round(1),
    ).select(VISIT_COLUMNS)
    pmh = pl.DataFrame(pmh_rows, schema=["MRN", "_noted", "CodeType", "Code", "Desc10"], orient="row")
    noted = pmh["_noted"].to_numpy()
    dated = np.isfinite(noted)
    noted_text = np.full(len(noted), None, dtype=object)
    noted_text[dated] = _iso(np.floor(noted[dated] / DAY) * DAY)
    pmh = pmh.with_columns(
        Noted_date=pl.Series(noted_text, dtype=pl.String),
        CCS=pl.lit(None, pl.String), DescCCS=pl.lit(None, pl.String),
    ).select("MRN", "Noted_date", "CodeType", "Code", "Desc10", "CCS", "DescCCS")

    truth = {
        "injected": {p: v["effect"] for p, v in INJECTED.items()},
        "effects": {p: {"description": info[p]["description"], "waveform": v["what"],
                        "prevalence": min(0.5, v["prevalence"] * cfg.injected_prevalence_scale)}
                    for p, v in INJECTED.items()},
        "related": sorted(related),
        "background": background,
        "acute": sorted(acute),
        "confounders": {"age": ("arterial stiffness +1 per 25 years (earlier reflected wave); "
                                if cfg.vascular_age == "linear" else
                                "arterial stiffness 1.4 tanh((age - 45) / 12), saturating (earlier "
                                "reflected wave); ") + "heart rate -0.08 bpm per year",
                        "sex": "heart rate +3 bpm in women"},
        "null_given_age_sex": "every phecode outside injected and related is independent of the "
                              "waveform given age and sex",
        "seed": cfg.seed,
        "world_seed": cfg.world_seed,
        "patients": n,
        "hard": {k: getattr(cfg, k) for k in HARD},
        "age_shapes": shapes,
        "race": None if people.race is None else {
            "effect": cfg.race_effect, "group": RACE_GROUP, "phecodes": race_phecodes(cfg, background),
            "what": f"pulse amplitude x {1 - 0.4 * cfg.race_effect:g} and the listed phecodes' risk logit "
                    f"+ {cfg.race_effect:g} in the {RACE_GROUP} group: null given age, sex and race"},
    }
    return visits, pmh, plans, truth
