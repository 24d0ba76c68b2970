"""The ``phewas`` command line. Only this module prints and exits."""

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

log = logging.getLogger("phewas")
TRAIN_EXTRA = ("torch", "safetensors", "tensorboard")  # `pip install phewas[train]`


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")


def cmd_simulate(a) -> None:
    from .sim import PopulationConfig, simulate_dataset
    cfg = PopulationConfig(patients=a.patients, seed=a.seed, minutes=a.minutes,
                           injected_prevalence_scale=a.injected_prevalence_scale, hard=a.hard,
                           world_seed=a.world_seed)
    m = simulate_dataset(a.out, cfg, workers=a.workers, overwrite=a.force)
    c = m["counts"]
    log.info("simulated %d patients, %d visits (%d with waveforms) in %s", c["patients"], c["visits"],
             c["visits_with_waveforms"], a.out)


def cmd_build_cohort(a) -> None:
    from cohorts import CohortConfig, build_cohort
    cfg = CohortConfig(seed=a.seed, min_code_count=a.min_code_count, exclusions=a.exclusions,
                       codes=a.codes, min_ppg_s=a.min_ppg_seconds, min_overlap_s=a.min_overlap_seconds,
                       workers=a.workers, allow_no_waveforms=a.allow_no_waveforms)
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
        cfg = SegmentConfig(per_stay=a.per_stay, max_pairs_per_stay=a.max_pairs_per_stay, seed=a.seed,
                            max_invalid=a.max_invalid, notch_hz=a.notch_hz)
        m = extract_segments(a.data, a.cohort, cfg, shard=a.shard, workers=a.workers, overwrite=a.force)
    c = m["counts"]
    state = "up to date" if m.get("up_to_date") else "written"
    log.info("segment store %s: %d stays, %d PPG windows (%d stays without a valid window, %d short of "
             "--per-stay), %d PPG-ECG pairs, %d unreadable records skipped", state, c["stays"], c["ppg_windows"],
             c["stays_without_windows"], c["stays_short_of_per_stay"], c["pairs"], c["bad_records"]["count"])


def cmd_report(a) -> None:
    from reports.report import ReportConfig, make_report
    cfg = ReportConfig(min_positives=a.min_positives, split=a.split, thresholds=tuple(a.thresholds),
                       alpha=a.alpha, folds=a.folds, seed=a.seed, workers=a.workers,
                       association=a.association,
                       include_stays_without_windows=a.include_stays_without_windows,
                       age_df=a.age_df, age_sex_interaction=a.age_sex_interaction)
    s = make_report(a.cohort, a.predictions, a.out, cfg, overwrite=a.force)
    log.info("report %s: %d phenotypes, AUC >= %s; %d significant beyond age and sex (FDR %g); open %s",
             a.out, s["n_phenotypes"], s["auc_at_least"], s["n_fdr_significant"], a.alpha, a.out / "index.html")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _net_config(path):
    if path is None:
        return None
    import json

    from encoder.net1d import Net1DConfig
    try:
        return Net1DConfig(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise PhewasError(f"{path}: not a Net1D configuration ({err})") from None


def cmd_pretrain(a) -> None:
    from encoder.pretrain import make_config, pretrain
    cfg = make_config(a.preset, ppg=_net_config(a.ppg_config), ecg=_net_config(a.ecg_config),
                      ecg_checkpoint=str(a.ecg_checkpoint) if a.ecg_checkpoint else None, cache_ecg=a.cache_ecg,
                      batch_size=a.batch_size, steps=a.steps, lr=a.lr, weight_decay=a.weight_decay,
                      warmup_steps=a.warmup_steps, grad_accum=a.grad_accum, eval_every=a.eval_every,
                      checkpoint_every=a.checkpoint_every, retrieval_batch=a.retrieval_batch, workers=a.workers,
                      seed=a.seed, device=a.device, bf16=a.bf16, compile=a.compile)
    s = pretrain(a.cohort, a.out, cfg, resume=a.resume, overwrite=a.force, stop_after=a.stop_after_steps)
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
    from encoder.finetune import finetune, make_config
    cfg = make_config(a.preset, ppg=_net_config(a.ppg_config), init=str(a.init) if a.init else None,
                      segments_per_stay=a.segments_per_stay, min_train_positives=a.min_train_positives,
                      aggregation=a.aggregation, pos_weight=a.pos_weight, batch_size=a.batch_size, epochs=a.epochs,
                      lr=a.lr, encoder_lr=a.encoder_lr, weight_decay=a.weight_decay, warmup_steps=a.warmup_steps,
                      grad_accum=a.grad_accum, patience=a.patience, workers=a.workers, seed=a.seed, device=a.device,
                      bf16=a.bf16, compile=a.compile)
    s = finetune(a.cohort, a.out, cfg, resume=a.resume, overwrite=a.force, stop_after=a.stop_after_steps)
    if not s.get("main", True):
        return
    if not s["finished"]:
        log.info("stopped at step %d; continue with --resume", s["step"])
        return
    log.info("fine-tuned %d phecodes (%s); best validation macro AUC %.3f at %.0f windows/s; run %s",
             s["targets"], s["init"], s["best_val_macro_auc"], s["windows_per_s_last_session"], a.out)


def cmd_predict(a) -> None:
    from encoder.finetune import predict
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
    print(f"report: {out['report']}")


def _training_flags(p, what: str) -> None:
    """Flags shared by pretrain and finetune; None means: the preset's value."""
    p.add_argument("--cohort", type=Path, required=True, help="cohort folder with its segment store")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--preset", choices=("study", "demo"), default="study")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from its last checkpoint")
    p.add_argument("--batch-size", type=int, help=f"global batch ({what})")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--workers", type=int, help="data-loader worker processes")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--no-bf16", dest="bf16", action="store_const", const=False, default=None,
                   help="fp32 on GPU (bf16 autocast is the default there)")
    p.add_argument("--compile", action="store_const", const=True, default=None, help="torch.compile the model")
    p.add_argument("--stop-after-steps", type=int, default=None,
                   help="end this invocation after N steps (resume later), for time-limited jobs")
    p.add_argument("--ppg-config", type=Path, help="JSON of Net1D settings for the PPG encoder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phewas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a synthetic MC-MED-layout dataset with known truth")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--patients", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=4.0, help="monitored minutes per visit")
    p.add_argument("--injected-prevalence-scale", type=float, default=1.0,
                   help="multiply the injected phecodes' prevalences (small test studies)")
    p.add_argument("--hard", action="store_true",
                   help="the harder population: non-linear age risks, saturating vascular age, a "
                        "stronger patient factor, frequent visitors, stays without usable PPG")
    p.add_argument("--world-seed", type=int, default=None,
                   help="draw the phecodes' parameters from this seed (replicates of one disease world)")
    p.add_argument("--workers", type=int, default=None)
    _common(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("build-cohort", help="MC-MED tables + WFDB headers -> stays, phecode labels, splits")
    p.add_argument("--data", type=Path, required=True, help="MC-MED folder (visits.csv, pmh.csv, waveforms/)")
    p.add_argument("--out", type=Path, required=True, help="cohort folder to write")
    p.add_argument("--columns", type=Path, default=None, help="column map (TOML) for other column names")
    p.add_argument("--seed", type=int, default=0, help="seed of the 8:1:1 pretraining split")
    p.add_argument("--min-code-count", type=int, default=1,
                   help="distinct days with a code needed for a case (R PheWAS min.code.count)")
    p.add_argument("--no-exclusions", dest="exclusions", action="store_false",
                   help="do not exclude controls that have a phecode of the exclusion range")
    p.add_argument("--codes", choices=("visit", "all"), default="visit",
                   help="visit: the patient's codes up to the stay (earlier visits, history by day); "
                        "all: every code")
    p.add_argument("--allow-no-waveforms", action="store_true",
                   help="build labels when the waveform folder is missing or holds no PPG record "
                        "(recorded in the manifest; every stay is then 'excluded')")
    p.add_argument("--min-ppg-seconds", type=float, default=10.0)
    p.add_argument("--min-overlap-seconds", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=None)
    _common(p)
    p.set_defaults(func=cmd_build_cohort)

    p = sub.add_parser("extract-segments", help="preprocessed 10-s PPG windows (and PPG-ECG pairs) per stay")
    p.add_argument("--data", type=Path, help="MC-MED folder the cohort was built from")
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--per-stay", type=int, default=20, help="PPG windows sampled per stay")
    p.add_argument("--max-pairs-per-stay", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-invalid", type=float, default=0.25, help="largest invalid share of a kept window")
    p.add_argument("--notch-hz", type=float, default=50.0, help="ECG mains notch (60 in the US; 0 for none)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: build one n-th of the stays")
    p.add_argument("--merge", type=int, metavar="N", default=0, help="join N finished shards into the store")
    _common(p)
    p.set_defaults(func=cmd_extract_segments)

    p = sub.add_parser("report", help="per-phenotype and per-chapter AUC, adjusted association, figures, HTML")
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True, help="predictions.parquet from `phewas predict`")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--min-positives", type=int, default=100,
                   help="report phecodes with at least this many positive (and control) stays")
    p.add_argument("--split", default="heldout")
    p.add_argument("--thresholds", type=_floats, default=[0.5, 0.6, 0.7], help="AUC thresholds, e.g. 0.5,0.6,0.7")
    p.add_argument("--alpha", type=float, default=0.05, help="FDR and family-wise level")
    p.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold age/sex models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="processes for the association models")
    p.add_argument("--no-association", dest="association", action="store_false",
                   help="skip the age/sex-adjusted models (AUCs only)")
    _common(p)
    p.add_argument("--age-df", type=int, default=5,
                   help="degrees of freedom of the restricted cubic spline of age in the adjustment")
    p.add_argument("--age-sex-interaction", action="store_true", help="add age x sex terms to the adjustment")
    p.add_argument("--include-stays-without-windows", action="store_true",
                   help="also report stays whose store holds no valid window (predictions' n_windows = 0; "
                        "`predict` gave them the training prevalence)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("pretrain", help="ECG-guided contrastive (CLIP) pretraining of the PPG encoder")
    _training_flags(p, "pairs")
    p.add_argument("--ecg-checkpoint", type=Path, help="ECGFounder checkpoint: the ECG encoder is then frozen")
    p.add_argument("--cache-ecg", dest="cache_ecg", action="store_const", const=True, default=None,
                   help="precompute frozen ECG features once (default when the ECG encoder is frozen)")
    p.add_argument("--no-cache-ecg", dest="cache_ecg", action="store_const", const=False)
    p.add_argument("--ecg-config", type=Path, help="JSON of Net1D settings for the ECG encoder")
    p.add_argument("--steps", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--retrieval-batch", type=int, help="batch size of the retrieval metrics")
    _common(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("finetune", help="end-to-end multi-label fine-tuning over all phecodes")
    _training_flags(p, "stays")
    p.add_argument("--init", type=Path, help="pretrain run folder, pretrain checkpoint, or AnyPPG weights (.pth)")
    p.add_argument("--segments-per-stay", type=int)
    p.add_argument("--min-train-positives", type=int, help="targets: phecodes with at least K positive training stays")
    p.add_argument("--aggregation", choices=("mean_logits", "mean_embedding", "attention"))
    p.add_argument("--pos-weight", action="store_const", const=True, default=None,
                   help="weight positives by negatives/positives (capped) for rare phecodes")
    p.add_argument("--epochs", type=int)
    p.add_argument("--encoder-lr", type=float, help="learning rate of the encoder (--lr is the head's)")
    p.add_argument("--patience", type=int, help="evaluations without a better validation macro AUC before stopping")
    _common(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("predict", help="probabilities per phecode for every stay of a split")
    p.add_argument("--run", type=Path, required=True, help="a finished `phewas finetune` run")
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--split", default="heldout",
                   choices=("pretrain_train", "pretrain_val", "pretrain_test", "heldout", "excluded"))
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
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
