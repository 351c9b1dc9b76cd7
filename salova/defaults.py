"""Names every layer agrees on, in one place that imports nothing heavy (the CLI reads them at start-up)."""

DEFAULT_ENCODER = "openai/clip-vit-large-patch14-336"  # paper: CLIP-ViT-L/14-336
# Indexing on a CPU with no encoder asked for: the paper's encoder costs ~1.4-2.8 s per frame there
# (1.5-3 hours per hour of video); this one ~35-65 ms (docs/benchmarks.md, "Encoders on this CPU").
CPU_ENCODER = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # OpenAI B/32 cost; MSCOCO image R@1 39.3 vs 30.4
DEFAULT_LLM = "meta-llama/Llama-3.2-3B-Instruct"  # paper's 3B variant
# Video decoders; salova.video.backends maps each name to a FrameSource ("auto": sparse, then OpenCV, then PyAV).
VIDEO_BACKENDS = ("auto", "sparse", "opencv", "pyav", "decord")
# Frames per encoder batch by device when none is asked for: a GPU wants larger batches to stay busy.
ENCODE_BATCH = {"cpu": 16, "cuda": 64}
