"""System metrics: collectors for each kind of hardware, and the sampler
that writes their readings to a run's ``system.jsonl``."""
