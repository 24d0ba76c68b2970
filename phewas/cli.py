"""The ``phewas`` command line. Only this module prints and exits.

Each command's settings are flags generated from its config dataclass (:mod:`phewas.base.settings`);
the flags written here by hand name inputs, outputs and how to run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

# polars' allocator (jemalloc) keeps freed pages for seconds by default; at MC-MED scale that
# holds hundreds of MB of dead tables at build-cohort's peak (1.2 GB instead of 1.0 GB, about 10%
# faster). Set before polars is first imported; a user's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

from . import api
from .base.errors import PhewasError
from .base.progress import set_quiet
from .base.settings import add_flags, from_args

log = logging.getLogger("phewas")
TRAIN_EXTRA = ("torch", "safetensors", "tensorboard")  # `pip install phewas[train]`


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")


def cmd_simulate(args) -> None:
    from cohorts.sim import PopulationConfig
    counts = api.simulate(out=args.out, workers=args.workers, force=args.force,
                          **from_args(args, PopulationConfig)).counts
    log.info("simulated %d patients, %d visits (%d with waveforms) in %s", counts["patients"], counts["visits"],
             counts["visits_with_waveforms"], args.out)


def cmd_build_cohort(args) -> None:
    from cohorts import CohortConfig
    manifest = api.build_cohort(data=args.data, out=args.out, columns=args.columns, force=args.force,
                                **from_args(args, CohortConfig)).manifest
    counts = manifest["counts"]
    log.info("cohort %s: %d visits, %d patients; stays by split %s; %d unmapped code occurrences; "
             "patients shared between held-out and pretraining: %d", args.out, counts["visits"], counts["patients"],
             counts["stays_by_split"], manifest["unmapped_codes"]["total"],
             manifest["patients_shared_heldout_pretrain"])


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n, e.g. 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def cmd_extract_segments(args) -> None:
    from cohorts import SegmentConfig
    if not args.merge and args.data is None:
        raise PhewasError("--data is required unless --merge is given")
    manifest = api.extract_segments(cohort=args.cohort, data=args.data, workers=args.workers, shard=args.shard,
                                    merge=args.merge, force=args.force,
                                    **({} if args.merge else from_args(args, SegmentConfig))).manifest
    counts = manifest["counts"]
    state = "up to date" if manifest.get("up_to_date") else "written"
    log.info("segment store %s: %d stays, %d PPG windows (%d stays without a valid window, %d short of "
             "--per-stay), %d PPG-ECG pairs, %d unreadable records skipped", state, counts["stays"],
             counts["ppg_windows"], counts["stays_without_windows"], counts["stays_short_of_per_stay"],
             counts["pairs"], counts["bad_records"]["count"])


def cmd_extract_pairs(args) -> None:
    from cohorts.corpus import PairsConfig
    if not args.merge and (args.format is None or args.source is None):
        raise PhewasError("--format and --source are required unless --merge is given")
    manifest = api.extract_pairs(out=args.out, format=args.format, source=args.source, workers=args.workers,
                                 shard=args.shard, merge=args.merge, strict=args.strict, force=args.force,
                                 **({} if args.merge else from_args(args, PairsConfig))).manifest
    counts = manifest["counts"]
    state = "up to date" if manifest.get("up_to_date") else "written"
    log.info("pair store %s: %d pairs (%.1f h) from %d files; by split %s; %d files skipped", state,
             counts["pairs"], counts["hours"], counts["files"], counts["pairs_by_split"], counts["files_skipped"])
    if counts["files_skipped"]:
        log.warning("%d files could not be converted (listed with the reason in %s/manifest.json; --strict makes "
                    "this an error)", counts["files_skipped"], args.out)


def cmd_report(args) -> None:
    from reports.report import ReportConfig
    result = api.report(cohort=args.cohort, predictions=args.predictions, out=args.out, force=args.force,
                        **from_args(args, ReportConfig))
    summary, cfg = result.summary, SimpleNamespace(**result.manifest["parameters"])
    log.info("report %s: %d phenotypes, AUC >= %s; %d significant beyond age and sex (FDR %g); open %s",
             args.out, summary["n_phenotypes"], summary["auc_at_least"], summary["n_fdr_significant"], cfg.alpha,
             args.out / "index.html")


def cmd_compare(args) -> None:
    from reports.compare import CompareConfig
    result = api.compare(cohort=args.cohort, predictions=args.predictions, out=args.out, names=args.names,
                         force=args.force, **from_args(args, CompareConfig))
    summary, cfg = result.summary, SimpleNamespace(**result.manifest["parameters"])
    for pair in summary["pairs"]:
        log.info("%s vs %s: %d phenotypes, mean AUC %.3f vs %.3f; significantly better (FDR %g): %d vs %d",
                 pair["model_a"], pair["model_b"], pair["n_phenotypes"], pair["mean_auc_a"], pair["mean_auc_b"],
                 cfg.alpha, pair["n_a_better"], pair["n_b_better"])
    log.info("open %s", args.out / "index.html")


def cmd_features(args) -> None:
    from encoder.baseline import FeaturesConfig
    manifest = api.features(cohort=args.cohort, out=args.out, force=args.force,
                            **from_args(args, FeaturesConfig)).manifest
    cfg = SimpleNamespace(**manifest["parameters"])
    counts, heart_rate = manifest["counts"], manifest["heart_rate_report"]
    log.info("pulse-feature baseline: %d phecodes fitted on %d training stays; %d %s stays predicted (%d without "
             "a valid window got the training prevalence): %s", counts["models_fitted"], counts["training_stays"],
             counts["stays"], cfg.split, counts["stays_without_windows_given_prior"],
             args.out / "predictions.parquet")
    log.info("heart rate alone: %d phenotypes, AUC >= %s: %s", heart_rate["n_phenotypes"],
             heart_rate["auc_at_least"], args.out / "heart_rate_report" / "index.html")


def cmd_probe(args) -> None:
    from reports.probe import ProbeConfig
    summary = api.probe(dataset=args.dataset, encoders=[str(e) for e in args.encoders], out=args.out, names=args.names,
                        force=args.force, **from_args(args, ProbeConfig)).summary
    log.info("probed %d encoders on %d tasks of %s (%d examples, split %s): %s", len(summary["encoders"]),
             len(summary["tasks"]), summary["dataset"], summary["examples"], summary["split"], args.out / "probe.csv")
    if summary.get("unused_window_rows"):
        log.warning("%d rows of windows.npy are named by no row of labels.csv and were not probed",
                    summary["unused_window_rows"])


def cmd_simulate_probe(args) -> None:
    from cohorts.sim.probe import SimulateProbeConfig
    manifest = api.simulate_probe(out=args.out, force=args.force, **from_args(args, SimulateProbeConfig)).manifest
    log.info("simulated probe dataset: %d records in %s", manifest["counts"]["records"], args.out)


def cmd_convert_dataset(args) -> None:
    manifest = api.convert_dataset(format=args.format, source=args.source, out=args.out, strict=args.strict,
                                   force=args.force).manifest
    counts = manifest["counts"]
    log.info("converted %s: %s examples in %s", args.format, counts["examples"], args.out)
    if counts["files_skipped"]:
        log.warning("%d damaged files skipped (listed in %s/manifest.json; --strict makes this an error)",
                    counts["files_skipped"], args.out)
    if counts["non_finite_samples"]:
        log.warning("%d samples are NaN or infinite (kept as missing; counted per record in manifest.json)",
                    counts["non_finite_samples"])


def cmd_pretrain(args) -> None:
    from encoder.config import PretrainConfig
    settings = from_args(args, PretrainConfig)
    result = api.pretrain(out=args.out, cohort=args.cohort, pairs=args.pairs or (),
                          preset=settings.pop("preset") or "study", resume=args.resume,
                          stop_after_steps=args.stop_after_steps, ppg_config=args.ppg_config,
                          ecg_config=args.ecg_config, force=args.force, **settings)
    if not result.main:  # other torchrun ranks: rank 0 reports
        return
    if not result.finished:
        log.info("stopped at step %d; continue with --resume", result.step)
        return
    r = result.summary["retrieval"]
    if r is None:  # SimCLR, BYOL: no ECG to retrieve
        log.info("pretrained %d steps (%s); encoder in %s", result.step, result.summary["objective"],
                 args.out / "ppg_encoder.pth")
        return
    log.info("pretrained %d steps; PPG-to-ECG retrieval on pretrain_test (batches of %d): R@1 %.3f (chance %.3f), "
             "R@5 %.3f, R@10 %.3f, MRR %.3f; encoder in %s", result.step, r["batch_size"], r["recall@1"],
             r["chance_recall@1"], r["recall@5"], r["recall@10"], r["mrr"], args.out / "ppg_encoder.pth")


def cmd_finetune(args) -> None:
    from encoder.config import FinetuneConfig
    settings = from_args(args, FinetuneConfig)
    result = api.finetune(cohort=args.cohort, out=args.out, preset=settings.pop("preset") or "study",
                          resume=args.resume, stop_after_steps=args.stop_after_steps, ppg_config=args.ppg_config,
                          force=args.force, **settings)
    if not result.main:
        return
    if not result.finished:
        log.info("stopped at step %d; continue with --resume", result.step)
        return
    s = result.summary
    log.info("fine-tuned %d phecodes (%s); best validation macro AUC %.3f at %.0f windows/s; run %s",
             s["targets"], s["init"], s["best_val_macro_auc"], s["windows_per_s_last_session"], args.out)


def cmd_predict(args) -> None:
    from encoder.config import PredictConfig
    manifest = api.predict(run=args.run, cohort=args.cohort, force=args.force,
                           **from_args(args, PredictConfig)).manifest
    cfg = SimpleNamespace(split=manifest.get("split"))
    log.info("predicted %d phecodes for %d %s stays (%d without a valid window got the training prevalence): %s",
             manifest["phecodes"], manifest["stays"], cfg.split, manifest["stays_without_windows_given_prior"],
             args.run / "predictions.parquet")


def cmd_run_all(args) -> None:
    result = api.run_all(config=args.config, force=args.force)
    s = result.report.summary
    log.info("stage seconds: %s", result.seconds)
    log.info("%d phenotypes; AUC >= %s; %d significant beyond age and sex (FDR)", s["n_phenotypes"],
             s["auc_at_least"], s["n_fdr_significant"])
    t = result.truth_check
    if t:
        log.info("ground truth (simulated): %d of %d injected phecodes recovered; %d of %d null phecodes significant "
                 "(false discovery proportion %.3f); null mean AUC %.3f vs age+sex alone %.3f",
                 t["n_injected_recovered"], len(t["injected"]), t["n_null_significant"], t["n_null_phecodes"],
                 t["false_discovery_proportion"], t["null_mean_auc"], t["null_mean_auc_age_sex"])
    for name, check in result.model_truth_checks.items():
        log.info("ground truth, model %s: %d of %d injected phecodes recovered; %d of %d null phecodes significant",
                 name, check["n_injected_recovered"], len(check["injected"]), check["n_null_significant"],
                 check["n_null_phecodes"])
    for pair in result.comparison.summary["pairs"] if result.comparison is not None else []:
        log.info("compare %s vs %s: %d phenotypes; significantly better (FDR): %d vs %d", pair["model_a"],
                 pair["model_b"], pair["n_phenotypes"], pair["n_a_better"], pair["n_b_better"])
    print(f"report: {result.report.folder / 'index.html'}")
    if result.comparison is not None:
        print(f"compare: {result.comparison.folder / 'index.html'}")


def _arg(flag: str, help: str | None = None, **kwargs) -> tuple[str, dict]:
    """A flag naming an input, an output or how to run; a required path unless told otherwise."""
    return flag, {"type": Path, "required": True, **kwargs, "help": help}


def _subcommand(sub, name: str, func, help: str, *args, after=(), common: bool = True, preset: bool = False):
    """A command: its ``args`` (inputs and outputs), its settings' flags
    (:mod:`phewas.command_settings`; with ``preset`` every default is the preset's), the flags
    ``after`` them (how to run), then --quiet and --force."""
    from .command_settings import command_settings
    cmd = sub.add_parser(name, help=help)
    for flag, kwargs in args:
        cmd.add_argument(flag, **kwargs)
    settings = command_settings().get(name)
    for cls in settings.classes if settings else ():
        add_flags(cmd, cls, preset=preset)
    for flag, kwargs in after:
        cmd.add_argument(flag, **kwargs)
    if common:
        _common(cmd)
    cmd.set_defaults(func=func)
    return cmd


def build_parser() -> argparse.ArgumentParser:
    from cohorts.converters import FORMATS

    parser = argparse.ArgumentParser(
        prog="phewas", description="Phenome-wide disease detection from PPG: build an MC-MED cohort, "
        "pretrain and fine-tune the AnyPPG encoder, report AUCs per phecode. `phewas COMMAND --help` "
        "lists a command's flags.")
    sub = parser.add_subparsers(dest="command", required=True)
    cohort = _arg("--cohort")
    _subcommand(sub, "simulate", cmd_simulate, "write a synthetic MC-MED-layout dataset with known truth",
                _arg("--out"))
    _subcommand(sub, "build-cohort", cmd_build_cohort, "MC-MED tables + WFDB headers -> stays, phecode labels, "
                "splits", _arg("--data", "MC-MED folder (visits.csv, pmh.csv, waveforms/)"),
                _arg("--out", "cohort folder to write"))
    _subcommand(sub, "extract-segments", cmd_extract_segments, "preprocessed 10-s PPG windows (and PPG-ECG pairs) "
                "per stay", _arg("--data", "MC-MED folder the cohort was built from", required=False), cohort,
                after=[_arg("--shard", "i/n: build one n-th of the stays", type=_shard, required=False,
                            default=(0, 1)),
                       _arg("--merge", "join N finished shards into the store", type=int, required=False,
                            metavar="N", default=0)])
    _subcommand(sub, "extract-pairs", cmd_extract_pairs, "a pretraining source (PulseDB, MESA, CFS, HSP) as "
                "published -> a pair store of preprocessed PPG-ECG pairs", _arg("--out", "the pair store to write"),
                after=[_arg("--shard", "i/n: convert one n-th of the files", type=_shard, required=False,
                            default=(0, 1)),
                       _arg("--merge", "join N finished shards into the store", type=int, required=False,
                            metavar="N", default=0)])
    _subcommand(sub, "report", cmd_report, "per-phenotype and per-chapter AUC, adjusted association, figures, HTML",
                cohort, _arg("--predictions", "predictions.parquet from `phewas predict`"), _arg("--out"))
    _subcommand(sub, "compare", cmd_compare, "two or more models' AUCs side by side per phenotype, with paired tests",
                cohort, _arg("--predictions", "two or more predictions.parquet files (from predict or features)",
                             nargs="+"),
                _arg("--names", "a name per predictions file (default: each file's folder name)", type=str,
                     nargs="+", required=False, default=None),
                _arg("--out"))
    _subcommand(sub, "features", cmd_features, "pulse-feature baseline: classic PPG features per stay, logistic "
                "regression per phecode with age and sex; predictions in predict's format",
                _arg("--cohort", "cohort folder with its segment store"), _arg("--out", "run folder"))
    _subcommand(sub, "probe", cmd_probe, "linear probes of frozen PPG encoders on a labelled PPG dataset",
                _arg("--names", "a name per encoder (default: folder or file name)", type=str, nargs="+",
                     required=False, default=None),
                _arg("--out"))
    _subcommand(sub, "simulate-probe", cmd_simulate_probe, "a simulated labelled PPG dataset (known rate and "
                "effects) in the probe format", _arg("--out"))
    _subcommand(sub, "convert-dataset", cmd_convert_dataset, "a public PPG dataset's own layout -> the probe format",
                _arg("--format", type=str, choices=FORMATS), _arg("--source", "the dataset's folder as distributed"),
                _arg("--out"), ("--strict", {"action": "store_true",
                                             "help": "a damaged file is an error (default: skipped and listed)"}))
    training = [_arg("--cohort", "cohort folder with its segment store"), _arg("--out", "run folder"),
                ("--resume", {"action": "store_true", "help": "continue a stopped run from its last checkpoint"}),
                _arg("--stop-after-steps", "end this invocation after N steps (resume later), for time-limited "
                     "jobs", type=int, required=False, default=None),
                _arg("--ppg-config", "JSON of Net1D settings for the PPG encoder", required=False)]
    pairs_inputs = [_arg("--cohort", "cohort folder with its segment store (optional with --pairs)", required=False,
                         default=None),
                    _arg("--pairs", "pair stores of other sources (extract-pairs), trained on with the cohort's",
                         nargs="+", required=False, default=None)]
    _subcommand(sub, "pretrain", cmd_pretrain, "ECG-guided contrastive (CLIP) pretraining of the PPG encoder",
                *pairs_inputs, *training[1:], preset=True,  # None: the preset's value
                after=[_arg("--ecg-config", "JSON of Net1D settings for the ECG encoder", required=False)])
    _subcommand(sub, "finetune", cmd_finetune, "end-to-end multi-label fine-tuning over all phecodes", *training,
                preset=True)
    _subcommand(sub, "predict", cmd_predict, "probabilities per phecode for every stay of a split",
                _arg("--run", "a finished `phewas finetune` run"), cohort)
    _subcommand(sub, "run-all", cmd_run_all, "every stage from one TOML config, skipping what is up to date",
                _arg("--config"), ("--quiet", {"action": "store_true"}),
                ("--force", {"action": "store_true", "help": "rerun every stage"}), common=False)
    return parser


def main(argv=None) -> int:
    try:  # building the parser imports every command's settings: an interrupt there is one too
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("phewas: interrupted", file=sys.stderr)
        return 130
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
