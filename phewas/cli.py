"""The ``phewas`` command line. Only this module prints and exits.

Each command's settings are flags generated from its config dataclass (:mod:`phewas.settings`);
the flags written here by hand name inputs, outputs and how to run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# polars' allocator (jemalloc) keeps freed pages for seconds by default; at MC-MED scale that
# holds hundreds of MB of dead tables at build-cohort's peak (1.2 GB instead of 1.0 GB, about 10%
# faster). Set before polars is first imported; a user's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

from .errors import PhewasError
from .progress import set_quiet
from .settings import add_flags, from_args

log = logging.getLogger("phewas")
TRAIN_EXTRA = ("torch", "safetensors", "tensorboard")  # `pip install phewas[train]`


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")


def cmd_simulate(a) -> None:
    from .sim import PopulationConfig, simulate_dataset
    cfg = PopulationConfig(**from_args(a, PopulationConfig))
    m = simulate_dataset(a.out, cfg, workers=a.workers, overwrite=a.force)
    c = m["counts"]
    log.info("simulated %d patients, %d visits (%d with waveforms) in %s", c["patients"], c["visits"],
             c["visits_with_waveforms"], a.out)


def cmd_build_cohort(a) -> None:
    from cohorts import CohortConfig, build_cohort
    cfg = CohortConfig(**from_args(a, CohortConfig))
    m = build_cohort(a.data, a.out, cfg, columns_file=a.columns, overwrite=a.force)
    c = m["counts"]
    log.info("cohort %s: %d visits, %d patients; stays by split %s; %d unmapped code occurrences; "
             "patients shared between held-out and pretraining: %d", a.out, c["visits"], c["patients"],
             c["stays_by_split"], m["unmapped_codes"]["total"], m["patients_shared_heldout_pretrain"])


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n, e.g. 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def cmd_extract_segments(a) -> None:
    from cohorts import SegmentConfig, extract_segments, merge_shards
    if a.merge:
        m = merge_shards(a.cohort, a.merge, overwrite=a.force)
    else:
        if a.data is None:
            raise PhewasError("--data is required unless --merge is given")
        cfg = SegmentConfig(**from_args(a, SegmentConfig))
        m = extract_segments(a.data, a.cohort, cfg, shard=a.shard, workers=a.workers, overwrite=a.force)
    c = m["counts"]
    state = "up to date" if m.get("up_to_date") else "written"
    log.info("segment store %s: %d stays, %d PPG windows (%d stays without a valid window, %d short of "
             "--per-stay), %d PPG-ECG pairs, %d unreadable records skipped", state, c["stays"], c["ppg_windows"],
             c["stays_without_windows"], c["stays_short_of_per_stay"], c["pairs"], c["bad_records"]["count"])


def cmd_report(a) -> None:
    from reports.report import ReportConfig, make_report
    cfg = ReportConfig(**from_args(a, ReportConfig))
    s = make_report(a.cohort, a.predictions, a.out, cfg, overwrite=a.force)
    log.info("report %s: %d phenotypes, AUC >= %s; %d significant beyond age and sex (FDR %g); open %s",
             a.out, s["n_phenotypes"], s["auc_at_least"], s["n_fdr_significant"], a.alpha, a.out / "index.html")


def cmd_compare(a) -> None:
    from reports.compare import CompareConfig, compare
    cfg = CompareConfig(**from_args(a, CompareConfig))
    s = compare(a.cohort, a.predictions, a.out, names=a.names, config=cfg, overwrite=a.force)
    for p in s["pairs"]:
        log.info("%s vs %s: %d phenotypes, mean AUC %.3f vs %.3f; significantly better (FDR %g): %d vs %d",
                 p["model_a"], p["model_b"], p["n_phenotypes"], p["mean_auc_a"], p["mean_auc_b"], cfg.alpha,
                 p["n_a_better"], p["n_b_better"])
    log.info("open %s", a.out / "index.html")


def cmd_features(a) -> None:
    from encoder.baseline import FeaturesConfig, pulse_baseline
    from reports.report import heart_rate_report
    cfg = FeaturesConfig(**from_args(a, FeaturesConfig))
    m = pulse_baseline(a.cohort, a.out, cfg, overwrite=a.force)
    c = m["counts"]
    log.info("pulse-feature baseline: %d phecodes fitted on %d training stays; %d %s stays predicted (%d without "
             "a valid window got the training prevalence): %s", c["models_fitted"], c["training_stays"], c["stays"],
             cfg.split, c["stays_without_windows_given_prior"], a.out / "predictions.parquet")
    s = heart_rate_report(a.cohort, a.out, cfg.split, a.min_positives)
    log.info("heart rate alone: %d phenotypes, AUC >= %s: %s", s["n_phenotypes"], s["auc_at_least"],
             a.out / "heart_rate_report" / "index.html")


def cmd_probe(a) -> None:
    from reports.probe import ProbeConfig, probe
    cfg = ProbeConfig(**from_args(a, ProbeConfig))
    s = probe(a.dataset, [str(e) for e in a.encoder], a.out, names=a.names, config=cfg, overwrite=a.force)
    log.info("probed %d encoders on %d tasks of %s (%d examples, split %s): %s", len(s["encoders"]), len(s["tasks"]),
             s["dataset"], s["examples"], s["split"], a.out / "probe.csv")


def cmd_simulate_probe(a) -> None:
    from .sim.probe import simulate_probe_dataset
    m = simulate_probe_dataset(a.out, subjects=a.subjects, records_per_subject=a.records_per_subject,
                               seed=a.seed, overwrite=a.force)
    log.info("simulated probe dataset: %d records in %s", m["counts"]["records"], a.out)


def cmd_convert_dataset(a) -> None:
    from cohorts.probe_convert import convert_dataset
    m = convert_dataset(a.format, a.source, a.out, overwrite=a.force)
    log.info("converted %s: %s examples in %s", a.format, m["counts"]["examples"], a.out)


def _net_config(path):
    if path is None:
        return None
    import json

    from encoder.config import Net1DConfig
    try:
        return Net1DConfig.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise PhewasError(f"{path}: not a Net1D configuration ({err})") from None


def cmd_pretrain(a) -> None:
    from encoder.config import PretrainConfig, pretrain_config
    from encoder.pretrain import pretrain
    cfg = pretrain_config(a.preset, ppg=_net_config(a.ppg_config), ecg=_net_config(a.ecg_config),
                      **from_args(a, PretrainConfig))
    s = pretrain(a.cohort, a.out, cfg, resume=a.resume, overwrite=a.force, stop_after_steps=a.stop_after_steps)
    if not s.get("main", True):  # other torchrun ranks: rank 0 reports
        return
    if not s["finished"]:
        log.info("stopped at step %d of %d; continue with --resume", s["step"], cfg.steps)
        return
    r = s["retrieval"]
    log.info("pretrained %d steps; PPG-to-ECG retrieval on pretrain_test (batches of %d): R@1 %.3f (chance %.3f), "
             "R@5 %.3f, R@10 %.3f, MRR %.3f; encoder in %s", s["step"], r["batch_size"], r["recall@1"],
             r["chance_recall@1"], r["recall@5"], r["recall@10"], r["mrr"], a.out / "ppg_encoder.pth")


def cmd_finetune(a) -> None:
    from encoder.config import FinetuneConfig, finetune_config
    from encoder.finetune import finetune
    cfg = finetune_config(a.preset, ppg=_net_config(a.ppg_config), **from_args(a, FinetuneConfig))
    s = finetune(a.cohort, a.out, cfg, resume=a.resume, overwrite=a.force, stop_after_steps=a.stop_after_steps)
    if not s.get("main", True):
        return
    if not s["finished"]:
        log.info("stopped at step %d; continue with --resume", s["step"])
        return
    log.info("fine-tuned %d phecodes (%s); best validation macro AUC %.3f at %.0f windows/s; run %s",
             s["targets"], s["init"], s["best_val_macro_auc"], s["windows_per_s_last_session"], a.out)


def cmd_predict(a) -> None:
    from encoder.predict import predict
    m = predict(a.run, a.cohort, a.split, device=a.device, batch=a.batch_size, overwrite=a.force,
                allow_unfinished=a.allow_unfinished)
    log.info("predicted %d phecodes for %d %s stays (%d without a valid window got the training prevalence): %s",
             m["phecodes"], m["stays"], a.split, m["stays_without_windows_given_prior"], a.run / "predictions.parquet")


def cmd_run_all(a) -> None:
    from .run_all import run_all
    out = run_all(a.config, force=a.force)
    s = out["summary"]
    log.info("stage seconds: %s", out["seconds"])
    log.info("%d phenotypes; AUC >= %s; %d significant beyond age and sex (FDR)", s["n_phenotypes"],
             s["auc_at_least"], s["n_fdr_significant"])
    t = out.get("truth_check")
    if t:
        log.info("ground truth (simulated): %d of %d injected phecodes recovered; %d of %d null phecodes significant "
                 "(false discovery proportion %.3f); null mean AUC %.3f vs age+sex alone %.3f",
                 t["n_injected_recovered"], len(t["injected"]), t["n_null_significant"], t["n_null_phecodes"],
                 t["false_discovery_proportion"], t["null_mean_auc"], t["null_mean_auc_age_sex"])
    for name, check in out.get("model_truth_checks", {}).items():
        log.info("ground truth, model %s: %d of %d injected phecodes recovered; %d of %d null phecodes significant",
                 name, check["n_injected_recovered"], len(check["injected"]), check["n_null_significant"],
                 check["n_null_phecodes"])
    for p in out.get("compare", []):
        log.info("compare %s vs %s: %d phenotypes; significantly better (FDR): %d vs %d", p["model_a"], p["model_b"],
                 p["n_phenotypes"], p["n_a_better"], p["n_b_better"])
    print(f"report: {out['report']}")
    if "compare" in out:
        print(f"compare: {Path(out['report']).parent.parent / 'compare' / 'index.html'}")


def _training_flags(p, cls) -> None:
    """Flags of pretrain and finetune: the run, then the config's settings (None: the preset's)."""
    p.add_argument("--cohort", type=Path, required=True, help="cohort folder with its segment store")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--preset", choices=("study", "demo"), default="study",
                   help="study: the released encoders' size; demo: a narrow one for CPU runs")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from its last checkpoint")
    p.add_argument("--stop-after-steps", type=int, default=None,
                   help="end this invocation after N steps (resume later), for time-limited jobs")
    p.add_argument("--ppg-config", type=Path, help="JSON of Net1D settings for the PPG encoder")
    add_flags(p, cls, preset=True)


def build_parser() -> argparse.ArgumentParser:
    from cohorts.build import CohortConfig
    from cohorts.segments import SegmentConfig
    from cohorts.splits import SPLITS
    from encoder.baseline import FeaturesConfig
    from encoder.config import DEVICES, FinetuneConfig, PretrainConfig
    from cohorts.probe_convert import FORMATS
    from reports.compare import CompareConfig
    from reports.probe import ProbeConfig
    from reports.report import ReportConfig

    from .sim.population import PopulationConfig

    parser = argparse.ArgumentParser(
        prog="phewas", description="Phenome-wide disease detection from PPG: build an MC-MED cohort, "
        "pretrain and fine-tune the AnyPPG encoder, report AUCs per phecode. `phewas COMMAND --help` "
        "lists a command's flags.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a synthetic MC-MED-layout dataset with known truth")
    p.add_argument("--out", type=Path, required=True)
    add_flags(p, PopulationConfig)
    p.add_argument("--workers", type=int, default=None, help="processes writing waveforms (default: all cores)")
    _common(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("build-cohort", help="MC-MED tables + WFDB headers -> stays, phecode labels, splits")
    p.add_argument("--data", type=Path, required=True, help="MC-MED folder (visits.csv, pmh.csv, waveforms/)")
    p.add_argument("--out", type=Path, required=True, help="cohort folder to write")
    p.add_argument("--columns", type=Path, default=None, help="column map (TOML) for other column names")
    add_flags(p, CohortConfig)
    _common(p)
    p.set_defaults(func=cmd_build_cohort)

    p = sub.add_parser("extract-segments", help="preprocessed 10-s PPG windows (and PPG-ECG pairs) per stay")
    p.add_argument("--data", type=Path, help="MC-MED folder the cohort was built from")
    p.add_argument("--cohort", type=Path, required=True)
    add_flags(p, SegmentConfig)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: build one n-th of the stays")
    p.add_argument("--merge", type=int, metavar="N", default=0, help="join N finished shards into the store")
    _common(p)
    p.set_defaults(func=cmd_extract_segments)

    p = sub.add_parser("report", help="per-phenotype and per-chapter AUC, adjusted association, figures, HTML")
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True, help="predictions.parquet from `phewas predict`")
    p.add_argument("--out", type=Path, required=True)
    add_flags(p, ReportConfig)
    _common(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="two or more models' AUCs side by side per phenotype, with paired tests")
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--predictions", type=Path, nargs="+", required=True,
                   help="two or more predictions.parquet files (from predict or features)")
    p.add_argument("--names", nargs="+", default=None,
                   help="a name per predictions file (default: each file's folder name)")
    p.add_argument("--out", type=Path, required=True)
    add_flags(p, CompareConfig)
    _common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("features", help="pulse-feature baseline: classic PPG features per stay, logistic "
                       "regression per phecode with age and sex; predictions in predict's format")
    p.add_argument("--cohort", type=Path, required=True, help="cohort folder with its segment store")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    add_flags(p, FeaturesConfig)
    p.add_argument("--min-positives", type=int, default=100,
                   help="the heart-rate-only report's phecodes: at least this many positive and control stays")
    _common(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("probe", help="linear probes of frozen PPG encoders on a labelled PPG dataset")
    p.add_argument("--dataset", type=Path, required=True, help="a dataset folder (dataset.toml, labels.csv)")
    p.add_argument("--encoder", nargs="+", required=True,
                   help="pretraining or fine-tuning run folders, AnyPPG weights (.pth/.safetensors), or random")
    p.add_argument("--names", nargs="+", default=None, help="a name per encoder (default: folder or file name)")
    p.add_argument("--out", type=Path, required=True)
    add_flags(p, ProbeConfig)
    _common(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("simulate-probe", help="a simulated labelled PPG dataset (known rate and effects) "
                       "in the probe format")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--subjects", type=int, default=60)
    p.add_argument("--records-per-subject", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    _common(p)
    p.set_defaults(func=cmd_simulate_probe)

    p = sub.add_parser("convert-dataset", help="a public PPG dataset's own layout -> the probe format")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--source", type=Path, required=True, help="the dataset's folder as distributed")
    p.add_argument("--out", type=Path, required=True)
    _common(p)
    p.set_defaults(func=cmd_convert_dataset)

    p = sub.add_parser("pretrain", help="ECG-guided contrastive (CLIP) pretraining of the PPG encoder")
    _training_flags(p, PretrainConfig)
    p.add_argument("--ecg-config", type=Path, help="JSON of Net1D settings for the ECG encoder")
    _common(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("finetune", help="end-to-end multi-label fine-tuning over all phecodes")
    _training_flags(p, FinetuneConfig)
    _common(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("predict", help="probabilities per phecode for every stay of a split")
    p.add_argument("--run", type=Path, required=True, help="a finished `phewas finetune` run")
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--split", default="heldout", choices=SPLITS)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--batch-size", type=int, default=32, help="stays per forward pass")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="predict from a run stopped before its end (recorded in the predictions' manifest)")
    _common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("run-all", help="every stage from one TOML config, skipping what is up to date")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--force", action="store_true", help="rerun every stage")
    p.set_defaults(func=cmd_run_all)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    set_quiet(quiet)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    try:
        args.func(args)
    except PhewasError as err:
        print(f"phewas {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name not in TRAIN_EXTRA:
            raise
        print(f"phewas {args.command}: error: needs {err.name}, which is not installed: "
              "pip install 'phewas[train]' (install torch==2.13.0 first; see README)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"phewas {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
