"""paw's Python API in one page: train a LoRA, evaluate it, move it to another model, generate with it.

Runs offline on the built-in tiny models and data in about a minute on a CPU: python examples/quick_start.py
For real models swap the names (e.g. qwen2.5-0.5b -> qwen2.5-1.5b) and the data (your .jsonl, or a hub dataset).
"""

import tempfile
from pathlib import Path

from paw import api

work = Path(tempfile.mkdtemp(prefix="paw-quick-start-"))
config = {
    "model": {"name_or_path": "paw-tiny/qwen2"},
    "peft": {"method": "lora", "r": 16, "alpha": 32},
    "data": {"train_file": "paw-synth/arc-train", "max_length": 64},
    "training": {
        "max_steps": 300,
        "learning_rate": 3e-3,
        "per_device_train_batch_size": 8,
        "logging_steps": 100,
    },
    "experiment": {"root": str(work / "experiments")},
}
run = api.train(config, name="quick_start")
adapter = run.experiment.final_model
arc = {"arc_easy": "paw-synth/arc_easy"}
base = api.evaluate("arc_easy", model="paw-tiny/qwen2", data_files=arc)["tasks"]["arc_easy"]["acc"]
tuned = api.evaluate("arc_easy", model="paw-tiny/qwen2", adapter=adapter, data_files=arc)["tasks"][
    "arc_easy"
]["acc"]
print(f"arc_easy accuracy: base {base:.1%} -> with LoRA {tuned:.1%}")

moved = work / "moved"
report = api.transfer(adapter, target="paw-tiny/qwen2-upgrade", output=moved)
upgraded = api.evaluate("arc_easy", model="paw-tiny/qwen2-upgrade", adapter=moved, data_files=arc)
print(
    f"transferred {report['transferred']}/{report['units']} modules: {upgraded['tasks']['arc_easy']['acc']:.1%}"
)

print(api.infer(["Question: Which of these is a kind of fruit?\nAnswer:"], adapter=adapter, template="raw"))
print(f"everything is in {work}")
