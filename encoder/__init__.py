"""Encoder: the AnyPPG PPG encoder, an ECG encoder, ECG-guided CLIP pretraining and fine-tuning."""
