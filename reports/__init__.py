"""Reports: per-phenotype and per-chapter AUC, confound-aware association, figures and HTML."""
