"""Adapter training (LoRA / QLoRA) on survey data. Builds on sim_core, never the reverse."""
