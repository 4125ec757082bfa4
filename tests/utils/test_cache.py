"""``build_atomically``: a killed build's staging dir is removed by the next build; a live one's is left."""

import signal
import subprocess
import sys
import textwrap


def _write(out):
    out.mkdir()
    (out / "config.json").write_text("{}")


def test_a_killed_builds_staging_dir_goes_with_the_next_build(tmp_path):
    from paw.utils.cache import build_atomically

    target = tmp_path / "model"
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from paw.utils.cache import build_atomically
        build_atomically(Path(sys.argv[1]), lambda out: (print("building", flush=True), time.sleep(120)))
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "building"
    process.send_signal(signal.SIGKILL)
    process.wait()
    (left,) = tmp_path.glob(".model-*")  # what the kill left behind
    assert build_atomically(target, _write) == target and (target / "config.json").is_file()
    assert not left.exists() and not list(tmp_path.glob(".model-*"))


def test_a_live_builds_staging_dir_is_left_alone(tmp_path):
    from paw.utils.cache import build_atomically

    target = tmp_path / "model"
    seen = []

    def build(out):
        seen.append(out.parent)
        build_atomically(target, _write)  # a second build beside this one, while this one runs
        assert out.parent.is_dir()
        _write(out)

    assert build_atomically(target, build) == target  # the other build finished first: its copy is used
    assert len(seen) == 1 and not seen[0].exists() and (target / "config.json").is_file()
