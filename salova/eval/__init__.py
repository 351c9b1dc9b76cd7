"""`salova eval`: benchmarks over the same retrieval and answer path users run.

One file per benchmark (``niah``, ``grounding``, ``mcq``), shared metrics (``metrics``) and result files
(``records``), and the lmms-eval model (``lmms_model``; registered by ``lmms_plugin``). Retrieval metrics need no
SALOVA weights: without a checkpoint the scorer is zero-shot CLIP/SigLIP.
"""
